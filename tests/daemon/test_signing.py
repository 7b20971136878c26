"""pike.daemon.signing: SignRequests answered from a thread, results recorded for metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pike.daemon.signing import Signing, failure_reason, key_labels
from pike.hsm.pkcs11 import TokenState, TokenUnavailable
from pike.hsm.signer import SignatureScheme, SignerError
from pike.metrics.recorder import Recorder
from pike.sa.actions import SignRequest
from pike.sa.credentials import CredentialError, CredentialStore

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_labels_and_reasons() -> None:
    uri = "pkcs11:token=gw;object=ike?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/p"
    assert key_labels(uri) == ("gw", "ike")
    assert key_labels("pkcs11:token=gw;id=%01%02?module-path=/m.so") == ("gw", "0102")
    assert key_labels("/etc/pike/private/gw.key") == ("file", "gw.key")
    assert failure_reason(TokenUnavailable("token gw absent", TokenState.ABSENT)) == "absent"
    assert failure_reason(TokenUnavailable("x", TokenState.PIN_LOCKED)) == "pin_locked"
    assert failure_reason(CredentialError("key does not belong")) == "config"
    assert failure_reason(SignerError("refuses CKM_ECDSA")) == "error"


def test_signatures_come_back_on_the_loop_from_another_thread(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "gw.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(*SPKI)
    store = CredentialStore()
    recorder = Recorder(lambda spec: None)
    answers: dict[int, tuple[bytes | Exception, bool]] = {}
    threads: set[str] = set()
    orig = store.sign

    def sign(*args: object) -> bytes:
        threads.add(threading.current_thread().name)
        return orig(*args)  # type: ignore[arg-type]

    store.sign = sign  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def answer(ref: int, result: bytes | Exception) -> None:
            answers[ref] = (result, threading.current_thread() is threading.main_thread())
            if len(answers) == 2:
                done.set()

        signing = Signing(loop, lambda: store, answer, recorder)
        s = SignatureScheme.ECDSA_SHA256
        signing.submit(SignRequest(1, "gw", str(path), s, b"octets", spki))
        signing.submit(SignRequest(2, "gw", str(path), s, b"octets", b"not our certificate"))
        assert signing.in_flight == 2
        await asyncio.wait_for(done.wait(), 10)
        assert signing.in_flight == 0
        signing.close()

    asyncio.run(run())
    sig, on_loop = answers[1]
    assert on_loop and isinstance(sig, bytes)
    key.public_key().verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
    err, on_loop = answers[2]
    assert on_loop and isinstance(err, CredentialError)
    assert threads and all(t.startswith("pike-sign") for t in threads)
    [(labels, hist)] = recorder.sign_durations.items()
    assert labels == ("file", "gw.key", "ecdsa_sha256") and hist.n == 1
    assert dict(recorder.sign_failures) == {("file", "gw.key", "config"): 1}


def test_shutdown_is_bounded_with_a_call_that_never_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unit level: a signer whose sign() blocks on an Event stands for a token call that
    never returns (tests/hsm/test_token_probe.py hangs a real probe in a real piked).
    ``stopped`` gives up after its bound, names the call, and the thread is a daemon
    thread, so the process can exit without it; calls queued behind it never run."""
    from pike.hsm.filekey import FileKeySigner

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "gw.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(*SPKI)
    entered, release = threading.Event(), threading.Event()
    calls: list[bytes] = []

    class Hung(FileKeySigner):
        def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
            calls.append(data)
            entered.set()
            release.wait()
            return super().sign(data, scheme)

    store = CredentialStore(signer_factory=lambda k: Hung(k))
    answers: list[int] = []

    async def run() -> tuple[list[str], float, list[threading.Thread]]:
        loop = asyncio.get_running_loop()
        signing = Signing(loop, lambda: store, lambda ref, _r: answers.append(ref))
        s = SignatureScheme.ECDSA_SHA256
        signing.submit(SignRequest(1, "gw", str(path), s, b"first", spki))
        signing.submit(SignRequest(2, "gw", str(path), s, b"queued", spki))
        assert await loop.run_in_executor(None, entered.wait, 5)
        threads = [t for t in threading.enumerate() if t.name.startswith("pike-sign")]
        signing.close()
        t0 = loop.time()
        stuck = await signing.stopped(0.3)
        return stuck, loop.time() - t0, threads

    caplog.set_level(logging.ERROR, "pike.daemon")
    try:
        stuck, took, threads = asyncio.run(run())
    finally:
        release.set()
    assert stuck == ["file gw.key"]
    assert 0.3 <= took < 0.6
    assert threads and all(t.daemon for t in threads)
    assert "file gw.key still in a call after 0.3 s: stopping without it" in caplog.text
    for t in threads:
        t.join(5)  # released now: the call ends, the queued one is cancelled
    assert calls == [b"first"] and answers == []
