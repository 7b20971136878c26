"""pike-keyd, the key helper process: piked's CredentialStore signs through it and never
opens a token session or reads a PIN source itself; a wrong PIN is not presented again;
the helper gone fails closed with one clear line. Real SoftHSM2 tokens, the real helper
process (``python -m pike.cli.keyd``), as piked starts it (``key_helper = "spawn"``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pike.daemon.signing import Signing, failure_reason
from pike.hsm import pkcs11
from pike.hsm.signer import SignatureScheme, TokenState
from pike.keyd.client import HelperGone, HelperRefused, KeyHelper
from pike.policy.loader import load_config_text
from pike.sa.actions import SignRequest
from pike.sa.credentials import CredentialStore

from .test_token_probe import _conf, _token
from .tokens import USER_PIN, SoftHsm, uri


def no_pin_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on this process (piked's side) must never read a PIN source (the test's
    own setup made the certificate with the token before)."""

    def refused(*args: object, **kw: object) -> str:
        raise AssertionError("piked read a PIN source")

    monkeypatch.setattr("pike.hsm.uri.read_pin", refused)
    monkeypatch.setattr("pike.hsm.pkcs11.read_pin", refused)


def _without_numbers(text: str) -> str:
    """The helper's log lines without process ids and temporary paths (which may hold
    the test PIN's digits by chance)."""
    return re.sub(r"\[\d+\]|(pid|uid) \d+|/tmp/\S+", "", text)


def _spawn(tmp_path: Path) -> tuple[KeyHelper, Path]:
    """The helper as piked starts it (at the first request: made here, a refused one),
    its log lines into a file."""
    from pike.keyd.protocol import Op

    log = tmp_path / "keyd.log"
    with open(log, "wb") as f:
        helper = KeyHelper.spawn(stderr=f.fileno())
        with pytest.raises(HelperRefused, match=r"no usable|cannot read|No such"):
            helper.call(Op.PUBLIC, [str(tmp_path / "no.key").encode()])
    return helper, log


def test_token_key_signs_in_the_helper_only(
    softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem, _fifo, spki = _token(softhsm, tmp_path)
    no_pin_here(monkeypatch)
    key = uri(softhsm.module, "gw", "ike", tmp_path / "pin.txt")
    cfg = load_config_text(_conf(key, pem), str(tmp_path / "pike.toml"))
    helper, log = _spawn(tmp_path)
    try:
        store = CredentialStore(helper.signer)
        assert store.preload(cfg, probe=False) == []
        assert store.probe_key(key, cfg) == []  # the key fits the certificate
        assert store.token_states() == {key: TokenState.READY}
        sig = store.sign(key, spki, b"octets", SignatureScheme.ECDSA_SHA256)
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
        pub = cert.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        pub.verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
        assert pkcs11._TOKENS == {}  # no token session in this process
    finally:
        helper.close()
    assert helper.process is not None and helper.process.returncode == 0
    text = log.read_text()
    assert "token gw: ready (logged in)" in text and USER_PIN not in _without_numbers(text)


def _write_once(fifo: Path, pin: str) -> threading.Thread:
    def feed() -> None:
        with open(fifo, "w") as f:
            f.write(pin)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def test_a_wrong_pin_is_presented_once(
    softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PIN source is a FIFO written once: a second login attempt would block in
    open(2) and the signatures would hang instead of failing at once."""
    pem, fifo, spki = _token(softhsm, tmp_path)
    no_pin_here(monkeypatch)
    key = uri(softhsm.module, "gw", "ike", fifo)
    cfg = load_config_text(_conf(key, pem), str(tmp_path / "pike.toml"))
    helper, log = _spawn(tmp_path)
    try:
        store = CredentialStore(helper.signer)
        store.preload(cfg, probe=False)
        _write_once(fifo, "999999")
        store.probe_key(key, cfg)
        assert store.token_states() == {key: TokenState.PIN_INCORRECT}
        t0 = time.monotonic()
        for _ in range(3):
            with pytest.raises(HelperRefused) as caught:
                store.sign(key, spki, b"x", SignatureScheme.ECDSA_SHA256)
            assert caught.value.state is TokenState.PIN_INCORRECT
        assert time.monotonic() - t0 < 2.0
        assert failure_reason(caught.value) == "pin_incorrect"
    finally:
        helper.close()
    text = log.read_text()
    assert text.count("pin_incorrect") == 1 and "999999" not in _without_numbers(text)


def test_helper_gone_fails_closed(
    softhsm: SoftHsm,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signature in progress (its probe waits for the PIN) and every later one fail with
    HelperGone; one error line; the engine's answer comes back, nothing hangs."""
    pem, fifo, spki = _token(softhsm, tmp_path)
    no_pin_here(monkeypatch)
    key = uri(softhsm.module, "gw", "ike", fifo)
    cfg = load_config_text(_conf(key, pem), str(tmp_path / "pike.toml"))
    helper, _log = _spawn(tmp_path)
    store = CredentialStore(helper.signer)
    store.preload(cfg, probe=False)
    caplog.set_level(logging.INFO)

    async def run() -> list[bytes | Exception]:
        loop = asyncio.get_running_loop()
        got: list[bytes | Exception] = []
        signing = Signing(loop, lambda: store, lambda ref, r: got.append(r))
        signing.probe(store, cfg)  # blocks in the helper: nobody writes the FIFO
        await asyncio.sleep(0.3)
        assert helper.process is not None
        os.kill(helper.process.pid, signal.SIGKILL)
        for _ in range(100):
            if store.token_states()[key] is not TokenState.UNKNOWN:
                break
            await asyncio.sleep(0.02)
        signing.submit(SignRequest(1, "gw", key, SignatureScheme.ECDSA_SHA256, b"x", spki))
        while not got:
            await asyncio.sleep(0.02)
        signing.close()
        assert await signing.stopped(2) == []
        return got

    try:
        [result] = asyncio.run(run())
    finally:
        helper.close()
    assert isinstance(result, HelperGone)
    assert failure_reason(result) == "helper_gone"
    assert store.token_states() == {key: TokenState.FAILED}
    gone = [r.getMessage() for r in caplog.records if "gone" in r.getMessage()]
    assert gone == [
        "key helper pike-keyd gone (killed by signal 9): signatures and certificate "
        "checks fail closed until piked restarts"
    ]
    with pytest.raises(HelperGone):
        store.sign(key, spki, b"x", SignatureScheme.ECDSA_SHA256)


def test_helper_refuses_a_key_that_is_not_the_certificates(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    _pem, _fifo, _spki = _token(softhsm, tmp_path)
    key = uri(softhsm.module, "gw", "ike", tmp_path / "pin.txt")
    helper, _log = _spawn(tmp_path)
    try:
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        from cryptography.hazmat.primitives import serialization

        spki = other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        from pike.keyd.protocol import Op

        with pytest.raises(HelperRefused, match="does not belong to our certificate"):
            helper.call(Op.SIGN, [key.encode(), spki, b"ECDSA_SHA256", b"x"])
        with pytest.raises(HelperRefused, match="malformed request"):
            helper.call(Op.SIGN, [key.encode()])
    finally:
        helper.close()


def test_piked_side_keeps_no_capability_in_the_helper(tmp_path: Path) -> None:
    """The helper drops every capability (piked's ambient CAP_NET_ADMIN survives execve)
    and is not dumpable (piked, same user, cannot read its memory)."""
    helper, _log = _spawn(tmp_path)
    try:
        assert helper.process is not None
        pid = helper.process.pid
        for _ in range(100):
            status = Path(f"/proc/{pid}/status").read_text()
            if "CapEff:\t0000000000000000" in status:
                break
            time.sleep(0.05)
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(fields[cap], 16) == 0, (cap, fields[cap])
        # not dumpable: /proc/PID/environ of a non-dumpable process belongs to root
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0
    finally:
        helper.close()


def test_helper_without_privileges_on_a_unix_socket(tmp_path: Path) -> None:
    """``key_helper = "/run/..."``: a helper its own unit runs. Here it has no capability
    at all (not even in its bounding set) and reaches the key file through its group
    only (0040 nobody:nogroup: neither its owner's bits nor others' allow it); piked's
    side connects to the socket and signs; another user's connection is closed unanswered
    (``--peer-user``)."""
    import shutil
    import sys

    from cryptography.hazmat.primitives import serialization

    from ikev2.x509gen import issue, make_ca, write
    from lib.prereq import require

    require(shutil.which("setpriv") is not None, "setpriv (util-linux) not installed")
    gw = issue(
        make_ca("ecdsa-p256"), "ecdsa-p256", "gw.example.net", [x509.DNSName("gw.example.net")]
    )
    cert_file, key_file = write(tmp_path, "gw", gw)
    key = gw.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    nobody = 65534
    os.chown(key_file, nobody, nobody)
    key_file.chmod(0o040)
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="pike-keyd-"))  # tmp_path is 0700 root's
    top.chmod(0o755)
    sock = top / "keyd.sock"
    proc = subprocess.Popen(
        ["setpriv", f"--regid={nobody}", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all", sys.executable, "-m", "pike.cli.keyd", "--socket", str(sock),
         "--peer-user", "root"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        helper = KeyHelper.connect(str(sock))
        store = CredentialStore(helper.signer)
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        sig = store.sign(str(key_file), spki, b"octets", SignatureScheme.ECDSA_SHA256)
        key.public_key().verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
        helper.close()
        # pikectl check-config (the unit's ExecStartPre) looks at the key there too
        cfg = tmp_path / "pike.toml"
        cfg.write_text(_conf(str(key_file), cert_file, key_helper=str(sock)))
        check = subprocess.run(
            [sys.executable, "-m", "pike.cli.pikectl", "check-config", str(cfg)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert check.returncode == 0 and check.stderr == "", check.stderr  # all in the helper
        status = Path(f"/proc/{proc.pid}/status").read_text()
        for cap in ("CapEff", "CapPrm", "CapBnd"):
            assert f"{cap}:\t0000000000000000" in status
        # user nobody: connected, its request closed unanswered
        python = "/usr/bin/python3"  # the venv's is not readable by nobody
        require(os.path.exists(python), f"no {python}")
        script = (
            "import socket, struct\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({str(sock)!r})\n"
            "body = struct.pack('>BII', 2, 1, 1) + b'x'\n"
            "try:\n"
            "    s.sendall(struct.pack('>I', len(body)) + body)\n"
            "    print(repr(s.recv(100)))\n"
            "except OSError:\n"
            "    print(repr(b''))  # closed before the request was written\n"
        )
        out = subprocess.run(
            [python, "-c", script], user=nobody, group=nobody, capture_output=True,
            text=True, check=True, cwd="/", timeout=10,
        ).stdout  # fmt: skip
        assert out.strip() == "b''"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=5)
        import shutil as sh

        sh.rmtree(top, ignore_errors=True)
    assert f"refused a connection from uid {nobody} (only 0 may ask)" in err
    # the helper gone: check-config says so and looks at the key itself
    check = subprocess.run(
        [sys.executable, "-m", "pike.cli.pikectl", "check-config", str(cfg)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == 0
    first, *rest = check.stderr.splitlines()
    assert first.startswith(f"warning: cannot reach key helper at {sock}: ")
    assert first.endswith(": keys looked at by pikectl instead")
    # looked at here now: the file key's own warning is pikectl's (it was the helper's)
    assert any("is a file, not a token" in line for line in rest)


def test_tpm_key_signs_in_the_helper(
    tpm: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TPM 2.0 simulator (swtpm + tpm2-abrmd + tpm2-pkcs11): the helper logs in with
    the PIN from its environment (``PIKE_PIN``, as its unit would give it) and signs."""
    from cryptography.hazmat.primitives import serialization

    from .test_pkcs11_tokens import _generate
    from .tokens import Tpm, reset_pike_tokens

    assert isinstance(tpm, Tpm)
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    _generate(tpm.module, tpm.label, "ecdsa-p256", "keyd")
    key = uri(tpm.module, tpm.label, "keyd")
    reset_pike_tokens()
    no_pin_here(monkeypatch)
    helper, log = _spawn(tmp_path)
    try:
        store = CredentialStore(helper.signer)
        signer = store.signer(key)
        assert signer.probe() is TokenState.READY  # type: ignore[attr-defined]
        pub = signer.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        spki = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        sig = store.sign(key, spki, b"octets", SignatureScheme.ECDSA_SHA256)
        pub.verify(sig, b"octets", ec.ECDSA(hashes.SHA256()))
        assert pkcs11._TOKENS == {}
    finally:
        helper.close()
    assert USER_PIN not in _without_numbers(log.read_text())


def test_piked_refuses_to_start_without_its_helpers_socket(tmp_path: Path) -> None:
    """``key_helper`` names a socket nobody listens on: one line, exit 2, nothing started."""
    import sys

    sock = tmp_path / "keyd.sock"
    cfg = tmp_path / "pike.toml"
    cfg.write_text(f'[daemon]\nkey_helper = "{sock}"\ncontrol_socket = "{tmp_path}/run/p.sock"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == f"cannot reach key helper at {sock}: No such file or directory\n"
    assert not (tmp_path / "run").exists()
