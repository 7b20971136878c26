"""The runtime's control commands: ``status``, ``list-sas``, ``initiate``, ``rekey``,
``terminate``, ``board`` (``reload`` and ``list-conns`` are ``Ops``'s).

Each takes the request's JSON arguments and returns the answer's; a ``ControlError`` is
the error answer (a typo in a connection name is an error, never a no-op).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pike.daemon.control import ControlError
from pike.daemon.sa_view import list_sas_json
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps, SaCounters, SaSpec

if TYPE_CHECKING:
    from pike.board.watchdog import LoopLag
    from pike.daemon.clock import Clock
    from pike.daemon.ops import Ops
    from pike.daemon.runtime import Engine

log = logging.getLogger("pike.daemon")


class _Daemon(Protocol):
    config: Config
    ops: Ops
    started: float
    started_wall: float
    loop_lag: LoopLag

    @property
    def engine(self) -> Engine: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def caps(self) -> KernelCaps: ...

    def counters(self, spec: SaSpec) -> SaCounters | None: ...


def _version() -> str:
    from pike.version import version

    return version()


class Commands:
    def __init__(self, daemon: _Daemon, now: Callable[[], float], pump: Callable[[], None]) -> None:
        self.daemon = daemon
        self._now = now
        self._pump = pump  # an API call queues actions: act on them at once
        self._board: dict[str, Any] | None = None

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "status": self.cmd_status,
            "list-sas": self.cmd_list_sas,
            "initiate": self.cmd_initiate,
            "terminate": self.cmd_terminate,
            "rekey": self.cmd_rekey,
            **self.daemon.ops.handlers(),  # reload, list-conns
            "board": self.cmd_board,
        }

    def cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        d = self.daemon
        sas = d.engine.list_sas()
        return {
            "version": _version(),
            "pid": os.getpid(),
            "uptime": int(self._now() - d.started),
            "started_at": round(d.started_wall, 3),
            "config": d.config.path,
            "kernel": {"esp": d.caps.esp, "missing": list(d.caps.missing)},
            "ike_sas": len(sas),
            "child_sas": sum(len(sa.children) for sa in sas),
            "connections": sorted(d.config.connections),
            "ike_ports": [d.config.daemon.ike_port, d.config.daemon.natt_port],
            # seconds the loop woke a sleeper late: worst of the last 10 s, since start
            "event_loop_lag": {
                "recent": round(d.loop_lag.recent, 6),
                "worst": round(d.loop_lag.worst, 6),
            },
        }

    def cmd_board(self, args: dict[str, Any]) -> dict[str, Any]:
        if self._board is None:  # the board does not change while we run
            from pike.board.detect import describe

            try:
                self._board = describe()
            except LookupError as exc:
                raise ControlError(str(exc)) from None
        return self._board

    def cmd_list_sas(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        d = self.daemon
        conn = None if args.get("conn") is None else self._conn_arg(args)  # a typo: an error
        sas = [sa for sa in d.engine.list_sas() if conn is None or sa.name == conn]
        failed = d.ops.recorder.child_failed
        out = list_sas_json(sas, d.counters, self._now(), d.clock.wall(), failed)
        for sa in out:
            # Redundant hubs: which of remote_addrs initiations go to now (None: one hub).
            hub, index, count = d.engine.active_hub(sa["name"])
            sa["hub"] = {"active": hub, "index": index, "count": count} if count > 1 else None
        return out

    def _conn_arg(self, args: dict[str, Any]) -> str:
        conn = args.get("conn")
        if not isinstance(conn, str) or not conn:
            raise ControlError('missing "conn"')
        if conn not in self.daemon.config.connections:
            raise ControlError(f"no connection named {conn!r}")
        return conn

    def _child_arg(self, conn: str, args: dict[str, Any]) -> str | None:
        child = args.get("child")
        if child is not None and (
            not isinstance(child, str) or self.daemon.config.connections[conn].child(child) is None
        ):
            raise ControlError(f"connection {conn!r} has no child {child!r}")
        return child

    def cmd_initiate(self, args: dict[str, Any]) -> dict[str, Any]:
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        peer = args.get("peer")
        if peer is not None and not isinstance(peer, str):
            raise ControlError('"peer" must be a string')
        try:
            self.daemon.engine.initiate(conn, self._now(), child, peer)
        except (KeyError, ValueError) as exc:
            # The engine's KeyError says why (IKEv1 connection, no remote address, ...).
            raise ControlError(
                str(exc.args[0]) if exc.args else f"cannot initiate {conn}"
            ) from None
        self._pump()
        to = f" to hub {peer}" if peer else ""
        log.info("%s: initiate requested%s%s", conn, f" (child {child})" if child else "", to)
        return {"conn": conn, "child": child}

    def cmd_rekey(self, args: dict[str, Any]) -> dict[str, Any]:
        """Rekey a connection's IKE SA, or one CHILD_SA (``child`` given), now."""
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        try:
            self.daemon.engine.rekey(conn, self._now(), child)
        except (KeyError, ValueError) as exc:
            raise ControlError(str(exc.args[0]) if exc.args else f"cannot rekey {conn}") from None
        self._pump()
        log.info("%s: rekey requested%s", conn, f" (child {child})" if child else " (IKE_SA)")
        return {"conn": conn, "child": child}

    def cmd_terminate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Delete a connection's IKE SAs (``force``: at once, without waiting for the
        peer), or one CHILD_SA (``child`` given) with the peer."""
        conn = self._conn_arg(args)
        child = self._child_arg(conn, args)
        force = args.get("force") is True
        try:
            if child is not None:
                self.daemon.engine.terminate_child(conn, child, self._now())
            else:
                self.daemon.engine.terminate(conn, self._now(), force)
        except KeyError as exc:
            raise ControlError(str(exc.args[0]) if exc.args else f"no {conn!r}") from None
        self._pump()
        what = f" (child {child})" if child else " (forced)" if force else ""
        log.info("%s: terminate requested%s", conn, what)
        return {"conn": conn, "child": child}
