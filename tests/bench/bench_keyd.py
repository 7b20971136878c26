"""The cost of privilege separation: a signature (and a peer chain check) through
pike-keyd vs in piked's own process.

    .venv/bin/python tests/bench/bench_keyd.py [--n 1000] [--tpm]

Per key: ``CredentialStore.sign`` in this process (what piked does with ``key_helper =
"off"``) and the same call on a store whose signers are pike-keyd's (``"spawn"``: a
blocking request over the socketpair from the calling thread, as piked's signing threads
make it), in alternating rounds so that the machine's load weighs on both alike; the
medians and their difference are printed. Then ``check_chain`` inline vs a CHECK request
for a two-certificate P-256 chain and the largest accepted (end entity and eight P-521
intermediates). Keys: a PEM file, a private SoftHSM2 token and, with ``--tpm``, the TPM
2.0 simulator (swtpm + tpm2-abrmd); every process started here is stopped by PID. A
benchmark: it prints figures and asserts none.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (hsm, ikev2 helpers)

from cryptography.hazmat.primitives import serialization

from bench.bench_tokens import BenchTokens
from hsm.test_pkcs11_tokens import _generate
from hsm.tokens import reset_pike_tokens, uri
from ikev2.x509gen import issue, make_ca, new_key
from pike.hsm.signer import SignatureScheme
from pike.keyd.client import KeyHelper, path_of
from pike.sa.certs import check_chain
from pike.sa.credentials import CredentialStore

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_DER = serialization.Encoding.DER
SCHEME = {"ecdsa-p256": SignatureScheme.ECDSA_SHA256, "rsa": SignatureScheme.RSA_PKCS1_SHA256}


def _rounds(sides: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median ms of each side, called in turn n times."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    for fn in sides.values():
        fn()  # warm: first login, first key lookup
    for _ in range(n):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def bench_key(label: str, key: str, kind: str, helper: KeyHelper, n: int) -> None:
    local = CredentialStore()
    remote = CredentialStore(helper.signer)
    spki = local.signer(key).public_key().public_bytes(*_SPKI)
    data = os.urandom(300)  # about what IKEv2 signs: IKE_SA_INIT + nonce + prf
    scheme = SCHEME[kind]
    ms = _rounds(
        {
            "in-process": lambda: local.sign(key, spki, data, scheme),
            "pike-keyd": lambda: remote.sign(key, spki, data, scheme),
        },
        n,
    )
    extra = ms["pike-keyd"] - ms["in-process"]
    print(
        f"{label:8} {kind:11} {ms['in-process']:10.3f} {ms['pike-keyd']:10.3f} {extra:+9.3f}  {n:5}"
    )


def bench_chains(helper: KeyHelper, n: int) -> None:
    when = datetime.now(UTC)
    chains: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
    root = make_ca("ecdsa-p256", "bench root")
    leaf = issue(root, "ecdsa-p256", "peer.example.net")
    chains["p256, 2 certs"] = ((leaf.cert.public_bytes(_DER),), (root.cert.public_bytes(_DER),))
    cas = [make_ca("ecdsa-p521", "bench p521 root")]
    for i in range(8):
        cas.append(make_ca("ecdsa-p521", f"bench p521 intermediate {i}", issuer=cas[-1]))
    leaf = issue(cas[-1], "ecdsa-p521", "peer.example.net")
    certs = (leaf.cert, *[c.cert for c in reversed(cas[1:])])
    chains["p521, 9 certs"] = (
        tuple(c.public_bytes(_DER) for c in certs),
        (cas[0].cert.public_bytes(_DER),),
    )
    for name, (certs_der, anchors) in chains.items():
        inline = functools.partial(check_chain, certs_der, anchors, when)
        remote = functools.partial(_remote_check, helper, certs_der, anchors, when)
        ms = _rounds({"inline": inline, "pike-keyd": remote}, n)
        extra = ms["pike-keyd"] - ms["inline"]
        print(f"{'chain':8} {name:14} {ms['inline']:7.3f} {ms['pike-keyd']:10.3f}", end="")
        print(f" {extra:+9.3f}  {n:5}")


def _remote_check(
    helper: KeyHelper, certs: tuple[bytes, ...], anchors: tuple[bytes, ...], when: datetime
) -> tuple[int, ...]:
    return path_of(helper.check_chain(certs, anchors, when).result(10))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000, help="calls per key and side")
    p.add_argument("--tpm", action="store_true", help="also the TPM 2.0 simulator")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pike-bench-keyd-"))
    tokens = BenchTokens(tmp)
    keys: list[tuple[str, str, str]] = []
    for kind in ("ecdsa-p256", "rsa"):
        path = tmp / f"{kind}.key"
        private = new_key(kind)
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        keys.append(("file", str(path), kind))
    with tokens:
        soft = tokens.softhsm()
        if soft is not None:
            for kind, label in (("ecdsa-p256", "ec"), ("rsa", "rsa")):
                _generate(soft.module, "bench", "rsa3072" if kind == "rsa" else kind, label)
                keys.append(("softhsm", uri(soft.module, "bench", label), kind))
        if args.tpm:
            tpm = tokens.start_tpm()
            _generate(tpm.module, "bench", "ecdsa-p256", "ec")
            keys.append(("tpm", uri(tpm.module, "bench", "ec"), "ecdsa-p256"))
        reset_pike_tokens()
        helper = KeyHelper.spawn()
        try:
            print("signature, median ms: CredentialStore.sign in piked vs through pike-keyd")
            head = f"{'key in':8} {'kind':11} {'in-process':>10} {'pike-keyd':>10}"
            print(f"{head} {'extra':>9}  {'n':>5}")
            for label, key, kind in keys:
                n = args.n if label != "tpm" else max(50, args.n // 10)
                bench_key(label, key, kind, helper, n)
            print()
            print("peer chain check, median ms: inline vs CHECK through pike-keyd")
            print(f"{'':8} {'chain':14} {'inline':>7} {'pike-keyd':>10} {'extra':>9}  {'n':>5}")
            bench_chains(helper, max(50, args.n // 5))
        finally:
            helper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
