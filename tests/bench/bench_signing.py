"""Signing latency through pike vs raw python-pkcs11, and IKE_AUTH with a token vs a file key.

    .venv/bin/python tests/bench/bench_signing.py [--n 1000] [--ike 30]

Tokens: a private SoftHSM2 and a TPM 2.0 simulator (swtpm + tpm2-abrmd + tpm2-pkcs11);
every process started here is stopped by PID. Per key, three ways to make the same
signature over the same octets with the same key handle, called in rounds (one call each,
every order in turn, so that the load of a shared machine and the caches weigh on all
three alike); the median latency of each and the median of the rounds' ratios to ``raw``
are printed:

- ``raw``: the mechanism called straight on the python-pkcs11 key object, with the work
  IKE needs done in the cheapest way: our hash (SHA-256/384 of the octets, DigestInfo in
  front for RSA PKCS#1 v1.5), and for ECDSA the DER ECDSA-Sig-Value. DER belongs on this
  side too because IKEv2 carries ECDSA in RFC 7427 AUTH (method 14, which pike uses with
  every peer that sends SIGNATURE_HASH_ALGORITHMS, strongSwan included) as DER; the token
  returns r||s, so any IKE implementation over PKCS#11 pays that conversion. It uses the
  same function as pike (``ecdsa_raw_to_der``): the ratio is then pike's own overhead.
  (Measured without DER on this side, SoftHSM2 P-256, ~0.11 ms a signature, reads about
  1.06: about 3% is the DER itself, even built from slices as it is now.)
- ``signer``: ``Pkcs11Signer.sign`` (the module lock, the token and session checks, the
  scheme's plan, the same hash, mechanism and DER);
- ``store``: ``CredentialStore.sign``, what piked runs per AUTH signature (the key checked
  against our certificate's public key, then the signer).

Every signature is verified once against the key's public key, so the three sides are
known to produce the same kind of signature. Then IKE_SA_INIT + IKE_AUTH between two pike
engines in memory (tests/ikev2 pair, fixed randomness) with the initiator's key in each
token vs in a PEM file: the round trip the key custody adds. A benchmark, not a test: it
prints figures and asserts none of them (target: signer and store within 5% of raw). The
TPM gets n/2 rounds: each signature takes milliseconds, and it shares the machine's cores.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (hsm, ikev2 helpers)

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pkcs11.mechanisms import Mechanism

from bench.bench_tokens import BenchTokens
from hsm.tokens import (
    USER_PIN,
    tpm_available,
    uri,
)
from pike.hsm import pkcs11 as hsm
from pike.hsm import provision
from pike.hsm.pkcs11 import _DIGEST_INFO, Pkcs11Signer
from pike.hsm.signer import SignatureScheme, ecdsa_raw_to_der
from pike.sa.credentials import CredentialStore

S = SignatureScheme
SCHEME = {
    "ecdsa-p256": S.ECDSA_SHA256,
    "ecdsa-p384": S.ECDSA_SHA384,
    "rsa2048": S.RSA_PKCS1_SHA256,
    "ed25519": S.ED25519,
}
DATA = os.urandom(600)  # about the size of IKE_AUTH signed octets
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _raw(key: Any, scheme: SignatureScheme) -> Callable[[], bytes]:
    """python-pkcs11 alone, doing what IKE needs (see the module docstring)."""
    if scheme is S.ED25519:
        return lambda: key.sign(DATA, mechanism=Mechanism.EDDSA)
    h = scheme.hash_name
    assert h is not None
    hasher = getattr(hashlib, h)
    if scheme.family == "ecdsa":
        return lambda: ecdsa_raw_to_der(key.sign(hasher(DATA).digest(), mechanism=Mechanism.ECDSA))
    prefix = _DIGEST_INFO[h]
    return lambda: key.sign(prefix + hasher(DATA).digest(), mechanism=Mechanism.RSA_PKCS)


def _verify(public: Any, sig: bytes, scheme: SignatureScheme) -> None:
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, DATA)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(sig, DATA, ec.ECDSA(scheme.hash_algorithm()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(sig, DATA, padding.PKCS1v15(), scheme.hash_algorithm())


def _same(signer: Pkcs11Signer) -> Callable[[str], Pkcs11Signer]:
    """A signer factory that hands out ``signer`` whatever the key."""
    return lambda _key: signer


def bench_sign(name: str, module: str, token: str, kinds: list[str], n: int) -> None:
    lib = hsm.module(module).load()
    with hsm.find_token(lib, hsm.parse(uri(module, token, "x"))).open(
        rw=True, user_pin=USER_PIN
    ) as s:  # every key first: login is per process, pike logs in after this
        for kind in kinds:
            provision.generate(s, kind, f"bench-{kind}", f"bench-{kind}".encode())
        provision.generate(s, "ecdsa-p256", "ike-bench", b"ike-bench")
    pc = time.perf_counter
    for kind in kinds:
        key_uri = uri(module, token, f"bench-{kind}")
        signer = Pkcs11Signer(key_uri)
        scheme = SCHEME[kind]
        spki = signer.public_key().public_bytes(*_SPKI)
        store = CredentialStore(signer_factory=_same(signer))  # the same key handle
        sides = (
            _raw(signer._private(), scheme),
            functools.partial(signer.sign, DATA, scheme),
            functools.partial(store.sign, key_uri, spki, DATA, scheme),
        )
        for side in sides:
            _verify(signer.public_key(), side(), scheme)
            for _ in range(5):
                side()
        times: tuple[list[float], ...] = ([], [], [])
        orders = list(itertools.permutations(range(3)))
        for i in range(n):
            for j in orders[i % len(orders)]:
                t = pc()
                sides[j]()
                times[j].append(pc() - t)
        raw, pike, via_store = (statistics.median(t) * 1000 for t in times)
        # Ratio: the median of each round's own ratio. A round's three calls are close
        # in time, so a burst of load elsewhere on the machine, which lands on one call
        # in a round, moves that round only, and the median drops it.
        r_pike = statistics.median(p / r for p, r in zip(times[1], times[0], strict=True))
        r_store = statistics.median(p / r for p, r in zip(times[2], times[0], strict=True))
        print(
            f"{name:8} {kind:11} {raw:9.3f} {pike:9.3f} {r_pike:6.3f}"
            f" {via_store:9.3f} {r_store:6.3f}  {n:5}",
            flush=True,
        )


def bench_ike(tmp: Path, key_for_a: str, cert_dir: Path, n: int) -> float:
    """Median ms of IKE_SA_INIT + IKE_AUTH in memory, initiator signing with key_for_a."""
    from ikev2.pair import Node, transfer
    from ikev2.test_pubkey import A_ID, B_ID, conf, engine_from
    from pike.sa.actions import IkeSaEstablished

    a_dir, b_dir = cert_dir / "a", cert_dir / "b"
    text = conf("192.0.2.1", "192.0.2.2", A_ID, B_ID)
    text = text.replace('key = "me.key"', f'key = "{key_for_a}"')
    (a_dir / "pike.toml").write_text(text)
    times = []
    for i in range(n):
        a = Node(engine_from(a_dir / "pike.toml", 1 + 2 * i))
        b = Node(engine_from(b_dir / "pike.toml", 2 + 2 * i))
        t = time.perf_counter()
        a.engine.initiate("gw", 0.0)
        transfer(a, b)
        times.append((time.perf_counter() - t) * 1000)
        assert a.of(IkeSaEstablished) and b.of(IkeSaEstablished), "IKE SA not established"
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000, help="signatures per key and side")
    p.add_argument("--ike", type=int, default=30, help="IKE_AUTH round trips per key")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pike-bench-"))
    made = BenchTokens(tmp)
    import logging

    logging.basicConfig(level=logging.WARNING)
    header = (
        f"{'token':8} {'key':11} {'raw ms':>9} {'signer ms':>9} {'ratio':>6}"
        f" {'store ms':>9} {'ratio':>6}  {'n':>5}"
    )
    print("signing latency (median ms): raw python-pkcs11, Pkcs11Signer, CredentialStore")
    print(header)
    tokens: list[tuple[str, str, str]] = []  # name, module, token
    with made:
        soft = made.softhsm()
        if soft is not None:
            bench_sign("softhsm", soft.module, "bench", list(SCHEME), args.n)
            tokens.append(("softhsm", soft.module, "bench"))
        if tpm_available():
            tpm = made.start_tpm()
            bench_sign("tpm", tpm.module, "bench", ["ecdsa-p256", "rsa2048"], max(60, args.n // 2))
            tokens.append(("tpm", tpm.module, "bench"))
        # IKE_AUTH, in memory: a token P-256 key vs the same kind of key in a PEM file.
        from ikev2.test_pubkey import A_ID, B_ID, gw, node
        from ikev2.x509gen import certify, make_ca, write

        ca = make_ca("ecdsa-p256")
        d = tmp / "ike"
        node(d / "a", gw(ca, "ecdsa-p256", A_ID), ca, 1)
        node(d / "b", gw(ca, "ecdsa-p256", B_ID), ca, 2, a_side=False)
        print()
        print("IKE_SA_INIT + IKE_AUTH, two pike engines in memory (initiator key varies)")
        file_ms = bench_ike(tmp, str(d / "a" / "me.key"), d, args.ike)
        print(f"{'file':8} {'ecdsa-p256':11} {file_ms:10.2f} ms")
        for name, module, token in tokens:
            label = "ike-bench"
            signer = Pkcs11Signer(uri(module, token, label))
            req = provision.csr(signer, x509.Name.from_rfc4514_string(f"CN={A_ID}"), [])
            cert = certify(ca, req, [x509.DNSName(A_ID)])
            tdir = tmp / f"ike-{name}"
            (tdir / "a").mkdir(parents=True)
            (tdir / "a" / "me.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            write(tdir / "a", "ca", ca)
            (tdir / "b").symlink_to(d / "b")
            ms = bench_ike(tmp, uri(module, token, label), tdir, args.ike)
            print(f"{name:8} {'ecdsa-p256':11} {ms:10.2f} ms  (+{ms - file_ms:.2f} ms vs file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
