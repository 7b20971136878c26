"""IKE datagrams in and out: each received datagram goes to the engine, each
``SendDatagram``/``SendKeepalive`` action to the UDP 500/4500 sockets (``IkeSockets``).

The engine's actions are acted on after every datagram (its answers go out at once); the
loop timer is re-armed once per batch the sockets read in one wake-up (``batch_done``):
no timer can run while the batch is read, and asking the engine after each datagram
cost as much as the rest of this module. The engine and the clock exist once the daemon
runs: ``open`` hands both to the sockets, which call the engine for each datagram and
then the runtime's drain (no layer in between: these run for every datagram)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from pike.daemon.sockets import IkeSockets
from pike.policy.config import DaemonConfig
from pike.sa.actions import Address, SendDatagram, SendKeepalive
from pike.wire.constants import NATT_KEEPALIVE

log = logging.getLogger("pike.daemon")


class DatagramInput(Protocol):
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None: ...


def _no_socket(a: SendDatagram) -> None:
    """``send_datagram`` before ``open``: nothing goes out, nothing is counted."""


class Datagrams:
    def __init__(
        self,
        drain: Callable[[], None],
        rearm: Callable[[], None],
        stats: Counter[str],
    ) -> None:
        self._drain = drain  # act on the engine's actions
        self._rearm = rearm  # arm the loop timer at the engine's next deadline
        self.stats = stats
        self._sockets: IkeSockets | None = None
        # The engine's datagrams out: the sockets' own ``send_datagram`` once open (it
        # counts datagrams_out); the runtime routes ``SendDatagram`` to it after ``open``.
        self.send_datagram: Callable[[SendDatagram], None] = _no_socket

    def open(
        self,
        loop: asyncio.AbstractEventLoop,
        d: DaemonConfig,
        ipv6: bool,
        engine: DatagramInput,
        now: Callable[[], float],
    ) -> None:
        """Bind UDP 500/4500 (OSError if it cannot; ``close`` then cleans up); every
        datagram goes to ``engine`` at ``now()``."""
        self._sockets = IkeSockets(
            loop,
            engine.receive_datagram,
            ike_port=d.ike_port,
            natt_port=d.natt_port,
            ipv6=ipv6,
            now=now,
            after=self._drain,
            on_batch=self.batch_done,
            counts=self.stats,
        )
        self._sockets.open()
        self.send_datagram = self._sockets.send_datagram

    def close(self) -> None:
        if self._sockets is not None:
            self._sockets.close()

    @property
    def bound(self) -> bool:
        return self._sockets is not None and bool(self._sockets.bound)

    def batch_done(self, delivered: int) -> None:
        """The sockets read what was queued (``delivered`` datagrams went to the engine):
        counted, and the engine's timer armed once for all of them."""
        self.stats["datagrams_in"] += delivered
        self._rearm()

    def send(self, a: SendDatagram | SendKeepalive) -> None:
        if isinstance(a, SendDatagram):
            self.send_datagram(a)
        else:
            self.send_keepalive(a)

    def send_keepalive(self, a: SendKeepalive) -> None:
        # RFC 3948 §2.3: one 0xFF octet, without the non-ESP marker.
        if self._sockets is not None and self._sockets.send(
            NATT_KEEPALIVE, a.src, a.dst, marker=False
        ):
            self.stats["keepalives_out"] += 1
            log.debug("NAT-T keepalive %s[%d] -> %s[%d]", *a.src, *a.dst)
