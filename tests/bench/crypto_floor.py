"""How much of a responder handshake is crypto no Python change can remove?

    python tests/bench/crypto_floor.py [--handshakes 200] [--charon-ms 0.317] [--kernel-ms 0.040]

Issue 12 asks for a responder IKE_SA_INIT+IKE_AUTH (one CHILD_SA, PSK,
aes128gcm16-prfsha256-x25519) at half of charon's CPU. Part of piked's is C that any
implementation on ``cryptography`` and ``hashlib`` pays: the X25519 key pair and shared
secret, the HMACs of the key derivation and AUTH, AES-GCM, the NAT-D hashes. This script
counts those calls per handshake in ``bench_hub_engine``'s in-memory pair (cProfile sees
every C call; only the counts are taken from it, its per-call cost would inflate the times),
times each kind alone with inputs of a handshake's sizes, and prints the sum: the crypto
floor. With ``--charon-ms`` (bench_hub.py's charon figure) and ``--kernel-ms`` (piked's
system time per handshake there) it also prints what is left for all of piked's Python at
0.5x. A benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from _hashlib import hmac_new

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.bench_hub_engine import branch_text, hub_text
from ikev2.pair import Node
from ikev2.pair import engine as v2engine

_PEER = x25519.X25519PrivateKey.generate()
_PEER_KEY = _PEER.public_key()
_PEER_PUBLIC = _PEER_KEY.public_bytes_raw()
_GCM = AESGCM(os.urandom(16))
_NONCE, _AAD, _BODY = os.urandom(12), os.urandom(32), os.urandom(300)
_SEALED = _GCM.encrypt(_NONCE, _BODY, _AAD)

# What names a C call as cProfile shows it ("<method 'x' of ...>") -> what it is -> one
# call of that kind with a handshake's input sizes (32-byte keys, ~300-byte messages).
KINDS: list[tuple[str, str, Callable[[], object]]] = [
    (
        "x25519.from_private_bytes",
        "X25519 key pair",
        lambda: x25519.X25519PrivateKey.from_private_bytes(os.urandom(32)),
    ),
    ("'exchange'", "X25519 shared secret", lambda: _PEER.exchange(_PEER_KEY)),
    (
        "x25519.from_public_bytes",
        "X25519 peer's public value",
        lambda: x25519.X25519PublicKey.from_public_bytes(_PEER_PUBLIC),
    ),
    ("'public_key'", "X25519 public key", _PEER.public_key),
    ("'public_bytes_raw'", "X25519 public value", _PEER_KEY.public_bytes_raw),
    ("_hashlib.hmac_new", "HMAC-SHA-256 keyed and fed", lambda: hmac_new(_AAD, _BODY, "sha256")),
    (
        "'digest' of '_hashlib.HMAC'",
        "HMAC-SHA-256 done",
        hmac_new(_AAD, _BODY, "sha256").digest,
    ),
    ("'encrypt' of '", "AES-GCM seal", lambda: _GCM.encrypt(_NONCE, _BODY, _AAD)),
    ("'decrypt' of '", "AES-GCM open", lambda: _GCM.decrypt(_NONCE, _SEALED, _AAD)),
    ("_hashlib.openssl_sha", "NAT-D SHA-1 fed", lambda: hashlib.sha1(_BODY[:40])),
    ("'digest' of '_hashlib.HASH'", "NAT-D SHA-1 done", hashlib.sha1(_BODY[:40]).digest),
    # the pair draws from a seeded Random; piked from the kernel (os.urandom)
    ("'getrandbits' of '_random.Random'", "random bytes (os.urandom)", lambda: os.urandom(32)),
]


def per_call_us(call: Callable[[], object], n: int = 3000) -> float:
    """Best of five timings of ``n`` calls, in µs per call."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            call()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def hub_part(branch: Node, hub: Node, i: int, profile: cProfile.Profile | None) -> float:
    """Branch connection ``c<i>`` up; returns the seconds of the hub's part (profiled if
    ``profile``)."""
    spent = 0.0
    branch.engine.initiate(f"c{i}", 0.0)
    pending = branch.drain()
    while pending:
        t = time.perf_counter()
        if profile is not None:
            profile.enable()
        for d in pending:
            hub.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
        back = hub.drain()
        hub.engine.get_timer()
        if profile is not None:
            profile.disable()
        spent += time.perf_counter() - t
        for d in back:
            branch.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
        pending = branch.drain()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--handshakes", type=int, default=200)
    ap.add_argument("--charon-ms", type=float, help="charon's CPU per handshake (bench_hub.py)")
    ap.add_argument("--kernel-ms", type=float, help="piked's system CPU per handshake there")
    args = ap.parse_args()
    warm, n = 20, args.handshakes
    branch = Node(v2engine(branch_text(warm + 2 * n), 1))
    hub = Node(v2engine(hub_text(1), 2))
    for i in range(warm):  # first-use caches are not a handshake's cost
        hub_part(branch, hub, i, None)
    profile = cProfile.Profile()
    for i in range(warm, warm + n):
        hub_part(branch, hub, i, profile)
    counts = [0.0] * len(KINDS)
    for entry in profile.getstats():
        if isinstance(entry.code, str):  # a C function: its name as "<method 'x' of ...>"
            for k, (pattern, _, _) in enumerate(KINDS):
                if pattern in entry.code:
                    counts[k] += entry.callcount / n
    gc.disable()  # its pauses land anywhere: time the engine without them, as the floor
    try:
        total = sum(hub_part(branch, hub, i, None) for i in range(warm + n, warm + 2 * n)) / n
    finally:
        gc.enable()
    print(f"per responder handshake (in memory, mean of {n}):")
    floor = 0.0
    for count, (_, what, call) in zip(counts, KINDS, strict=True):
        if count:
            us = per_call_us(call)
            floor += count * us
            print(f"  {count:5.2f} x {us:6.2f} µs  {what}")
    print(f"crypto floor {floor:.1f} µs of the hub's part {total * 1e6:.1f} µs;", end=" ")
    print(f"the rest (Python and the C it calls) {total * 1e6 - floor:.1f} µs")
    if args.charon_ms is not None and args.kernel_ms is not None:
        half, kernel = args.charon_ms * 1e3 / 2, args.kernel_ms * 1e3
        budget = half - floor - kernel
        print(f"0.5x of charon is {half:.1f} µs: after the crypto and {kernel:.1f} µs of kernel")
        print(f"work, {budget:.1f} µs are left for all of piked's Python (engine and runtime),")
        print(f"{budget / (total * 1e6 - floor):.2f}x of what the engine's alone takes today")


if __name__ == "__main__":
    main()
