"""Which connections an interface change concerns (pike.board.hotplug events).

A connection is bound to the interfaces that carry its local address; with none configured
(``%any``) it is bound to all. When an interface appears, connections that should be up
(a child with ``start_action = "start"``) and whose local address is now present are
brought up at once: initiated if they have no IKE SA, restarted if their IKE SA is still
connecting (its retransmissions went nowhere and the backoff may be a minute away).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from pike.policy.config import Config, ConnectionConfig
from pike.sa.actions import IkeSaInfo

__all__ = ["Bringup", "address_present", "bound_to_present", "to_bring_up"]


def address_present(addr: str) -> bool:
    """True when ``addr`` is assigned here (a UDP bind to it succeeds)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return True  # a name: resolved per exchange, not bound to one interface
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def bound_to_present(conn: ConnectionConfig, present: Callable[[str], bool]) -> bool:
    addrs = [a for a in conn.local_addrs if a != "%any"]
    return not addrs or any(present(a) for a in addrs)


@dataclass(frozen=True, slots=True)
class Bringup:
    conn: str
    child: str
    how: Literal["initiate", "restart"]


def to_bring_up(
    config: Config, sas: Iterable[IkeSaInfo], present: Callable[[str], bool]
) -> list[Bringup]:
    """The connections to (re)start now that their local address may have appeared."""
    states: dict[str, set[str]] = {}
    for sa in sas:
        states.setdefault(sa.name, set()).add(sa.state)
    out = []
    for conn in config.connections.values():
        start = next((c.name for c in conn.children if c.start_action == "start"), None)
        if start is None or not conn.remote_addrs or not bound_to_present(conn, present):
            continue
        seen = states.get(conn.name, set())
        if not seen:
            out.append(Bringup(conn.name, start, "initiate"))
        elif seen == {"CONNECTING"}:
            out.append(Bringup(conn.name, start, "restart"))
    return out
