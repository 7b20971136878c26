"""Local addresses and routes for MOBIKE: rtnetlink events in, ``paths_changed`` out.

The engine decides (``Ikev2Engine.paths_changed``); this part only watches the routing
netlink groups for address, link and route changes, waits ``SETTLE`` for a burst to end
(a link going down removes its routes one message at a time), and then asks the kernel
which source address it would use toward each MOBIKE peer (``ip route get``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from pike.kernel import rtnetlink as rt
from pike.kernel.netlink import NetlinkDecodeError, NetlinkError
from pike.kernel.route_socket import RouteSocket

log = logging.getLogger("pike.daemon")

SETTLE = 0.1  # seconds from the first event of a burst to the route lookups
_GROUPS = (
    rt.RTMGRP_LINK
    | rt.RTMGRP_IPV4_IFADDR
    | rt.RTMGRP_IPV4_ROUTE
    | rt.RTMGRP_IPV6_IFADDR
    | rt.RTMGRP_IPV6_ROUTE
)


class Roaming(Protocol):
    def mobike_peers(self) -> set[str]: ...

    def paths_changed(
        self, addresses: tuple[str, ...], sources: Mapping[str, str | None], now: float
    ) -> None: ...


def local_addresses(rtnl: RouteSocket) -> tuple[str, ...]:
    """Every address assigned here that can carry IKE (not loopback, not tentative)."""
    out: list[str] = []
    for msg in rtnl.addresses():
        addr = msg.get_attr("IFA_ADDRESS")
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if not addr or addr in ("127.0.0.1", "::1") or flags & rt.IFA_F_TENTATIVE:
            continue
        out.append(str(addr))
    return tuple(dict.fromkeys(out))


def route_sources(rtnl: RouteSocket, peers: Iterable[str]) -> dict[str, str | None]:
    """The source address the kernel picks toward each peer; None without a route."""
    out: dict[str, str | None] = {}
    for peer in sorted(peers):
        try:
            routes = rtnl.route_get(peer)
        except (NetlinkError, ValueError):  # ENETUNREACH, EHOSTUNREACH: no path now
            out[peer] = None
            continue
        src = routes[0].get_attr("RTA_PREFSRC") if routes else None
        out[peer] = str(src) if src else None
    return out


Found = tuple[tuple[str, ...], dict[str, str | None]]


def _lookup(peers: set[str]) -> Found | None:
    """Our addresses and the source toward each peer."""
    try:
        with RouteSocket() as rtnl:
            return local_addresses(rtnl), route_sources(rtnl, peers)
    except (OSError, NetlinkError, NetlinkDecodeError) as exc:
        log.warning("reading addresses and routes failed: %s", exc)
        return None


class PathWatcher:
    """Tells the engine about address and route changes, at start and after each burst."""

    def __init__(
        self, engine: Callable[[], Roaming], now: Callable[[], float], pump: Callable[[], None]
    ) -> None:
        self._engine = engine
        self._now = now
        self._pump = pump
        self._sock: socket.socket | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.bind((0, _GROUPS))
            sock.setblocking(False)
        except OSError as exc:
            log.warning("address and route changes not followed (MOBIKE): %s", exc)
            return
        self._sock = sock
        loop.add_reader(sock.fileno(), self._readable)
        # once now, waiting: IKE_AUTH announces our addresses
        self._deliver(_lookup(self._engine().mobike_peers()))

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        assert self._sock is not None
        # what changed does not matter: the lookups after the burst read the result
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(65536):
                pass
        if self._pending is None and self._loop is not None:
            self._pending = self._loop.call_later(SETTLE, self._settled)

    def _settled(self) -> None:
        self._pending = None
        if self._loop is None or self._sock is None:
            return
        # off the loop: one route request per MOBIKE peer (a hub may have thousands)
        task = self._loop.run_in_executor(None, _lookup, self._engine().mobike_peers())
        task.add_done_callback(lambda f: self._deliver(f.result()))

    def _deliver(self, found: Found | None) -> None:
        """Hand what the lookups found to the engine (on the event loop)."""
        if found is None or self._sock is None:
            return
        addresses, sources = found
        log.debug("local addresses %s, sources %s", addresses, sources)
        try:
            self._engine().paths_changed(addresses, sources, self._now())
        except Exception:  # an engine bug must not stop the daemon
            log.exception("engine failed on a path change")
        finally:
            self._pump()
