"""``pikectl initiate`` that waits (as ``swanctl --initiate``): the control stream
``initiate-wait`` (the plain request ``initiate`` only asks) starts the connection, then
sends the log lines about it and, at the end, ``{"done": true, "ok": ..., "reason": ...}``:
ok once the CHILD_SA asked for (or the IKE SA, for a connection without children) is up,
not ok when it or its IKE SA fails first. The client decides how long it waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pike.daemon.control import ControlError
from pike.daemon.logstream import Entry, Follower, LogHub
from pike.policy.config import Config
from pike.sa.actions import (
    Action,
    ChildSaEstablished,
    ChildSaFailed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaInfo,
)

# IKE SAs that end because another replaces them: no failure of an initiation
_REPLACED = ("rekeyed", "reauthenticated")


class Watch(Follower):
    """One waiting ``pikectl initiate``: its connection's log lines and its outcome."""

    def __init__(self, conn: str, child: str | None) -> None:
        super().__init__(logging.INFO)
        self.conn, self.child = conn, child
        self.done = False

    def push(self, entry: Entry) -> None:
        message = str(entry.get("message", ""))
        if "done" in entry or any(message.startswith(self.conn + c) for c in "[.: "):
            super().push(entry)

    def finish(self, ok: bool, reason: str) -> None:
        if not self.done:
            self.done = True
            self.push({"done": True, "ok": ok, "reason": reason})

    def action(self, a: Action) -> None:
        if self.done or getattr(a, "conn", None) != self.conn:
            return
        if isinstance(a, ChildSaEstablished) and a.child == self.child:
            self.finish(True, "established")
        elif isinstance(a, ChildSaFailed) and a.child == self.child:
            self.finish(False, a.reason)
        elif isinstance(a, IkeSaEstablished) and self.child is None and not a.rekey:
            self.finish(True, "established")
        elif isinstance(a, IkeSaDeleted) and a.reason not in _REPLACED:
            self.finish(False, a.reason)


class Initiations:
    """The ``initiate-wait`` stream source (``pike.daemon.control.StreamSource``)."""

    OBSERVED = frozenset({ChildSaEstablished, ChildSaFailed, IkeSaEstablished, IkeSaDeleted})

    def __init__(
        self,
        initiate: Callable[[dict[str, Any]], Any],
        sas: Callable[[], list[IkeSaInfo]],
        config: Callable[[], Config],
        logs: LogHub,
        on_watching: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_watching``: called when the first watch starts and when the last ends
        (``watching`` changed): the runtime hands actions to ``observe`` only while a
        watch waits."""
        self._initiate, self._sas, self._config, self._logs = initiate, sas, config, logs
        self._on_watching = on_watching
        self._watches: set[Watch] = set()

    @property
    def watching(self) -> bool:
        """Whether a ``pikectl initiate`` waits for an outcome."""
        return bool(self._watches)

    def follow(self, args: dict[str, Any]) -> Watch:
        conn, child = args.get("conn"), args.get("child")
        cfg = self._config().connections.get(conn) if isinstance(conn, str) else None
        if cfg is None or not isinstance(conn, str):
            raise ControlError(f"no connection named {conn!r}")
        if child is None and cfg.children:
            child = cfg.children[0].name
        watch = Watch(conn, child if isinstance(child, str) else None)
        self._watches.add(watch)
        if len(self._watches) == 1:
            self._on_watching()  # before the initiation: its actions come at once
        self._logs.add(watch)
        try:
            self._initiate(args)  # its errors (no such child, nothing to dial) end here
        except ControlError:
            self.unfollow(watch)
            raise
        if self._up(watch):
            watch.finish(True, "already up")
        return watch

    def unfollow(self, stream: Any) -> None:
        if stream in self._watches:
            self._watches.discard(stream)
            if not self._watches:
                self._on_watching()
        self._logs.unfollow(stream)

    def observe(self, a: Action) -> None:
        """An action of a kind in ``OBSERVED``: it may end a watch."""
        if self._watches:
            for w in list(self._watches):
                w.action(a)

    def _up(self, w: Watch) -> bool:
        for sa in self._sas():
            if sa.name != w.conn or sa.state != "ESTABLISHED":
                continue
            if w.child is None or any(
                c.name == w.child and c.state == "INSTALLED" for c in sa.children
            ):
                return True
        return False
