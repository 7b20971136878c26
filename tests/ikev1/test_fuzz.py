"""Whatever arrives, the IKEv1 engine only drops and counts (RFC 2408 §5: a bad message is
discarded): mutated copies of every message of real exchanges, fed to both ends at every
stage, never raise out of ``receive_datagram``."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikev2.pair import Node, transfer
from pike.sa.actions import SendDatagram

from .v1pair import make_pair

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KW = {"proposals": '"aes128-sha256-ecp256"', "esp": '"aes128-sha256-ecp256"'}
AGGR = {**KW, "extra_conn": "aggressive = true"}


def _recorded(kw: dict[str, str]) -> tuple[Node, Node, list[SendDatagram]]:
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.engine.terminate("gw", 1.0)
    transfer(a, b, 1.0)
    return a, b, a.outbox + b.outbox


MAIN = _recorded(KW)
AGGRESSIVE = _recorded(AGGR)


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        kind = draw.draw(st.sampled_from(["flip", "byte", "u16", "cut", "extend"]))
        if kind == "flip" and buf:
            i = draw.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw.draw(st.integers(0, 7))
        elif kind == "byte" and buf:
            buf[draw.draw(st.integers(0, len(buf) - 1))] = draw.draw(st.integers(0, 255))
        elif kind == "u16" and len(buf) >= 2:
            i = draw.draw(st.integers(0, len(buf) - 2))
            struct.pack_into("!H", buf, i, draw.draw(st.integers(0, 0xFFFF)))
        elif kind == "cut":
            del buf[draw.draw(st.integers(0, len(buf))) :]
        elif kind == "extend":
            buf += draw.draw(st.binary(min_size=1, max_size=32))
    if len(buf) >= 28 and draw.draw(st.booleans()):
        struct.pack_into("!I", buf, 24, len(buf))
    return bytes(buf)


@FAST
@given(st.sampled_from(["main", "aggressive"]), st.data())
def test_mutated_messages_are_only_dropped(mode: str, data: st.DataObject) -> None:
    """Fresh engines each time, brought to a random point of the exchange; then a mutated
    copy of one recorded message goes to each of them."""
    kw = KW if mode == "main" else AGGR
    recorded = (MAIN if mode == "main" else AGGRESSIVE)[2]
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    steps = data.draw(st.integers(0, 6))
    transfer(a, b, 0.0, rounds=steps)
    d = data.draw(st.sampled_from(recorded))
    bad = _mutate(d.data, data)
    for node in (a, b):
        node.engine.receive_datagram(bad, d.src, d.dst, 0.5)
        node.engine.handle_timer(0.5)
        node.drain()
