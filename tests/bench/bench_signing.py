"""Signing latency through pike vs raw python-pkcs11, and IKE_AUTH with a token vs a file key.

    .venv/bin/python tests/bench/bench_signing.py [--n 300]

Tokens: a private SoftHSM2 and a TPM 2.0 simulator (swtpm + tpm2-abrmd + tpm2-pkcs11);
every process started here is stopped by PID. Per key: the median of ``Pkcs11Signer.sign``
(lock, state check, our hash, mechanism, DER for ECDSA) beside the median of the same
mechanism called straight on the same python-pkcs11 key object (our hash included),
measured in alternating blocks, and the ratio. Then IKE_SA_INIT + IKE_AUTH between two pike
engines in memory (tests/ikev2 pair, fixed randomness) with the initiator's key in each
token vs in a PEM file: the round trip the key custody adds. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (hsm, ikev2 helpers)

from cryptography import x509
from pkcs11.mechanisms import Mechanism

from hsm.tokens import (
    USER_PIN,
    SoftHsm,
    Tpm,
    reset_pike_tokens,
    softhsm_available,
    tpm_available,
    uri,
)
from pike.hsm import pkcs11 as hsm
from pike.hsm import provision
from pike.hsm.pkcs11 import _DIGEST_INFO, Pkcs11Signer
from pike.hsm.signer import SignatureScheme

S = SignatureScheme
SCHEME = {
    "ecdsa-p256": S.ECDSA_SHA256,
    "ecdsa-p384": S.ECDSA_SHA384,
    "rsa2048": S.RSA_PKCS1_SHA256,
    "ed25519": S.ED25519,
}
DATA = os.urandom(600)  # about the size of IKE_AUTH signed octets


def _raw(signer: Pkcs11Signer, scheme: SignatureScheme) -> Callable[[], bytes]:
    key = signer._private()
    if scheme is S.ED25519:
        return lambda: key.sign(DATA, mechanism=Mechanism.EDDSA)  # type: ignore[no-any-return]
    h = scheme.hash_name
    assert h is not None
    hasher = getattr(hashlib, h)
    if scheme.family == "ecdsa":
        return lambda: key.sign(hasher(DATA).digest(), mechanism=Mechanism.ECDSA)  # type: ignore[no-any-return]
    prefix = _DIGEST_INFO[h]
    return lambda: key.sign(prefix + hasher(DATA).digest(), mechanism=Mechanism.RSA_PKCS)  # type: ignore[no-any-return]


def _median_ms(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_sign(name: str, module: str, token: str, kinds: list[str], n: int) -> list[str]:
    rows = []
    lib = hsm.module(module).load()
    with hsm.find_token(lib, hsm.parse(uri(module, token, "x"))).open(
        rw=True, user_pin=USER_PIN
    ) as s:  # every key first: login is per process, pike logs in after this
        for kind in kinds:
            provision.generate(s, kind, f"bench-{kind}", f"bench-{kind}".encode())
        provision.generate(s, "ecdsa-p256", "ike-bench", b"ike-bench")
    for kind in kinds:
        label = f"bench-{kind}"
        signer = Pkcs11Signer(uri(module, token, label))
        scheme = SCHEME[kind]
        raw = _raw(signer, scheme)
        pike_fn = functools.partial(signer.sign, DATA, scheme)
        for _ in range(5):
            raw(), pike_fn()
        a: list[float] = []
        b: list[float] = []
        block = max(10, n // 10)
        for _ in range(max(1, n // block)):
            a += _median_ms(raw, block)
            b += _median_ms(pike_fn, block)
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append(f"{name:8} {kind:11} {ma:10.3f} {mb:10.3f} {mb / ma:8.3f}  {len(a):5}")
        print(rows[-1], flush=True)
    return rows


def bench_ike(tmp: Path, key_for_a: str, cert_dir: Path, n: int) -> float:
    """Median ms of IKE_SA_INIT + IKE_AUTH in memory, initiator signing with key_for_a."""
    from ikev2.pair import Node, transfer
    from ikev2.test_pubkey import A_ID, B_ID, conf, engine_from
    from pike.ikev2.actions import IkeSaEstablished

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
    p.add_argument("--n", type=int, default=300, help="signatures per key and side")
    p.add_argument("--ike", type=int, default=30, help="IKE_AUTH round trips per key")
    args = p.parse_args()
    os.environ["PIKE_PIN"] = USER_PIN
    os.environ.setdefault("TPM2_PKCS11_LOG_LEVEL", "0")
    tmp = Path(tempfile.mkdtemp(prefix="pike-bench-"))
    import logging

    logging.basicConfig(level=logging.WARNING)
    header = f"{'token':8} {'key':11} {'raw ms':>10} {'pike ms':>10} {'ratio':>8}  {'n':>5}"
    print("signing latency (median), raw python-pkcs11 vs pike.hsm.pkcs11.Pkcs11Signer")
    print(header)
    tokens: list[tuple[str, str, str]] = []  # name, module, token
    tpm: Tpm | None = None
    try:
        if softhsm_available():
            soft = SoftHsm(tmp)
            os.environ.update(soft.env())
            soft.init("bench")
            bench_sign("softhsm", soft.module, "bench", list(SCHEME), args.n)
            tokens.append(("softhsm", soft.module, "bench"))
        if tpm_available():
            tpm = Tpm(tmp, label="bench")
            os.environ.update(tpm.env())
            tpm.start()
            bench_sign("tpm", tpm.module, "bench", ["ecdsa-p256", "rsa2048"], max(50, args.n // 3))
            tokens.append(("tpm", tpm.module, "bench"))
        # IKE_AUTH, in memory: a token P-256 key vs the same kind of key in a PEM file.
        from ikev2.test_pubkey import A_ID, B_ID, gw, node
        from ikev2.x509gen import make_ca, write
        from pike.ikev2.credentials import STORE

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
            import datetime as dt

            from cryptography.hazmat.primitives import hashes, serialization

            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder().subject_name(req.subject).issuer_name(ca.cert.subject)
                .public_key(req.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(A_ID)]), False)
                .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
            )  # fmt: skip
            tdir = tmp / f"ike-{name}"
            (tdir / "a").mkdir(parents=True)
            (tdir / "a" / "me.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            write(tdir / "a", "ca", ca)
            (tdir / "b").symlink_to(d / "b")
            STORE._signers.clear()
            ms = bench_ike(tmp, uri(module, token, label), tdir, args.ike)
            print(f"{name:8} {'ecdsa-p256':11} {ms:10.2f} ms  (+{ms - file_ms:.2f} ms vs file)")
        _ = random
    finally:
        reset_pike_tokens()
        if tpm is not None:
            tpm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
