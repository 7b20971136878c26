"""Helpers for the lifecycle proofs against strongSwan (issue 3, item 7).

- :func:`rsa4096_chain`: root CA + intermediate + two leaves, all RSA-4096 (IKE_AUTH with
  a leaf and the intermediate is well over 1280 octets, so it must be fragmented);
- :data:`UDPSTREAM`: a Python script run inside a namespace: ``send DST PORT RATE SECONDS``
  sends numbered datagrams at RATE/s; ``recv PORT IDLE`` counts them until IDLE seconds pass
  without one and prints a JSON summary (received, highest number, missing, duplicates);
- :func:`wait_for`: poll a condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from ikev2 import x509gen

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float, step: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(step)


@dataclass(frozen=True)
class Chain:
    root: x509gen.Issued
    intermediate: x509gen.Issued
    branch: x509gen.Issued
    hq: x509gen.Issued


def _rsa4096(kind: str) -> x509gen.PrivateKey:
    return rsa.generate_private_key(65537, 4096)


def rsa4096_chain(branch: str, hq: str) -> Chain:
    """CA -> intermediate -> {branch, hq} leaves, every key RSA-4096."""
    orig = x509gen.new_key
    x509gen.new_key = _rsa4096
    try:
        root = x509gen.make_ca("rsa", "pike big root CA")
        inter = x509gen.make_ca("rsa", "pike big intermediate CA", issuer=root, path_length=0)
        b = x509gen.issue(inter, "rsa", branch, [x509.DNSName(branch)])
        h = x509gen.issue(inter, "rsa", hq, [x509.DNSName(hq)])
    finally:
        x509gen.new_key = orig
    return Chain(root, inter, b, h)


def write_chain(chain: Chain, directory: Path) -> dict[str, Path]:
    """``root.pem``, ``inter.pem``, ``branch.pem``/``.key``, ``hq.pem``/``.key``."""
    out: dict[str, Path] = {}
    for stem, issued in (
        ("root", chain.root),
        ("inter", chain.intermediate),
        ("branch", chain.branch),
        ("hq", chain.hq),
    ):
        cert, key = x509gen.write(directory, stem, issued)
        out[stem], out[stem + "_key"] = cert, key
    return out


UDPSTREAM = r"""
import json, socket, struct, sys, time
mode = sys.argv[1]
if mode == "send":
    dst, port, rate, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = int(rate * seconds)
    t0 = time.monotonic()
    errors = 0
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            s.sendto(struct.pack("!I", i) + b"pike-stream" * 4, (dst, port))
        except OSError:
            errors += 1
    print(json.dumps({"sent": n, "send_errors": errors, "seconds": time.monotonic() - t0}))
else:
    port, idle, limit = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    def rcvbuf_errors():
        lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # a busy guest may not schedule us for a while: room for seconds of the stream
    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
    s.bind(("0.0.0.0", port))
    errors0 = rcvbuf_errors()
    print("ready", flush=True)
    seen = set()
    dups = 0
    reordered = 0
    last = -1
    first_t = None
    end = time.monotonic() + limit
    s.settimeout(limit)
    while time.monotonic() < end:
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            break
        s.settimeout(idle)
        if first_t is None:
            first_t = time.monotonic()
        (i,) = struct.unpack("!I", data[:4])
        if i in seen:
            dups += 1
        seen.add(i)
        if i < last:
            reordered += 1
        last = max(last, i)
    top = max(seen) if seen else -1
    missing = sorted(set(range(top + 1)) - seen)
    print(json.dumps({
        "received": len(seen), "highest": top, "missing": missing[:50],
        "missing_count": len(missing), "duplicates": dups, "reordered": reordered,
        "rcvbuf_errors": rcvbuf_errors() - errors0,
    }), flush=True)
"""
