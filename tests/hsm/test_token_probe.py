"""The first look at a token (C_Initialize, login, key lookup) runs in the module's signing
thread, never on piked's event loop; a token call that never returns does not hold
piked at shutdown.

A probe that hangs for real: the key's ``pin-source`` is a FIFO that nobody writes, so the
signing thread blocks in open(2) inside ``Pkcs11Signer.probe`` with the module's lock
held, as it would inside a token call that does not return (SoftHSM2 itself cannot be
made to hang). Writing the PIN into the FIFO lets the probe go on to a real SoftHSM2
login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from daemon.helpers import daemon_env, pikectl
from ikev2.x509gen import make_ca
from lib.pikeconf import Conn, PikeConf, TomlValue
from pike.daemon.signing import Signing
from pike.hsm import provision
from pike.hsm.pkcs11 import Pkcs11Signer, TokenState, TokenUnavailable
from pike.hsm.signer import SignatureScheme
from pike.policy.loader import load_config_text
from pike.sa.actions import SignRequest
from pike.sa.credentials import CredentialStore

from .test_pkcs11_tokens import _generate
from .tokens import USER_PIN, SoftHsm, reset_pike_tokens, uri

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token(softhsm: SoftHsm, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """Token ``gw`` with key ``ike``, its self-signed certificate, and a FIFO for the PIN;
    pike's own sessions are forgotten afterwards (as in a fresh piked)."""
    softhsm.init("gw")
    _generate(softhsm.module, "gw", "ecdsa-p256", "ike")
    pin = tmp_path / "pin.txt"
    pin.write_text(USER_PIN)
    signer = Pkcs11Signer(uri(softhsm.module, "gw", "ike", pin))
    name = x509.Name.from_rfc4514_string("CN=gw.example.net")
    cert = provision.self_signed(signer, name, [x509.DNSName("gw.example.net")])
    pem = tmp_path / "gw.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    reset_pike_tokens()
    fifo = tmp_path / "pin.fifo"
    os.mkfifo(fifo)
    return pem, fifo, cert.public_key().public_bytes(*SPKI)


def _ca(directory: Path) -> Path:
    """A CA certificate for the peer's side (check-config refuses a leaf given as a CA)."""
    path = directory / "hq-ca.pem"
    path.write_bytes(
        make_ca("ecdsa-p256", "hq test CA").cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


def _conf(key: str | None, cert: Path, **daemon: TomlValue) -> str:
    """``[daemon]`` with ``daemon``'s keys and (unless ``key`` is None) connection ``gw``
    signing with ``key``, its certificate ``cert``."""
    conn = Conn(
        name="gw",
        local_addrs=["127.0.0.1"],
        remote_addrs=["127.0.0.2"],
        proposals=["aes128gcm16-prfsha256-x25519"],
        local={"auth": "pubkey", "id": "gw.example.net", "certs": [str(cert)], "key": key or ""},
        remote={"auth": "pubkey", "id": "hq.example.net", "cacerts": [str(_ca(cert.parent))]},
    )
    return PikeConf(daemon=daemon, connections=[] if key is None else [conn]).render()


def _unblock(fifo: Path) -> None:
    """Let a reader stuck on ``fifo`` go (it reads an empty PIN): no thread left hanging."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_unprobed_token_fails_closed_until_its_probe_answers(
    softhsm: SoftHsm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pem, fifo, spki = _token(softhsm, tmp_path)
    key = uri(softhsm.module, "gw", "ike", fifo)
    cfg = load_config_text(_conf(key, pem), str(tmp_path / "pike.toml"))
    store = CredentialStore()
    assert store.preload(cfg, probe=False) == []  # piked's start: no token I/O
    assert store.unprobed() == [key]
    assert store.token_states() == {key: TokenState.UNKNOWN}
    caplog.set_level(logging.INFO)
    scheme = SignatureScheme.ECDSA_SHA256

    async def run() -> tuple[float, object, object]:
        loop = asyncio.get_running_loop()
        answers: dict[int, asyncio.Future[bytes | Exception]] = {
            i: loop.create_future() for i in (1, 2)
        }
        signing = Signing(loop, lambda: store, lambda ref, r: answers[ref].set_result(r))
        t0 = loop.time()
        signing.probe(store, cfg)  # the thread now waits in open(fifo), the lock held
        await asyncio.sleep(0.3)  # the loop keeps running meanwhile
        signing.submit(SignRequest(1, "gw", key, scheme, b"octets", spki))
        first = await asyncio.wait_for(answers[1], 2)
        lag = loop.time() - t0
        # The PIN arrives: the probe logs in (SoftHSM2), the token says so once.
        await loop.run_in_executor(None, fifo.write_text, USER_PIN)
        for _ in range(200):  # READY in the probe's thread, then its answer on the loop
            if store.token_states()[key] is TokenState.READY and not signing.probing(key):
                break
            await asyncio.sleep(0.02)
        signing.submit(SignRequest(2, "gw", key, scheme, b"octets", spki))
        second = await asyncio.wait_for(answers[2], 5)
        signing.close()
        assert await signing.stopped(2) == []
        return lag, first, second

    try:
        lag, first, second = asyncio.run(run())
    finally:
        _unblock(fifo)
    assert lag < 1.0  # answered while the probe still hung
    assert isinstance(first, TokenUnavailable) and first.state is TokenState.UNKNOWN
    assert "gw: cannot sign: token gw not probed yet (fails closed)" in caplog.text
    assert isinstance(second, bytes)
    pub = x509.load_pem_x509_certificate(pem.read_bytes()).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(second, b"octets", ec.ECDSA(hashes.SHA256()))
    assert caplog.text.count("token gw: ready (logged in)") == 1  # one login
    # once the probe's answer is on the loop, and only then, piked says the key signs
    assert caplog.text.count("token gw: key ike ready to sign") == 1
    assert caplog.text.index("token gw: key ike ready to sign") > caplog.text.index(
        "token gw: ready (logged in)"
    )
    assert USER_PIN not in caplog.text


def test_wrong_pin_found_by_the_probe_is_not_retried(
    softhsm: SoftHsm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pem, _fifo, spki = _token(softhsm, tmp_path)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("999999")
    key = uri(softhsm.module, "gw", "ike", wrong)
    cfg = load_config_text(_conf(key, pem), str(tmp_path / "pike.toml"))
    store = CredentialStore()
    assert store.preload(cfg, probe=False) == []
    caplog.set_level(logging.INFO)
    attempts: list[float] = []  # calls of TokenSession._open: the only place that logs in
    session = store.signer(key).token  # type: ignore[attr-defined]
    opened = session._open

    def counted() -> object:
        attempts.append(time.monotonic())
        return opened()

    session._open = counted

    async def run() -> list[bytes | Exception]:
        loop = asyncio.get_running_loop()
        got: list[bytes | Exception] = []
        signing = Signing(loop, lambda: store, lambda ref, r: got.append(r))
        signing.probe(store, cfg)
        for _ in range(250):
            if store.token_states()[key] is not TokenState.UNKNOWN:
                break
            await asyncio.sleep(0.02)
        for ref in (1, 2, 3):
            signing.submit(SignRequest(ref, "gw", key, SignatureScheme.ECDSA_SHA256, b"x", spki))
        while len(got) < 3:
            await asyncio.sleep(0.02)
        signing.close()
        assert await signing.stopped(2) == []
        return got

    got = asyncio.run(run())
    assert store.token_states() == {key: TokenState.PIN_INCORRECT}
    assert all(isinstance(r, TokenUnavailable) and r.state is TokenState.PIN_INCORRECT for r in got)
    # The probe presented it once; the signatures fail closed without another login.
    assert len(attempts) == 1
    assert len([r for r in caplog.records if "pin_incorrect" in r.getMessage()]) == 1
    assert "ready to sign" not in caplog.text
    assert "999999" not in caplog.text


@pytest.mark.interop
def test_piked_is_ready_with_a_hung_probe_and_stops_in_bounded_time(
    softhsm: SoftHsm, tmp_path: Path, run_prefix: str
) -> None:
    """A real piked (in its own namespace): READY and answering pikectl while its token's
    probe hangs; SIGTERM ends it in a few seconds, with the stuck token named once.
    A second piked gets its PIN after start and logs the token ready."""
    from interop.netns import Lab

    pem, fifo, _spki = _token(softhsm, tmp_path)
    key = uri(softhsm.module, "gw", "ike", fifo)
    with Lab.create(f"{run_prefix}tp-") as lab:
        ns = lab.add_ns("a")
        for run, give_pin in (("hung", False), ("pin", True)):
            sock = tmp_path / run / "pike.sock"
            conf = tmp_path / f"{run}.toml"
            conf.write_text(_conf(key, pem, control_socket=str(sock)))
            log = tmp_path / f"{run}.log"
            t0 = time.monotonic()
            with log.open("wb") as out:
                proc = ns.popen(
                    [sys.executable, "-m", "pike.cli.piked", "--config", str(conf)],
                    stdout=out,
                    env=daemon_env(),
                )
            try:
                while not sock.exists():
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() - t0 < 15, log.read_text()
                    time.sleep(0.05)
                status = pikectl(sock, "status", "--json")
                assert status.returncode == 0, status.stderr + log.read_text()
                ready = time.monotonic() - t0
                if give_pin:
                    fifo.write_text(USER_PIN)  # the probe in piked is waiting for it
                    deadline = time.monotonic() + 10
                    while "token gw: ready (logged in)" not in log.read_text():
                        assert time.monotonic() < deadline, log.read_text()
                        time.sleep(0.05)
                else:
                    assert "token gw" not in log.read_text()  # not known yet: nothing said
                t1 = time.monotonic()
                os.kill(proc.pid, signal.SIGTERM)
                assert proc.wait(timeout=10) == 0, log.read_text()
                stop = time.monotonic() - t1
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            text = log.read_text()
            print(f"{run}: control socket answered {ready:.2f} s after start, stop {stop:.2f} s")
            assert ready < 10, text
            stuck = "token gw still in a call after 2.0 s: stopping without it"
            if give_pin:
                assert stop < 1.5 and stuck not in text, text
            else:
                assert 2.0 <= stop < 5.0, text
                assert text.count(stuck) == 1, text
            assert "stopped" in text and USER_PIN not in text


def test_reload_adding_a_token_key_probes_it_off_the_loop(
    softhsm: SoftHsm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reload that adds a connection with a token key answers at once; the new token is
    looked at in its signing thread (here: hung until the PIN arrives), then logged."""
    from daemon.helpers import free_udp_ports
    from pike.cli.piked import _engine
    from pike.daemon import runtime
    from pike.daemon.nokernel import NoKernel
    from pike.policy.loader import load_config

    pem, fifo, _spki = _token(softhsm, tmp_path)
    key = uri(softhsm.module, "gw", "ike", fifo)
    store = CredentialStore()  # the daemon's: what reload and the engine use
    ike, natt = free_udp_ports(2)
    daemon_part: dict[str, TomlValue] = {
        "control_socket": str(tmp_path / "pike.sock"),
        "ike_port": ike,
        "natt_port": natt,
    }
    path = tmp_path / "pike.toml"
    path.write_text(_conf(None, pem, **daemon_part))
    config = load_config(str(path))
    daemon = runtime.Daemon(config, NoKernel("test"), _engine, ipv6=False, credentials=store)
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 10)
        path.write_text(_conf(key, pem, **daemon_part))
        t0 = time.monotonic()
        result = daemon.ops.cmd_reload({})  # on the loop, as the control socket calls it
        took = time.monotonic() - t0
        assert result["added"] == ["gw"]
        assert store.token_states() == {key: TokenState.UNKNOWN}
        await asyncio.sleep(0.2)  # the probe waits for its PIN; the loop does not
        await loop.run_in_executor(None, fifo.write_text, USER_PIN)
        t1 = time.monotonic()
        while store.token_states()[key] is not TokenState.READY:
            assert time.monotonic() - t1 < 5, store.token_states()
            await asyncio.sleep(0.02)
        daemon.request_stop()
        t2 = time.monotonic()
        assert await task == 0
        return took, time.monotonic() - t2

    try:
        took, stop = asyncio.run(scenario())
    finally:
        _unblock(fifo)
    assert took < 0.5, took
    assert stop < 1.5 and daemon.stuck == []
    assert caplog.text.count("token gw: ready (logged in)") == 1
