"""Host tier: revocation with real parts. A CA made with ``cryptography``; its CRL served
by ``python3 -m http.server`` and its OCSP answers by ``openssl ocsp`` (an index file, the
CA as responder), both in the host namespace behind ``left`` (10.1.0.2); piked on ``left``,
charon on ``right`` (IKE only: the host kernel has no ESP).

- strongSwan branch -> pike hub (IKEv2): the certificate's CRL distribution point is
  fetched on first contact (the IKE_AUTH is answered on charon's retransmission); a CRL
  that revokes the branch, picked up by the background refresh at its nextUpdate, ends the
  live IKE SA, and the next IKE_AUTH is refused. Prometheus scrapes the expiry and CRL
  series meanwhile.
- pike branch -> strongSwan hub (IKEv2): the hub's certificate is revoked at the OCSP
  responder (AIA): piked refuses it.
- OCSP responder that hangs, under strict / ifuri / relaxed (one piked, three connections
  told apart by the branch's identity), and the real responder up under strict.
- IKEv1 Main Mode: a revoked branch is refused after the CRL came in (MM5 waits for it).
- ``pikectl reload`` takes a renewed certificate and a new CRL file under the same names
  and keeps the tunnel; a CRL file that revokes the branch ends it.
- strongSwan as the hub refuses a pike branch revoked in the CRL (charon's revocation
  and curl plugins: the CA and CRL made here interoperate).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ikev2.revgen import aia, cdp, crl_der, make_crl
from ikev2.x509gen import DAY, NOW, Issued, certify, issue, make_ca, write
from ops.prom import METRICS_PORT, prom_query, start_prometheus
from pike.sa.revocation_status import serial_text

from .conftest import Gateways, MakeCharon, MakePiked, Require
from .netns import Namespace
from .piked import PikedNode
from .strongswan import Child, Connection, StrongswanNode
from .strongswan_v1 import ikev1_connection

PKI_IP = "10.1.0.2"
CRL_URI = f"http://{PKI_IP}:8080/ca.crl"
OCSP_URI = f"http://{PKI_IP}:2560/"
HANGING_URI = f"http://{PKI_IP}:2561/"
HQ = "hq.example.net"


def _index_line(cert: x509.Certificate, revoked: bool) -> str:
    """One line of openssl ca's index.txt (what ``openssl ocsp -index`` reads)."""
    exp = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    rev = (NOW - dt.timedelta(hours=1)).strftime("%y%m%d%H%M%SZ") if revoked else ""
    dn = "/" + "/".join(a.rfc4514_string() for a in reversed(list(cert.subject)))
    return f"{'R' if revoked else 'V'}\t{exp}\t{rev}\t{cert.serial_number:X}\tunknown\t{dn}\n"


class Pki:
    """CA files, the served CRL directory and the OCSP index, in ``directory``."""

    def __init__(self, directory: Path, ns: Namespace) -> None:
        self.dir = directory
        self.ns = ns
        self.ca = make_ca("ecdsa-p256", "pike revocation CA")
        self.www = directory / "www"
        self.www.mkdir(parents=True)
        self.ca_pem, self.ca_key = write(directory, "ca", self.ca)
        self.index = directory / "index.txt"
        self.index.write_text("")
        self.crl_number = 0

    def gateway(self, ident: str, *extra: tuple[x509.ExtensionType, bool]) -> Issued:
        return issue(self.ca, "ecdsa-p256", ident, [x509.DNSName(ident)], extra=extra)

    def publish_crl(self, revoked: list[Issued], next_update_s: float = 3600) -> None:
        self.crl_number += 1
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        crl = make_crl(
            self.ca,
            [r.cert.serial_number for r in revoked],
            this_update=now - dt.timedelta(seconds=5),
            next_update=now + dt.timedelta(seconds=next_update_s),
            number=self.crl_number,
        )
        tmp = self.www / "ca.crl.tmp"
        tmp.write_bytes(crl_der(crl))
        tmp.rename(self.www / "ca.crl")

    def set_index(self, certs: list[tuple[Issued, bool]]) -> None:
        self.index.write_text("".join(_index_line(i.cert, r) for i, r in certs))

    def serve_crls(self) -> None:
        self.ns.popen(
            [sys.executable, "-m", "http.server", "--bind", PKI_IP, "8080",
             "--directory", str(self.www)],
        )  # fmt: skip
        _wait_port(self.ns, 8080)

    def serve_ocsp(self) -> None:
        """``openssl ocsp`` answering from the index, signed by the CA, nextUpdate in 5
        minutes; it takes the request's nonce into its answer."""
        log = (self.dir / "ocsp.log").open("wb")
        self.ns.popen(
            ["openssl", "ocsp", "-index", str(self.index), "-port", "2560",
             "-rsigner", str(self.ca_pem), "-rkey", str(self.ca_key), "-CA", str(self.ca_pem),
             "-nmin", "5"],
            stdout=log,
        )  # fmt: skip
        # Not probed with a connection: openssl ocsp then waits on that one and answers
        # no other (measured with 3.0); its log says when it listens.
        _wait(lambda: b"waiting for OCSP client" in (self.dir / "ocsp.log").read_bytes(), 10,
              "openssl ocsp to listen")  # fmt: skip

    def hang_ocsp(self) -> None:
        """A responder that takes the connection and never answers."""
        code = (
            "import socket,time\n"
            f"s=socket.socket(); s.bind(('{PKI_IP}', 2561)); s.listen(16)\n"
            "c=[]\nwhile True: c.append(s.accept()[0])\n"
        )
        self.ns.popen([sys.executable, "-c", code])
        _wait_port(self.ns, 2561)


def _wait_port(ns: Namespace, port: int, timeout: float = 10.0) -> None:
    code = (
        "import socket,sys,time\n"
        f"end=time.time()+{timeout}\n"
        "while time.time()<end:\n"
        "    try:\n"
        f"        socket.create_connection(('{PKI_IP}', {port}), 0.5).close(); sys.exit(0)\n"
        "    except OSError: time.sleep(0.05)\n"
        "sys.exit(1)\n"
    )
    ns.run([sys.executable, "-c", code], timeout=timeout + 5)


def _pubkey_conn(left: bool, version: int, name: str, peer: str) -> Connection:
    """Certificate connection ``name`` between piked (left, ``HQ``) and ``peer`` (right),
    as the ``left`` side or the right one sees it."""
    here, there = ("192.0.2.1", "192.0.2.2") if left else ("192.0.2.2", "192.0.2.1")
    mine, theirs = ("10.1.0.0/24", "10.2.0.0/24") if left else ("10.2.0.0/24", "10.1.0.0/24")
    local_id, remote_id = (HQ, peer) if left else (peer, HQ)
    if version == 1:
        c = ikev1_connection(
            here, there, name=name, local_ts=mine, remote_ts=theirs,
            local_id=local_id, remote_id=remote_id,
        )  # fmt: skip
        c.local_auth = c.remote_auth = "pubkey"
        return c
    return Connection(
        name, [here], [there],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_auth="pubkey", remote_auth="pubkey", local_id=local_id, remote_id=remote_id,
        children=[Child("lan", [mine], [theirs], ("aes128gcm16",))],
    )  # fmt: skip


def _charon(
    gw: Gateways,
    make_charon: MakeCharon,
    tmp_path: Path,
    pki: Pki,
    mine: dict[str, Issued],
    version: int = 2,
    hub: Issued | None = None,
    hub_revocation: str | None = None,
) -> StrongswanNode:
    """charon on ``right`` with one connection per identity in ``mine`` (name: the key)."""
    files = tmp_path / "charon-creds"
    conns = []
    certs = []
    for name, issued in mine.items():
        ident = issued.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        cert, key = write(files, name, issued)
        conn = _pubkey_conn(False, version, name, str(ident))
        conn.local_certs = [cert.name]
        conns.append(conn)
        certs.append((cert, key))
    if hub is not None:  # charon is the hub: it answers as HQ to the one branch
        cert, key = write(files, "hub", hub)
        ((name, issued),) = mine.items()
        ident = issued.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        conns = [
            Connection(
                name, ["192.0.2.2"], ["192.0.2.1"],
                proposals=("aes128gcm16-prfsha256-x25519",),
                local_auth="pubkey", remote_auth="pubkey", local_id=HQ, remote_id=str(ident),
                local_certs=[cert.name],
                children=[Child("lan", ["10.2.0.0/24"], ["10.1.0.0/24"], ("aes128gcm16",))],
            )
        ]  # fmt: skip
        if hub_revocation is not None:  # charon's revocation plugin checks the branch
            conns[0].extra = {
                "remote": {"auth": "pubkey", "id": str(ident), "revocation": hub_revocation}
            }
        certs = [(cert, key)]
    charon = make_charon(gw.right, "charon", *conns, libipsec=gw.libipsec, start=False)
    if hub_revocation is not None:
        charon.extra_plugins = ("curl",)  # CRLs over HTTP
    charon.write_config()
    charon.install_cert(pki.ca_pem, ca=True)
    for cert, key in certs:
        charon.install_cert(cert)
        charon.install_key(key)
    charon.start()
    return charon


def _piked(
    gw: Gateways,
    make_piked: MakePiked,
    pki: Pki,
    me: Issued,
    remotes: dict[str, tuple[str, dict[str, object]]],
    version: int = 2,
    start: bool = True,
) -> PikedNode:
    """piked on ``left`` as ``HQ``; ``remotes``: connection -> (peer id, remote keys)."""
    conns = [_pubkey_conn(True, version, name, peer) for name, (peer, _) in remotes.items()]
    piked = make_piked(gw.left, "piked", *conns, start=False)
    write(piked.dir, "hq", me)
    write(piked.dir, "ca", pki.ca)
    piked.daemon["metrics_listen"] = f"127.0.0.1:{METRICS_PORT}"
    piked.extra = {
        name: {
            "local": {"auth": "pubkey", "id": HQ, "certs": ["hq.pem"], "key": "hq.key"},
            "remote": {"auth": "pubkey", "id": peer, "cacerts": ["ca.pem"], **keys},  # type: ignore[dict-item]
        }
        for name, (peer, keys) in remotes.items()
    }
    if start:
        piked.start()
    return piked


def _established(node: PikedNode | StrongswanNode, name: str) -> bool:
    return any(sa.name == name and sa.state == "ESTABLISHED" for sa in node.list_sas())


def _wait(cond: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _certs(piked: PikedNode) -> dict[str, object]:
    out = piked.pikectl("certs", "--json")
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture
def pki(gateways: Gateways, tmp_path: Path, require: Require) -> Pki:
    require(shutil.which("openssl") is not None, "openssl missing (Debian package openssl)")
    host = gateways.left_lan.host
    assert host is not None
    return Pki(tmp_path / "pki", host)


@pytest.mark.interop
def test_strongswan_branch_crl_revocation_ends_the_live_sa(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    pki: Pki,
    require: Require,
) -> None:
    require(shutil.which("prometheus") is not None, "prometheus missing (Debian package)")
    branch = pki.gateway("branch1.example.net", cdp(CRL_URI))
    # nextUpdate must not pass before the first IKE_AUTH has been checked (piked, charon
    # and Prometheus start first: up to ~10 s on a loaded machine); the refresh then
    # brings the revoking CRL published below
    pki.publish_crl([], next_update_s=15)
    pki.serve_crls()
    piked = _piked(
        gateways, make_piked, pki, pki.gateway(HQ),
        {"br": ("branch1.example.net", {"revocation": "strict"})},
    )  # fmt: skip
    start_prometheus(gateways.left, tmp_path / "prom")
    charon = _charon(gateways, make_charon, tmp_path, pki, {"br": branch})
    t0 = time.monotonic()
    charon.initiate_ike("br", timeout=20)  # IKE only: the host kernel has no ESP
    _wait(lambda: _established(piked, "br"), 10, "the branch's IKE SA")
    print(f"first IKE_AUTH with a CRL fetch: {time.monotonic() - t0:.1f} s")
    plog = piked.log_text()
    assert "is being fetched; request 1 left unanswered" in plog, plog[-3000:]
    assert f"CRL {CRL_URI}: 0 revoked" in plog
    (peer,) = [c for c in _certs(piked)["certs"] if c["role"] == "peer"]  # type: ignore[attr-defined]
    assert (peer["revocation"], peer["revocation_source"]) == ("good", f"crl {CRL_URI}")

    # the expiry and CRL series as Prometheus scraped them
    def scraped() -> bool:
        got = prom_query(
            gateways.left, 'pike_certificate_expiry_timestamp_seconds{connection="br"}'
        )
        return {r["metric"]["role"] for r in got} == {"local", "ca", "peer"}

    _wait(scraped, 20, "Prometheus to scrape the certificate series")
    got = prom_query(gateways.left, 'pike_certificate_expiry_timestamp_seconds{role="peer"}')
    assert float(got[0]["value"][1]) == branch.cert.not_valid_after_utc.timestamp()
    assert got[0]["metric"]["subject"] == "CN=branch1.example.net,O=pike test,C=CH"
    nxt = prom_query(gateways.left, "pike_crl_next_update_timestamp_seconds")
    assert nxt and nxt[0]["metric"]["source"] == CRL_URI

    # the head office revokes the branch: the refresh at nextUpdate ends the live SA
    pki.publish_crl([branch], next_update_s=3600)
    _wait(lambda: not _established(piked, "br"), 30, "the revoked branch's IKE SA to go")
    _wait(lambda: not _established(charon, "br"), 10, "charon to see the Delete")
    plog = piked.log_text()
    serial = serial_text(branch.cert.serial_number)
    assert "deleting IKE SA of a revoked peer" in plog and serial in plog, plog[-3000:]
    crls = _certs(piked)["crls"]
    assert isinstance(crls, list) and [c["revoked"] for c in crls] == [1]
    assert prom_query(gateways.left, "pike_crl_revoked_certificates")

    # and the next IKE_AUTH is refused
    charon.swanctl("--initiate", "--ike", "br", "--timeout", "10", check=False)
    _wait(lambda: "received AUTHENTICATION_FAILED" in charon.log_text(), 15, "the refusal")
    plog = piked.log_text()
    assert "is revoked (revoked at" in plog and f"crl {CRL_URI}" in plog


@pytest.mark.interop
def test_authority_crl_refuses_a_branch_whose_certificate_names_none(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """[authorities.NAME] on the hub: the CA's crl_uris, fetched at start, revoke a
    strongSwan branch whose certificate has no CRL distribution point."""
    branch = pki.gateway("branch1.example.net")  # no CDP, no AIA
    pki.publish_crl([branch])
    pki.serve_crls()
    piked = _piked(
        gateways, make_piked, pki, pki.gateway(HQ), {"br": ("branch1.example.net", {})},
        start=False,
    )  # fmt: skip
    base = piked.config_text
    authority = f'\n[authorities.corp]\ncacert = "ca.pem"\ncrl_uris = ["{CRL_URI}"]\n'
    setattr(piked, "config_text", lambda: base() + authority)  # noqa: B010
    piked.start()
    _wait(lambda: f"CRL {CRL_URI}: 1 revoked" in piked.log_text(), 15, "the CA's CRL at start")
    charon = _charon(gateways, make_charon, tmp_path, pki, {"br": branch})
    charon.swanctl("--initiate", "--ike", "br", "--timeout", "10", check=False)
    _wait(lambda: "received AUTHENTICATION_FAILED" in charon.log_text(), 15, "the refusal")
    plog = piked.log_text()
    assert "is revoked (revoked at" in plog and f"crl {CRL_URI}" in plog, plog[-3000:]
    assert not _established(piked, "br")


@pytest.mark.interop
def test_pike_branch_refuses_a_hub_revoked_at_the_ocsp_responder(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """piked initiates to charon (the hub); the hub's certificate names the OCSP
    responder (AIA), where it is revoked."""
    hub = pki.gateway(HQ, aia(OCSP_URI))
    branch = pki.gateway("branch1.example.net")
    pki.set_index([(hub, True), (branch, False)])
    pki.serve_ocsp()
    charon = _charon(gateways, make_charon, tmp_path, pki, {"hq": branch}, hub=hub)
    piked = _piked_branch(gateways, make_piked, pki, branch, "ifuri")
    piked.initiate("hq", check=False)
    _wait(lambda: "refused by revocation check" in piked.log_text(), 20, "the refusal")
    plog = piked.log_text()
    assert "revoked (revoked at" in plog and f"ocsp {OCSP_URI}" in plog, plog[-3000:]
    assert f"OCSP {OCSP_URI}: serial" in plog and "is revoked" in plog
    assert not _established(piked, "hq")
    del charon


def _piked_branch(
    gw: Gateways, make_piked: MakePiked, pki: Pki, branch: Issued, revocation: str
) -> PikedNode:
    """piked on ``left`` as the branch: its connection "hq" authenticates charon as HQ."""
    piked = make_piked(gw.left, "piked", _branch_conn(), start=False)
    write(piked.dir, "me", branch)
    write(piked.dir, "ca", pki.ca)
    piked.daemon["retransmit_timeout"] = 1.5
    piked.extra = {
        "hq": {
            "local": {"auth": "pubkey", "id": "branch1.example.net", "certs": ["me.pem"],
                      "key": "me.key"},
            "remote": {"auth": "pubkey", "id": HQ, "cacerts": ["ca.pem"],
                       "revocation": revocation},
        }
    }  # fmt: skip
    piked.start()
    return piked


def _branch_conn() -> Connection:
    return Connection(
        "hq", ["192.0.2.1"], ["192.0.2.2"],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_auth="pubkey", remote_auth="pubkey", local_id="branch1.example.net", remote_id=HQ,
        children=[Child("lan", ["10.1.0.0/24"], ["10.2.0.0/24"], ("aes128gcm16",))],
    )  # fmt: skip


# connection -> (revocation policy, the responder, whether the branch gets in)
OCSP_CASES = {
    "strict": ("strict", HANGING_URI, False),
    "ifuri": ("ifuri", HANGING_URI, False),
    "relaxed": ("relaxed", HANGING_URI, True),
    "up": ("strict", OCSP_URI, True),
}


@pytest.mark.interop
def test_ocsp_responder_down_under_each_policy(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """One hub, four connections told apart by the branch identity: three use a responder
    that hangs (strict and ifuri refuse, relaxed lets in), one the real ``openssl ocsp``
    under strict (lets in)."""
    branches = {name: pki.gateway(f"{name}.example.net") for name in OCSP_CASES}
    pki.set_index([(b, False) for b in branches.values()])
    pki.serve_ocsp()
    pki.hang_ocsp()
    piked = _piked(
        gateways, make_piked, pki, pki.gateway(HQ),
        {
            name: (f"{name}.example.net", {"revocation": policy, "ocsp_uris": [uri]})
            for name, (policy, uri, _) in OCSP_CASES.items()
        },
    )  # fmt: skip
    charon = _charon(gateways, make_charon, tmp_path, pki, branches)
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(OCSP_CASES)) as pool:  # swanctl waits for each
        for name in OCSP_CASES:
            pool.submit(charon.initiate, "lan", ike=name, check=False, timeout=20)
    want = {name for name, (_, _, ok) in OCSP_CASES.items() if ok}
    _wait(lambda: {sa.name for sa in piked.list_sas() if sa.state == "ESTABLISHED"} == want,
          30, f"{sorted(want)} up")  # fmt: skip
    _wait(lambda: piked.log_text().count("refused by revocation check") >= 2, 20, "refusals")
    print(f"all four decided after {time.monotonic() - t0:.1f} s")
    plog = piked.log_text()
    assert "unknown under revocation = strict" in plog, plog[-4000:]
    assert "could not be fetched under revocation = ifuri" in plog
    assert f"OCSP fetch from {HANGING_URI} failed: no answer within 3 s" in plog
    assert f"OCSP {OCSP_URI}: serial" in plog and "is good" in plog
    for name, (_, _, ok) in OCSP_CASES.items():
        assert _established(piked, name) is ok, name


@pytest.mark.interop
def test_ikev1_main_mode_refuses_a_revoked_branch(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """IKEv1 Main Mode under the same check: MM5 waits (not taken) for the CRL from the
    distribution point, charon's retransmission is refused."""
    branch = pki.gateway("branch1.example.net", cdp(CRL_URI))
    pki.publish_crl([branch])
    pki.serve_crls()
    piked = _piked(
        gateways, make_piked, pki, pki.gateway(HQ),
        {"br": ("branch1.example.net", {})}, version=1,
    )  # fmt: skip
    charon = _charon(gateways, make_charon, tmp_path, pki, {"br": branch}, version=1)
    # swanctl would wait out its timeout (IKEv1 has no answer to a refused MM5)
    threading.Thread(
        target=charon.swanctl, args=("--initiate", "--ike", "br", "--timeout", "20"),
        kwargs={"check": False}, daemon=True,
    ).start()  # fmt: skip
    _wait(lambda: "refused by revocation check" in piked.log_text(), 25, "the refusal")
    plog = piked.log_text()
    assert "revocation status of 'CN=branch1.example.net" in plog and "is being fetched" in plog
    assert "is revoked (revoked at" in plog and f"crl {CRL_URI}" in plog, plog[-3000:]
    assert not _established(piked, "br")


def _renewed(pki: Pki, old: Issued) -> Issued:
    """A new certificate (new serial, same subject and SAN) for ``old``'s key."""
    req = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(old.cert.subject)
        .sign(old.key, hashes.SHA256())
    )
    san = old.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return Issued(certify(pki.ca, req, list(san), not_after=NOW + 400 * DAY), old.key)


@pytest.mark.interop
def test_reload_takes_new_certificates_and_crl_files_and_keeps_the_tunnel(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """A renewed certificate and a new CRL file under the same names: ``pikectl reload``
    uses both and leaves the live IKE SA alone; a CRL file that revokes the branch ends it
    at the next reload."""
    branch, hq = pki.gateway("branch1.example.net"), pki.gateway(HQ)
    other = pki.gateway("stolen.example.net")
    piked = _piked(
        gateways, make_piked, pki, hq, {"br": ("branch1.example.net", {"crls": ["ca.crl"]})},
        start=False,
    )  # fmt: skip
    (piked.dir / "ca.crl").write_bytes(crl_der(make_crl(pki.ca)))
    piked.start()
    charon = _charon(gateways, make_charon, tmp_path, pki, {"br": branch})
    charon.initiate_ike("br", timeout=10)
    (before,) = [sa for sa in piked.list_sas() if sa.name == "br"]

    renewed = _renewed(pki, hq)
    write(piked.dir, "hq", renewed)
    (piked.dir / "ca.crl").write_bytes(
        crl_der(make_crl(pki.ca, [other.cert.serial_number], number=2))
    )
    out = piked.pikectl("reload").stdout
    assert "unchanged" in out and "br" in out, out
    (after,) = [sa for sa in piked.list_sas() if sa.name == "br"]
    assert (after.initiator_spi, after.responder_spi) == (
        before.initiator_spi,
        before.responder_spi,
    )
    certs = _certs(piked)
    (local,) = [c for c in certs["certs"] if c["role"] == "local"]  # type: ignore[attr-defined]
    assert local["serial"] == serial_text(renewed.cert.serial_number)
    assert local["not_after"] == renewed.cert.not_valid_after_utc.timestamp()
    # our own certificate, from the CRL of our CA held for the branches (not revoked)
    assert (local["revocation"], local["revocation_source"]) == (
        "good",
        f"crl {piked.dir / 'ca.crl'}",
    )
    crls = certs["crls"]
    assert isinstance(crls, list) and len(crls) == 1
    crl = crls[0]
    assert crl["revoked"] == 1 and crl["number"] == 2 and crl["source"].endswith("/ca.crl")

    (piked.dir / "ca.crl").write_bytes(
        crl_der(make_crl(pki.ca, [other.cert.serial_number, branch.cert.serial_number], number=3))
    )
    piked.pikectl("reload")
    _wait(lambda: not _established(piked, "br"), 10, "the revoked branch's IKE SA to go")
    assert "deleting IKE SA of a revoked peer" in piked.log_text()
    del charon


@pytest.mark.interop
def test_strongswan_hub_refuses_a_pike_branch_revoked_in_the_crl(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, pki: Pki
) -> None:
    """The other way round: charon (the hub, its revocation and curl plugins, revocation =
    strict) fetches the CRL of the pike branch's certificate from the same HTTP server and
    refuses it; piked reads the AUTHENTICATION_FAILED."""
    branch = pki.gateway("branch1.example.net", cdp(CRL_URI))
    pki.publish_crl([branch])
    pki.serve_crls()
    charon = _charon(
        gateways, make_charon, tmp_path, pki, {"hq": branch}, hub=pki.gateway(HQ),
        hub_revocation="strict",
    )  # fmt: skip
    piked = _piked_branch(gateways, make_piked, pki, branch, "relaxed")
    piked.initiate("hq", check=False)
    _wait(lambda: "the peer refused our authentication" in piked.log_text(), 20, "the refusal")
    clog = charon.log_text()
    assert "certificate was revoked" in clog, clog[-3000:]
    assert not _established(piked, "hq")
