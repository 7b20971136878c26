"""Host tier: piked authenticates to strongSwan 5.9 with a key that lives in a token.

SoftHSM2 (RSA, ECDSA P-256/P-384, Ed25519) and a TPM 2.0 simulator (swtpm + tpm2-abrmd +
tpm2-pkcs11; RSA and ECDSA P-256). The key pair is generated on the token by pike's
provisioning, the CSR is signed by the token, a CA made with ``cryptography`` issues the
certificate, and piked's config names the key by its ``pkcs11:`` URI (PIN from PIKE_PIN in
piked's environment); charon must accept piked's AUTH. Then the token goes away (SoftHSM:
its directory is moved; TPM: abrmd is stopped by PID): the next IKE_AUTH fails closed; once
it is back, the next one succeeds without restarting piked. Along the way piked's
``/metrics`` (scraped inside its namespace) shows the token present/absent, the signature
durations and the failures by reason, and never the PIN. The host kernel has no ESP: only
the IKE SA is checked.

IKEv1 Main Mode (same setup, ``version=1``): IKEv1 signs HASH_I itself: the token gets
CKM_RSA_PKCS over the bare hash (no DigestInfo) or CKM_ECDSA over it, and charon must accept
it as RSA_EMSA_PKCS1_NULL / ECDSA_WITH_NULL; /metrics counts it under the IKEv1 mechanism.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm.tokens import (
    USER_PIN,
    SoftHsm,
    Tpm,
    reset_pike_tokens,
    shared_tpm,
    softhsm_available,
    tpm_available,
    uri,
)
from ikev2.x509gen import DAY, NOW, Issued, certify, issue, make_ca, write
from lib.prereq import require
from pike.hsm import pkcs11 as hsm
from pike.hsm import provision
from pike.hsm.pkcs11 import Pkcs11Signer

from .conftest import Gateways, MakeCharon, MakePiked
from .piked import PikedNode
from .strongswan import StrongswanNode
from .strongswan_v1 import ikev1_connection
from .test_piked_certs import BRANCH, HQ, _conn

SCHEME = {
    "rsa2048": "RSA_EMSA_PKCS1_SHA2_256",
    "ecdsa-p256": "ECDSA_WITH_SHA256_DER",
    "ecdsa-p384": "ECDSA_WITH_SHA384_DER",
    "ecdsa-p521": "ECDSA_WITH_SHA512_DER",
    "ed25519": "ED25519",
}
CA_KIND = {"rsa2048": "rsa", "ecdsa-p256": "ecdsa-p256", "ecdsa-p384": "ecdsa-p256",
           "ecdsa-p521": "ecdsa-p256", "ed25519": "ecdsa-p256"}  # fmt: skip
# IKEv1: token key kind -> (charon's key kind, charon's scheme name, our metrics mechanism)
KINDS_V1 = {
    "rsa2048": ("rsa", "RSA_EMSA_PKCS1_NULL", "rsa_pkcs1_null"),
    "ecdsa-p256": ("ecdsa-p256", "ECDSA_WITH_NULL", "ecdsa_null"),
    "ecdsa-p384": ("ecdsa-p384", "ECDSA_WITH_NULL", "ecdsa_null"),
    "ecdsa-p521": ("ecdsa-p521", "ECDSA_WITH_NULL", "ecdsa_null"),
}
# what tpm2-pkcs11 1.9 makes on the simulator (P-521 it makes but cannot sign with)
TPM_KINDS = ["rsa2048", "ecdsa-p256"]


@pytest.fixture(scope="module")
def tpm_token(tmp_path_factory: pytest.TempPathFactory) -> Tpm:
    require(tpm_available(), "swtpm / tpm2-abrmd / tpm2-pkcs11 not installed")
    return shared_tpm(tmp_path_factory.getbasetemp())


def _token_cert(ca: Issued, module: str, token: str, label: str, kind: str) -> x509.Certificate:
    """Keygen on the token, CSR signed by it, certificate issued by ``ca``."""
    lib = hsm.module(module).load()
    with hsm.find_token(lib, hsm.parse(uri(module, token, label))).open(
        rw=True, user_pin=USER_PIN
    ) as s:
        provision.generate(s, kind, label, label.encode())
    signer = Pkcs11Signer(uri(module, token, label))
    req = provision.csr(signer, x509.Name.from_rfc4514_string(f"CN={BRANCH},O=pike test,C=CH"),
                        [x509.DNSName(BRANCH)])  # fmt: skip
    assert req.is_signature_valid
    reset_pike_tokens()  # log out: piked logs in by itself
    return certify(ca, req, [x509.DNSName(BRANCH)], not_after=NOW + 30 * DAY)


def _softhsm_gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """A private SoftHSM2 with the token ``gw``, its config and PIN in this process's
    environment (piked inherits them), pike's token cache emptied."""
    require(softhsm_available(), "softhsm2 not installed")
    soft = SoftHsm(tmp_path)
    monkeypatch.setenv("SOFTHSM2_CONF", str(soft.conf))
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    soft.init("gw")
    return soft


def _setup(
    gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path,
    kind: str, module: str, token: str, label: str, version: int = 2,
    key_uri: str | None = None, before_piked: Callable[[], str] | None = None,
) -> tuple[PikedNode, StrongswanNode]:  # fmt: skip
    """charon on ``right`` with a CA-issued certificate; piked on ``left`` signing with the
    token's key ``label`` (IKEv2, or IKEv1 Main Mode). ``before_piked``: runs once the key
    is made and returns the socket of the key helper piked is to use (own-unit mode)."""
    if version == 1:
        ca = make_ca("ecdsa-p256", "pike token CA")
        theirs = issue(ca, KINDS_V1[kind][0], HQ, [x509.DNSName(HQ)])
    else:
        ca = make_ca(CA_KIND[kind], "pike token CA")
        theirs = issue(ca, CA_KIND[kind], HQ, [x509.DNSName(HQ)])
    mine = _token_cert(ca, module, token, label, kind)
    files = tmp_path / "charon-creds"
    cert, key = write(files, "hq", theirs)
    ca_cert, _ = write(files, "ca", ca)
    if version == 1:
        conn = ikev1_connection(
            "192.0.2.2", "192.0.2.1", local_ts="10.2.0.0/24", remote_ts="10.1.0.0/24",
            local_id=HQ, remote_id=BRANCH,
        )  # fmt: skip
        conn.local_auth = conn.remote_auth = "pubkey"
        conn.local_certs = [cert.name]
        mine_conn = ikev1_connection(
            "192.0.2.1", "192.0.2.2", local_ts="10.1.0.0/24", remote_ts="10.2.0.0/24",
            local_id=BRANCH, remote_id=HQ,
        )  # fmt: skip
    else:
        conn = _conn("192.0.2.2", "192.0.2.1", HQ, BRANCH, "10.2.0.0/24", "10.1.0.0/24",
                     local_certs=[cert.name])  # fmt: skip
        mine_conn = _conn("192.0.2.1", "192.0.2.2", BRANCH, HQ, "10.1.0.0/24", "10.2.0.0/24")
    charon = make_charon(gw.right, "charon", conn, libipsec=gw.libipsec, start=False)
    charon.start_with(cert, key, ca_cert)
    piked = make_piked(gw.left, "piked", mine_conn, start=False)
    piked.dir.mkdir(parents=True, exist_ok=True)
    (piked.dir / "branch.pem").write_bytes(mine.public_bytes(serialization.Encoding.PEM))
    write(piked.dir, "ca", ca)
    local = {"auth": "pubkey", "id": BRANCH, "certs": ["branch.pem"],
             "key": key_uri or uri(module, token, label)}  # fmt: skip
    piked.extra = {
        "hq": {"local": local, "remote": {"auth": "pubkey", "id": HQ, "cacerts": ["ca.pem"]}}
    }
    piked.daemon = {**piked.daemon, "metrics_listen": METRICS}
    if before_piked is not None:
        piked.daemon["key_helper"] = before_piked()
        piked.start()
        return piked, charon
    piked.start()
    wait_token_ready(piked, token)
    return piked, charon


def wait_token_ready(piked: PikedNode, token: str) -> None:
    """piked is READY before it has looked at the token (that runs in its signing thread);
    until the probe's answer is back on its loop, a signature fails closed. The token's own
    "ready" line comes earlier (from the probe's thread, or from the key helper)."""
    deadline = time.monotonic() + 20
    while not re.search(rf"token {token}: key \S+ ready to sign", piked.log_text()):
        assert time.monotonic() < deadline, piked.log_text()
        time.sleep(0.05)


METRICS = "127.0.0.1:9447"  # inside piked's own namespace


def _metrics(piked: PikedNode) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """piked's /metrics, fetched inside its namespace: the text and its samples."""
    code = (
        "import sys,urllib.request;"
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    out = piked.ns.run([sys.executable, "-c", code, f"http://{METRICS}/metrics"], check=False,
                       timeout=20)  # fmt: skip
    assert out.returncode == 0, out.stderr
    samples = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return out.stdout, samples


def _sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
            **labels: str) -> float | None:  # fmt: skip
    return samples.get((name, frozenset(labels.items())))


def _established(piked: PikedNode, charon: StrongswanNode, kind: str) -> float:
    t0 = time.monotonic()
    piked.initiate("hq")
    p = piked.wait_established("hq", timeout=20)
    rtt = time.monotonic() - t0
    c = charon.wait_established("hq", timeout=20)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    clog = charon.log_text()
    assert f"authentication of '{BRANCH}' with {SCHEME[kind]} successful" in clog, clog[-3000:]
    return rtt


def _fails_closed(piked: PikedNode) -> None:
    piked.terminate("hq", check=False)
    time.sleep(1.0)
    piked.initiate("hq", check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "cannot sign our AUTH" in piked.log_text():
            break
        time.sleep(0.2)
    log = piked.log_text()
    assert "cannot sign our AUTH" in log, log[-3000:]
    assert USER_PIN not in log
    assert not [s for s in piked.list_sas() if s.state == "ESTABLISHED"]


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(SCHEME))
def test_softhsm_key_auth_pull_and_return(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:  # fmt: skip
    soft = _softhsm_gw(tmp_path, monkeypatch)
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind,
                           soft.module, "gw", "ike")  # fmt: skip
    _established(piked, charon, kind)
    mech = {"rsa2048": "rsa_pkcs1_sha256", "ecdsa-p256": "ecdsa_sha256",
            "ecdsa-p384": "ecdsa_sha384", "ecdsa-p521": "ecdsa_sha512",
            "ed25519": "ed25519"}[kind]  # fmt: skip
    sign = {"token": "gw", "key": "ike", "mechanism": mech}
    _, m = _metrics(piked)
    assert _sample(m, "pike_token_present", token="gw") == 1.0
    assert _sample(m, "pike_token_state", token="gw", state="ready") == 1.0
    assert _sample(m, "pike_sign_duration_seconds_count", **sign) == 1.0
    took = _sample(m, "pike_sign_duration_seconds_sum", **sign)
    assert took is not None and 0 < took < 1.0
    away = soft.pull()
    _fails_closed(piked)
    assert "token gw: absent" in piked.log_text()
    text, m = _metrics(piked)
    assert _sample(m, "pike_token_present", token="gw") == 0.0
    assert _sample(m, "pike_token_state", token="gw", state="absent") == 1.0
    assert (_sample(m, "pike_sign_failures_total", token="gw", key="ike", reason="absent")
            or 0) >= 1  # fmt: skip
    # labels name the token and the key only: no PIN, PIN source or module path
    assert f'"{USER_PIN}"' not in text and "pin-source" not in text and ".so" not in text
    soft.plug(away)
    time.sleep(5.5)  # the re-probe interval
    piked.terminate("hq", check=False)
    time.sleep(0.5)
    _established(piked, charon, kind)
    assert "token gw: ready (logged in again)" in piked.log_text()
    _, m = _metrics(piked)
    assert _sample(m, "pike_token_present", token="gw") == 1.0
    assert _sample(m, "pike_sign_duration_seconds_count", **sign) == 2.0


NOBODY = 65534  # pike-keyd's stand-in
PIKE_USER = "daemon"  # piked's user's stand-in (--peer-user); piked itself runs as root here


@pytest.mark.interop
def test_softhsm_key_in_keyd_own_unit(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Own-unit mode (pike-keyd.service, ``key_helper = "/run/pike-keyd/keyd.sock"``): the
    helper runs as its own unprivileged user without capabilities (``setpriv``, as the unit
    has it), the token and the PIN file belong to that user alone (0700/0400), piked has no
    PIN in its environment, connects to the helper's socket and authenticates to charon
    with the token's key; the token session and its log lines are the helper's, and the
    user piked runs as in the image cannot read the PIN."""
    require(softhsm_available(), "softhsm2 not installed")
    require(shutil.which("setpriv") is not None, "setpriv (util-linux) not installed")
    top = Path(tempfile.mkdtemp(prefix="pike-keyd-"))  # tmp_path is root's 0700
    top.chmod(0o755)
    soft = SoftHsm(top)
    monkeypatch.setenv("SOFTHSM2_CONF", str(soft.conf))
    monkeypatch.setenv("PIKE_PIN", USER_PIN)  # provisioning here; piked never gets it
    reset_pike_tokens()
    soft.init("gw")
    pin = top / "token.pin"
    run = top / "run"  # RuntimeDirectory=pike-keyd
    sock = run / "keyd.sock"
    err_path = top / "keyd.log"
    procs: list[subprocess.Popen[bytes]] = []

    def start_keyd() -> str:
        monkeypatch.delenv("PIKE_PIN")
        pin.write_text(USER_PIN + "\n")
        run.mkdir()
        for p in (pin, run, soft.dir, *soft.dir.rglob("*")):
            os.chown(p, NOBODY, NOBODY)
        pin.chmod(0o400)
        soft.tokens.chmod(0o700)
        run.chmod(0o755)
        with err_path.open("wb") as err:
            procs.append(subprocess.Popen(
                ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", sys.executable,
                 "-m", "pike.cli.keyd", "--socket", str(sock), "--peer-user", PIKE_USER],
                stderr=err, env={"SOFTHSM2_CONF": str(soft.conf), "PATH": "/usr/bin:/bin"},
                cwd="/",
            ))  # fmt: skip
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        return str(sock)

    try:
        piked, charon = _setup(
            gateways, make_piked, make_charon, tmp_path, "ecdsa-p256", soft.module, "gw",
            "ike", key_uri=uri(soft.module, "gw", "ike", pin_file=pin), before_piked=start_keyd,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while "token gw: ready (logged in)" not in err_path.read_text():
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.05)
        wait_token_ready(piked, "gw")  # and piked has the key helper's answer
        rtt = _established(piked, charon, "ecdsa-p256")
        assert rtt < 5.0
        keyd = procs[0].pid
        status = Path(f"/proc/{keyd}/status").read_text()
        assert re.search(rf"^Uid:\t{NOBODY}\t{NOBODY}\t{NOBODY}\t", status, re.M), status
        for cap in ("CapEff", "CapPrm", "CapBnd"):
            assert f"{cap}:\t0000000000000000" in status
        assert piked.proc is not None
        assert "PIKE_PIN" not in Path(f"/proc/{piked.proc.pid}/environ").read_bytes().decode(
            errors="replace"
        )
        plog, klog = piked.log_text(), err_path.read_text()
        assert "token gw: ready" not in plog  # no token session in piked
        assert f"listening for piked as uid {NOBODY}" in klog
        assert USER_PIN not in plog and USER_PIN not in klog
        # piked's user of the image cannot read the PIN nor see the token
        probe = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import sys\nfor p in sys.argv[1:]:\n"
             "    try:\n        open(p).read(); print('read', p)\n"
             "    except PermissionError:\n        pass\n",
             str(pin), str(next(soft.tokens.rglob("*.object")))],
            user=PIKE_USER, capture_output=True, text=True, timeout=10, cwd="/",
        )  # fmt: skip
        assert probe.returncode == 0 and probe.stdout == "", probe.stdout + probe.stderr
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.interop
def test_softhsm_token_gone_mid_ike_sa(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The token goes away after piked has sent IKE_SA_INIT and before it signs IKE_AUTH
    (charon is held with SIGSTOP while the token is pulled; piked still believes it
    ready): the signature fails with one clear error, the IKE SA fails closed and is
    not retried (keyingtries 1), piked keeps running and answering, the PIN appears
    nowhere; once the token is back piked logs in again by itself, once, and the next
    IKE SA comes up."""
    soft = _softhsm_gw(tmp_path, monkeypatch)
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, "ecdsa-p256",
                           soft.module, "gw", "ike")  # fmt: skip
    piked.poll_via_socket = True
    _established(piked, charon, "ecdsa-p256")
    piked.terminate("hq")
    charon.wait_no_sas(ike="hq", timeout=10)
    assert charon.pid is not None
    inits = piked.log_text().count("sending IKE_SA_INIT request")
    os.kill(charon.pid, signal.SIGSTOP)
    try:
        piked.initiate("hq")
        deadline = time.monotonic() + 10
        while piked.log_text().count("sending IKE_SA_INIT request") == inits:
            assert time.monotonic() < deadline, piked.log_tail(30)
            time.sleep(0.02)
        away = soft.pull()  # mid-IKE SA: the INIT is out, the answer not yet read
    finally:
        os.kill(charon.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while "cannot sign our AUTH" not in piked.log_text():
        assert time.monotonic() < deadline, piked.log_tail(40)
        time.sleep(0.1)
    time.sleep(2.0)  # no second attempt, no retry of the signature
    log = piked.log_text()
    errors = [ln for ln in log.splitlines() if "cannot sign our AUTH" in ln and "ERROR" in ln]
    assert len(errors) == 1, errors
    assert USER_PIN not in log
    assert "Traceback" not in log
    assert not [s for s in piked.list_sas() if s.state == "ESTABLISHED"]
    assert piked.proc is not None and piked.proc.poll() is None
    assert piked.control("status")["ike_sas"] == 0  # answering, nothing left half-made
    logins = log.count("logged in again")
    soft.plug(away)
    time.sleep(5.5)  # the re-probe interval
    _established(piked, charon, "ecdsa-p256")
    log = piked.log_text()
    assert log.count("logged in again") == logins + 1
    assert USER_PIN not in log


@pytest.mark.interop
@pytest.mark.parametrize("kind", TPM_KINDS)
def test_tpm_key_auth_abrmd_gone_and_back(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, tpm_token: Tpm, kind: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    label = f"ike-{kind}"
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind,
                           tpm_token.module, tpm_token.label, label)  # fmt: skip
    _established(piked, charon, kind)
    mech = "rsa_pkcs1_sha256" if kind == "rsa2048" else "ecdsa_sha256"
    _, m = _metrics(piked)
    assert _sample(m, "pike_token_present", token=tpm_token.label) == 1.0
    assert _sample(m, "pike_sign_duration_seconds_count", token=tpm_token.label, key=label,
                   mechanism=mech) == 1.0  # fmt: skip
    tpm_token.stop_abrmd()
    try:
        _fails_closed(piked)
    finally:
        tpm_token.start_abrmd()
    time.sleep(5.5)
    piked.terminate("hq", check=False)
    time.sleep(0.5)
    _established(piked, charon, kind)
    assert f"token {tpm_token.label}: ready (logged in again)" in piked.log_text()


# -- IKEv1: HASH_I signed as it is (CKM_RSA_PKCS without DigestInfo, or CKM_ECDSA) ------


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS_V1))
def test_softhsm_key_signs_ikev1_main_mode(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    soft = _softhsm_gw(tmp_path, monkeypatch)
    _run(gateways, make_piked, make_charon, tmp_path, kind, soft.module, "gw", "ike")


@pytest.mark.interop
@pytest.mark.parametrize("kind", TPM_KINDS)
def test_tpm_key_signs_ikev1_main_mode(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tpm_token: Tpm,
    kind: str,
) -> None:
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    reset_pike_tokens()
    label = f"ikev1-{kind}"
    _run(gateways, make_piked, make_charon, tmp_path, kind, tpm_token.module, tpm_token.label,
         label)  # fmt: skip


def _run(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    module: str,
    token: str,
    label: str,
) -> None:
    """IKEv1 Main Mode signed with the token's key: charon verifies it with the IKEv1
    scheme, piked's /metrics counts it under the IKEv1 mechanism, the PIN is never logged."""
    _, scheme, mechanism = KINDS_V1[kind]
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind, module, token,
                           label, version=1)  # fmt: skip
    piked.initiate("hq")
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert p.version == 1
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    clog = charon.log_text()
    assert f"authentication of '{BRANCH}' with {scheme} successful" in clog, clog[-3000:]
    text, m = _metrics(piked)
    sign = {"token": token, "key": label, "mechanism": mechanism}
    assert _sample(m, "pike_sign_duration_seconds_count", **sign) == 1.0, text[-2000:]
    assert USER_PIN not in piked.log_text()
