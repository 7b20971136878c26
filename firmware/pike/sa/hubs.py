"""Redundant hubs: a connection whose ``remote_addrs`` names several hubs (addresses or
DNS names) initiates to one of them, the active hub, and moves on to the next (wrapping)
when that one does not answer an initiation or is found dead on an established SA.

Both engines share one ``Hubs`` (in the context); ``pike.sa.restarts`` decides when to move
on, the engines' initiations ask for the active hub, ``pikectl initiate --peer`` picks one,
``list-sas`` and the metrics show which.
"""

from __future__ import annotations

from pike.policy.config import ConnectionConfig
from pike.sa.state import log

_NOT_HUBS = ("%any", "0.0.0.0", "::")


def hubs_of(conn: ConnectionConfig) -> tuple[str, ...]:
    """The entries of ``remote_addrs`` one can initiate to (not %any, not subnets)."""
    return tuple(a for a in conn.remote_addrs if a not in _NOT_HUBS and "/" not in a)


class Hubs:
    def __init__(self) -> None:
        self._active: dict[str, int] = {}  # connection -> index into hubs_of(conn)
        self._resolved: dict[str, tuple[str, ...]] = {}  # the active hub's name's addresses
        self.changes: dict[str, int] = {}  # connection -> moves to the next hub

    def active(self, conn: ConnectionConfig) -> str | None:
        """The hub the next initiation of ``conn`` goes to (None: nothing to dial)."""
        hubs = hubs_of(conn)
        if not hubs:
            return None
        return hubs[self._active.get(conn.name, 0) % len(hubs)]

    def position(self, conn: ConnectionConfig) -> tuple[int, int]:
        """(index of the active hub, number of hubs)."""
        hubs = hubs_of(conn)
        return (self._active.get(conn.name, 0) % len(hubs) if hubs else 0), len(hubs)

    def pick(self, conn: ConnectionConfig, peer: str) -> None:
        """Make ``peer`` (one of ``remote_addrs``) the active hub; ValueError if it is not."""
        hubs = hubs_of(conn)
        wanted = peer.lower().rstrip(".")
        if wanted not in hubs:
            raise ValueError(f"{peer} is not one of {conn.name}'s remote_addrs ({', '.join(hubs)})")
        self._active[conn.name] = hubs.index(wanted)

    def advance(self, conn: ConnectionConfig, failed: str, why: str) -> bool:
        """The active hub ``failed`` (its address or name); move to the next. True when
        that wrapped around to the first (a full round over the hubs is over). A hub that
        is not the active one any more (moved on already) changes nothing."""
        hubs = hubs_of(conn)
        if len(hubs) < 2:
            return True
        i = self._active.get(conn.name, 0) % len(hubs)
        if failed != hubs[i] and failed not in self._resolved.get(conn.name, ()):
            return False
        nxt = (i + 1) % len(hubs)
        self._active[conn.name] = nxt
        self._resolved.pop(conn.name, None)
        self.changes[conn.name] = self.changes.get(conn.name, 0) + 1
        log.warning("%s: hub %s %s: moving to hub %s", conn.name, hubs[i], why, hubs[nxt])
        return nxt == 0

    def resolved(self, conn: str, addresses: tuple[str, ...]) -> None:
        """The addresses the active hub's DNS name resolved to (an SA knows the address it
        went to, the list the name)."""
        self._resolved[conn] = addresses

    def forget(self, conn: str) -> None:
        """A reload changed or removed ``conn``: start again from its first hub."""
        self._active.pop(conn, None)
        self._resolved.pop(conn, None)
