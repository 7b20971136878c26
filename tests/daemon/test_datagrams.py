"""Datagrams between the sockets and the engine: the answers to a batch of requests read
in one wake-up go out after its last one, in order; anything else goes out at once."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

from pike.daemon.datagrams import Datagrams
from pike.policy.config import DaemonConfig
from pike.sa.actions import Address, SendDatagram

from .helpers import free_udp_ports


def _answers(peer: socket.socket) -> list[bytes]:
    """What has reached ``peer`` so far (it does not wait)."""
    got = []
    while True:
        try:
            got.append(peer.recv(100))
        except BlockingIOError:
            return got


def test_a_batch_is_answered_after_its_last_request_and_a_lone_one_at_once() -> None:
    ike, natt = free_udp_ports(2)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    me: Address = ("127.0.0.1", peer.getsockname()[1])
    queue: list[SendDatagram] = []
    events: list[str] = []

    class Echo:
        """An engine that answers every request (and notes what reached the peer)."""

        def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
            events.append(f"{data.decode()} (peer has {_answers(peer)})")
            queue.append(SendDatagram(b"re:" + data, dst, src))

    def drain() -> None:
        while queue:
            datagrams.send_datagram(queue.pop(0))

    datagrams = Datagrams(drain, lambda: events.append("rearm"), Counter())

    async def scenario() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        config = DaemonConfig(ike_port=ike, natt_port=natt)
        datagrams.open(loop, config, False, Echo(), loop.time)
        try:
            for data in (b"one", b"two", b"three"):  # queued before the loop reads any
                peer.sendto(data, ("127.0.0.1", ike))
            await asyncio.sleep(0.1)
            batch = _answers(peer)
            peer.sendto(b"four", ("127.0.0.1", ike))
            await asyncio.sleep(0.1)
            lone = _answers(peer)
            # outside a batch (a timer's retransmission, a signature's answer): at once
            datagrams.send_datagram(SendDatagram(b"timer", ("127.0.0.1", ike), me))
            return [batch, lone, _answers(peer)]
        finally:
            datagrams.close()

    batch, lone, timer = asyncio.run(scenario())
    peer.close()
    assert events == [
        "one (peer has [])",
        "two (peer has [])",  # the answer to one is held until the batch is read
        "three (peer has [])",
        "rearm",
        "four (peer has [])",
        "rearm",
    ]
    assert batch == [b"re:one", b"re:two", b"re:three"]
    assert lone == [b"re:four"]
    assert timer == [b"timer"]
    assert datagrams.stats == Counter(datagrams_in=4, datagrams_out=5)
