"""What unauthenticated floods cost the engines (issue 13): prints figures, asserts nothing.

``.venv/bin/python tests/bench/bench_preauth.py [N]`` (in memory, one core):

- a spoofed IKE_SA_INIT flood (every datagram from a new address) above cookie_threshold:
  microseconds per datagram, bytes answered per byte received, SAs held;
- a cookie-echoing flood from one address: per datagram, SAs held;
- 28-byte header-only "retransmissions" of a half-open SA's request: bytes answered;
- IKEv1 MM1s spoofed with one address: per datagram, SAs held;
- the reassembly bound: bytes one IKE SA may hold in fragments (max_packet).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ikev1.v1pair import make_pair as v1_make_pair
from ikev2.pair import Node, conf, make_pair
from pike.sa.actions import SendDatagram
from pike.wire.codec import decode_message, encode_message
from pike.wire.constants import NotifyType
from pike.wire.payloads import NotifyPayload


def _responder(extra: str = "") -> tuple[Node, SendDatagram]:
    b = conf("192.0.2.2", "%any", "hq.example.net", "branch.example.net", extra_daemon=extra)
    a, b_node = make_pair(None, b)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    return b_node, init


def spoofed(n: int) -> None:
    b, init = _responder()
    out_bytes = 0
    t0 = time.perf_counter()
    for i in range(n):
        data = i.to_bytes(8, "big") + init.data[8:]
        src = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 500)
        b.engine.receive_datagram(data, src, init.dst, i / 10000)
        while (act := b.engine.next_action()) is not None:
            out_bytes += len(getattr(act, "data", b""))
    dt = time.perf_counter() - t0
    print(
        f"spoofed IKE_SA_INIT x{n}: {dt / n * 1e6:.1f} us/datagram, answered "
        f"{out_bytes / (n * len(init.data)):.2f} bytes per byte, {len(b.engine.sas)} SAs held"
    )


def cookie_echo(n: int) -> None:
    b, init = _responder()
    t0 = time.perf_counter()
    for i in range(n):
        data = (1000 + i).to_bytes(8, "big") + init.data[8:]
        b.engine.receive_datagram(data, init.src, init.dst, 1.0)
        for act in list(iter(b.engine.next_action, None)):
            got = decode_message(getattr(act, "data", b"")) if hasattr(act, "data") else None
            cookie = got.notify(NotifyType.COOKIE) if got is not None else None
            if cookie is not None:
                msg = decode_message(data)
                msg.payloads.insert(0, NotifyPayload(NotifyType.COOKIE, cookie.data))
                b.engine.receive_datagram(encode_message(msg), init.src, init.dst, 1.0)
                list(iter(b.engine.next_action, None))
    dt = time.perf_counter() - t0
    print(
        f"cookie-echoing IKE_SA_INIT x{n} from one address: {dt / n * 1e6:.1f} us/request, "
        f"{len(b.engine.sas)} SAs held, dropped {dict(b.engine.ctx.counters.dropped)}"
    )


def header_only(n: int) -> None:
    b, init = _responder()
    b.engine.receive_datagram(init.data, init.src, init.dst, 0.0)
    list(iter(b.engine.next_action, None))
    hdr = init.data[:24] + (28).to_bytes(4, "big")
    answered = 0
    for _ in range(n):
        b.engine.receive_datagram(hdr, init.src, init.dst, 0.0)
        answered += sum(len(getattr(a, "data", b"")) for a in iter(b.engine.next_action, None))
    print(f"28-byte header-only 'retransmissions' x{n}: {answered} bytes answered")


def v1_spoofed_mm1(n: int) -> None:
    a, b = v1_make_pair()
    a.engine.initiate("gw", 0.0, "net")
    (mm1,) = a.drain()
    t0 = time.perf_counter()
    for i in range(n):
        data = (i + 1).to_bytes(8, "big") + mm1.data[8:]
        b.engine.receive_datagram(data, mm1.src, mm1.dst, i / 10000)
        list(iter(b.engine.next_action, None))
    dt = time.perf_counter() - t0
    held = len(b.engine.list_sas())
    print(f"IKEv1 MM1 spoofed with one address x{n}: {dt / n * 1e6:.1f} us/datagram, {held} held")


def main() -> None:
    logging.disable(logging.CRITICAL)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    spoofed(n)
    cookie_echo(min(n, 2000))
    header_only(n)
    v1_spoofed_mm1(min(n, 5000))
    b, _ = _responder()
    mp = b.engine.ctx.config.daemon.max_packet
    print(f"reassembly: at most {mp} bytes of fragments per IKE SA (max_packet), 1 message")


if __name__ == "__main__":
    main()
