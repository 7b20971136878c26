"""IKE sockets on loopback (high ports): local address from PKTINFO, NAT-T marker handling,
source address selection on send."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

from pike.daemon.sockets import IkeSockets
from pike.sa.actions import Address, SendDatagram

from .helpers import free_udp_ports


def _peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


async def _collect(
    ike: int, natt: int, fn: Any
) -> tuple[list[tuple[bytes, Address, Address]], Any]:
    got: list[tuple[bytes, Address, Address]] = []
    loop = asyncio.get_running_loop()
    socks = IkeSockets(
        loop, lambda d, s, t, _now: got.append((d, s, t)), ike_port=ike, natt_port=natt
    )
    socks.open()
    try:
        result = await fn(socks)
        await asyncio.sleep(0.1)
    finally:
        socks.close()
    return got, result


def test_receive_learns_local_address_and_strips_marker() -> None:
    ike, natt = free_udp_ports(2)
    peer = _peer()
    port = peer.getsockname()[1]

    async def send(_: IkeSockets) -> None:
        peer.sendto(b"ike-on-500", ("127.0.0.3", ike))
        peer.sendto(b"\x00\x00\x00\x00ike-on-4500", ("127.0.0.1", natt))
        peer.sendto(b"\xff", ("127.0.0.1", natt))  # NAT-T keepalive: ignored
        await asyncio.sleep(0.1)

    got, _ = asyncio.run(_collect(ike, natt, send))
    peer.close()
    assert got == [
        (b"ike-on-500", ("127.0.0.1", port), ("127.0.0.3", ike)),
        (b"ike-on-4500", ("127.0.0.1", port), ("127.0.0.1", natt)),
    ]


def test_send_picks_socket_source_and_marker() -> None:
    ike, natt = free_udp_ports(2)
    peer = _peer()
    dst = ("127.0.0.1", peer.getsockname()[1])

    async def send(socks: IkeSockets) -> list[tuple[bytes, Any]]:
        assert socks.send(b"plain", ("127.0.0.2", ike), dst)
        assert socks.send(b"natt", ("127.0.0.1", natt), dst)
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(None, peer.recvfrom, 100) for _ in range(2)]

    _, received = asyncio.run(_collect(ike, natt, send))
    peer.close()
    assert received == [
        (b"plain", ("127.0.0.2", ike)),
        (b"\x00\x00\x00\x00natt", ("127.0.0.1", natt)),
    ]


def test_datagrams_read_in_one_wakeup_end_with_one_batch_call() -> None:
    """The runtime acts on the engine's actions after each datagram (``after``) and
    re-arms the engine's timer once per batch (``on_batch``, with how many went on): it
    must follow every datagram of the wake-up, and come even when delivering one failed."""
    ike, natt = free_udp_ports(2)
    peer = _peer()
    events: list[str] = []

    def on_datagram(data: bytes, src: Address, dst: Address, now: float) -> None:
        events.append(data.decode())
        if data == b"bad":
            raise ValueError("the engine failed")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        socks = IkeSockets(
            loop,
            on_datagram,
            ike_port=ike,
            natt_port=natt,
            ipv6=False,
            after=lambda: events.append("after"),
            on_batch=lambda n: events.append(f"batch of {n}"),
        )
        socks.open()
        try:
            for data in (b"one", b"bad", b"three"):  # queued before the loop reads any
                peer.sendto(data, ("127.0.0.1", ike))
            await asyncio.sleep(0.1)
            peer.sendto(b"four", ("127.0.0.1", ike))
            await asyncio.sleep(0.1)
        finally:
            socks.close()

    asyncio.run(scenario())
    peer.close()
    # the runtime's drain after each one, the engine's failure on "bad" included
    assert events == [
        *("one", "after", "bad", "after", "three", "after", "batch of 3"),
        *("four", "after", "batch of 1"),
    ]


def test_engine_datagrams_go_from_their_source_with_marker_and_are_counted() -> None:
    """``send_datagram`` (the runtime's route for SendDatagram): from the socket and
    address the engine chose, the non-ESP marker on the NAT-T port, each counted once it
    went; a source with no socket is logged and not counted."""
    ike, natt = free_udp_ports(2)
    peer = _peer()
    dst = ("127.0.0.1", peer.getsockname()[1])

    async def send(socks: IkeSockets) -> list[tuple[bytes, Any]]:
        for _ in range(2):  # the second time from what was kept of each source
            socks.send_datagram(SendDatagram(b"plain", ("127.0.0.2", ike), dst))
            socks.send_datagram(SendDatagram(b"natt", ("127.0.0.1", natt), dst))
        socks.send_datagram(SendDatagram(b"v6", ("::1", ike), ("::1", 500)))  # IPv4 only
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(None, peer.recvfrom, 100) for _ in range(4)]

    counts: Counter[str] = Counter()

    async def scenario() -> list[tuple[bytes, Any]]:
        socks = IkeSockets(
            asyncio.get_running_loop(),
            lambda *_: None,
            ike_port=ike,
            natt_port=natt,
            ipv6=False,
            counts=counts,
        )
        socks.open()
        try:
            return await send(socks)
        finally:
            socks.close()

    received = asyncio.run(scenario())
    peer.close()
    assert received == 2 * [
        (b"plain", ("127.0.0.2", ike)),
        (b"\x00\x00\x00\x00natt", ("127.0.0.1", natt)),
    ]
    assert counts["datagrams_out"] == 4
