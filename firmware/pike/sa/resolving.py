"""remote_addrs given as a DNS name: the initiations that wait for its addresses.

The engines stay sans-I/O: an initiation towards a name emits ``ResolveRequest`` and
waits here; the runtime resolves off its event loop and calls ``resolved``. Every attempt
(keyingtries, dpd_action = restart, close_action = start, a trap's ACQUIRE) resolves
again, so a head office that moved is found. One implementation for both IKE versions.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from typing import Protocol

from pike.policy.addrs import is_name
from pike.policy.config import ConnectionConfig
from pike.sa.actions import ResolveRequest
from pike.sa.context import Context
from pike.sa.restarts import Pending, Restart, backoff
from pike.sa.state import log


@dataclass(frozen=True)
class Waiting:
    children: tuple[str, ...]  # (): the connection's first child
    keyingtry: int
    host: str = ""  # the name looked up (the active hub's)


class Initiate(Protocol):
    """An engine's ``initiate``."""

    def __call__(
        self,
        conn_name: str,
        now: float,
        child: str | None = None,
        *,
        remote: str | None = None,
        keyingtry: int = 0,
    ) -> None: ...


class Resolving:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.waiting: dict[str, list[Waiting]] = {}  # by connection name

    def ask(self, conn: ConnectionConfig, children: tuple[str, ...], keyingtry: int) -> None:
        """Wait for ``conn``'s addresses (one lookup for every initiation that waits)."""
        first = conn.name not in self.waiting
        host = self.ctx.hubs.active(conn) or conn.remote_addrs[0]
        self.waiting.setdefault(conn.name, []).append(Waiting(children, keyingtry, host))
        if first:
            local = conn.local_addrs[0] if conn.local_addrs else None
            family = ipaddress.ip_address(local).version if local else 0
            log.info("%s: resolving %s", conn.name, host)
            self.ctx.emit(ResolveRequest(conn.name, host, family))

    def answered(self, conn: str) -> list[Waiting]:
        return self.waiting.pop(conn, [])

    def forget(self, conn: str) -> None:
        self.waiting.pop(conn, None)

    def resolved(
        self,
        conn_name: str,
        conn: ConnectionConfig | None,
        addresses: tuple[str, ...],
        now: float,
        retries: Pending,
        initiate: Initiate,
    ) -> None:
        """The answer to ``ResolveRequest`` (the engines' ``resolved``): the initiations
        that waited go on to the first address; none (the lookup failed) counts as a
        failed attempt, queued on ``retries``."""
        if addresses:
            self.ctx.hubs.resolved(conn_name, addresses)
        for waiting in self.answered(conn_name):
            if conn is None:
                break
            if not addresses:
                again = unresolved(self.ctx, conn, waiting, now)
                if again is not None:
                    log.warning("%s", again.note)
                    retries.add(again)
                continue
            with contextlib.suppress(KeyError):
                for child in waiting.children or (None,):
                    initiate(
                        conn_name, now, child, remote=addresses[0], keyingtry=waiting.keyingtry
                    )


def unresolved(
    ctx: Context, conn: ConnectionConfig, waiting: Waiting, now: float
) -> Restart | None:
    """A lookup that failed counts as an attempt of keyingtries (spaced by the backoff
    with keyingtries = 0); None once they are used up. With several hubs, the next one is
    tried at once (a round over all of them is one attempt)."""
    host = waiting.host or conn.remote_addrs[0]
    if not ctx.hubs.advance(conn, host, "cannot be resolved"):
        note = f"{conn.name}: cannot resolve {host}: trying hub {ctx.hubs.active(conn)}"
        return Restart(conn.name, waiting.children, waiting.keyingtry, note, now)
    if conn.keyingtries == 0 or waiting.keyingtry + 1 < conn.keyingtries:
        at = now + backoff(waiting.keyingtry)
        note = (
            f"{conn.name}: cannot resolve {host}: attempt {waiting.keyingtry + 2} "
            f"of {conn.keyingtries or 'unlimited'} at +{at - now:.0f}s"
        )
        return Restart(conn.name, waiting.children, waiting.keyingtry + 1, note, at)
    log.warning(
        "%s: cannot resolve %s, giving up after %d attempt(s) (keyingtries = %d)",
        conn.name,
        host,
        waiting.keyingtry + 1,
        conn.keyingtries,
    )
    return None


__all__ = ["Initiate", "Resolving", "Waiting", "is_name", "unresolved"]
