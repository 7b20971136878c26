"""Host tier: piked and strongSwan 5.9 in IKEv1 Main and Aggressive Mode with certificates
(RSA, ECDSA).

A CA and both gateway certificates are made with ``cryptography`` (tests/ikev2/x509gen.py).
piked runs on ``left`` (branch1.example.net), charon on ``right`` (hq.example.net); each
side initiates in turn. IKEv1 negotiates one authentication method for both ends (RSA 3,
ECDSA 9/10/11), so both certificates have the same key type. Both sides must log that they
verified the other's signature with the IKEv1 scheme: charon's RSA_EMSA_PKCS1_NULL /
ECDSA_WITH_NULL (the hash signed as it is), piked's RSA_PKCS1_NULL / ECDSA_NULL. The host
kernel has no ESP: the ISAKMP SA is what is checked.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.x509gen import Issued, issue, make_ca, write

from .conftest import Gateways, MakeCharon, MakePiked
from .piked import PikedNode
from .strongswan import StrongswanNode
from .strongswan_v1 import ikev1_connection

BRANCH = "branch1.example.net"
HQ = "hq.example.net"

# key type -> (charon's name for the scheme piked signed with, piked's, auth method)
KINDS = {
    "rsa": ("RSA_EMSA_PKCS1_NULL", "RSA_PKCS1_NULL", 3),
    "ecdsa-p256": ("ECDSA_WITH_NULL", "ECDSA_NULL", 9),
    "ecdsa-p384": ("ECDSA_WITH_NULL", "ECDSA_NULL", 10),
    "ecdsa-p521": ("ECDSA_WITH_NULL", "ECDSA_NULL", 11),
}


def _setup(
    gw: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    aggressive: bool = False,
    piked_aggressive: bool | None = None,
    dn_ids: bool = False,
) -> tuple[PikedNode, StrongswanNode]:
    ca = make_ca("ecdsa-p256", "pike interop CA")
    mine: Issued = issue(ca, kind, BRANCH, [x509.DNSName(BRANCH)])
    theirs: Issued = issue(ca, kind, HQ, [x509.DNSName(HQ)])
    hq_id, branch_id = (theirs.dn, mine.dn) if dn_ids else (HQ, BRANCH)

    charon_files = tmp_path / "charon-creds"
    cert, key = write(charon_files, "hq", theirs)
    ca_cert, _ = write(charon_files, "ca", ca)
    conn = ikev1_connection(
        "192.0.2.2", "192.0.2.1", local_ts="10.2.0.0/24", remote_ts="10.1.0.0/24",
        local_id=hq_id, remote_id=branch_id, aggressive=aggressive,
    )  # fmt: skip
    conn.local_auth = conn.remote_auth = "pubkey"
    conn.local_certs = [cert.name]
    charon = make_charon(gw.right, "charon", conn, libipsec=gw.libipsec, start=False)
    charon.write_config()
    charon.install_cert(ca_cert, ca=True)
    charon.install_cert(cert)
    charon.install_key(key)
    charon.start()

    mine_conn = ikev1_connection(
        "192.0.2.1", "192.0.2.2", local_ts="10.1.0.0/24", remote_ts="10.2.0.0/24",
        local_id=BRANCH, remote_id=HQ,
        aggressive=aggressive if piked_aggressive is None else piked_aggressive,
    )  # fmt: skip
    piked = make_piked(gw.left, "piked", mine_conn, start=False)
    write(piked.dir, "branch", mine)
    write(piked.dir, "ca", ca)
    piked.extra = {
        "hq": {
            "local": {"auth": "pubkey", "certs": ["branch.pem"], "key": "branch.key"}
            # with DN ids piked names none for itself: its certificate's subject is used
            | ({} if dn_ids else {"id": BRANCH}),
            "remote": {"auth": "pubkey", "id": hq_id, "cacerts": ["ca.pem"]},
        }
    }
    piked.start()
    return piked, charon


def _check(piked: PikedNode, charon: StrongswanNode, kind: str, aggressive: bool = False) -> None:
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    assert p.version == 1
    theirs, ours, method = KINDS[kind]
    clog, plog = charon.log_text(), piked.log_text()
    assert f"authentication of '{BRANCH}' with {theirs} successful" in clog, clog[-3000:]
    assert f"authenticated peer '{HQ}' with {ours} (method {method})" in plog, plog[-3000:]
    exchange = "AGGRESSIVE" if aggressive else "ID_PROT"
    assert f"{exchange} request 0" in clog, clog[-3000:]


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_piked_initiates_main_mode_with_certificates(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> None:
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind)
    piked.initiate("hq", check=False)
    _check(piked, charon, kind)


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_strongswan_initiates_main_mode_with_certificates(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> None:
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind)
    charon.initiate("lan", ike="hq", check=False)
    _check(piked, charon, kind)


@pytest.mark.interop
@pytest.mark.parametrize("kind", ["rsa", "ecdsa-p256"])
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_aggressive_mode_with_certificates(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    initiator: str,
) -> None:
    """Both roles; piked signs AM2 or AM3 through its SignRequest, and the Quick Mode that
    follows (charon sends QM1 right behind AM3) completes: both halves of the CHILD_SA
    carry the same SPIs (piked's stays FAILED on a host kernel without ESP)."""
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind, aggressive=True)
    if initiator == "piked":
        piked.initiate("hq", check=False)
    else:
        charon.initiate("lan", ike="hq", check=False)
    _check(piked, charon, kind, aggressive=True)
    assert "Aggressive Mode" in piked.log_text()
    c = charon.wait_established("hq", timeout=10, child="lan")
    deadline = time.monotonic() + 10
    while (p := piked.ike_sa("hq")) is None or p.child("lan") is None:
        assert time.monotonic() < deadline, p
        time.sleep(0.2)
    pc, cc = p.child("lan"), c.child("lan")
    assert pc is not None and cc is not None
    assert (pc.spi_in, pc.spi_out) == (cc.spi_out, cc.spi_in)


@pytest.mark.interop
def test_aggressive_mode_refused_without_aggressive_true(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path
) -> None:
    """charon offers Aggressive Mode to a piked connection without ``aggressive = true``:
    piked answers AUTHENTICATION-FAILED in the clear (as charon itself would) and keeps
    nothing; charon gives the attempt up."""
    piked, charon = _setup(
        gateways, make_piked, make_charon, tmp_path, "ecdsa-p256", True, piked_aggressive=False
    )
    charon.initiate("lan", ike="hq", check=False)
    deadline = time.monotonic() + 15
    while "received AUTHENTICATION_FAILED" not in (clog := charon.log_text()):
        assert time.monotonic() < deadline, clog[-3000:]
        time.sleep(0.2)
    assert "Aggressive Mode from 192.0.2.2 not allowed" in piked.log_text()
    assert piked.list_sas() == []


@pytest.mark.interop
@pytest.mark.parametrize("aggressive", [False, True])
def test_distinguished_name_identities(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    aggressive: bool,
) -> None:
    """IDs as DNs (charon encodes them as PrintableString, pike's config as UTF8String):
    charon initiates, piked matches its ID by meaning, answers with its subject DN, and
    lists both DNs the way strongSwan prints them."""
    piked, charon = _setup(
        gateways, make_piked, make_charon, tmp_path, "ecdsa-p256", aggressive, dn_ids=True
    )
    charon.initiate("lan", ike="hq", check=False)
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    branch_dn, hq_dn = "C=CH, O=pike test, CN=" + BRANCH, "C=CH, O=pike test, CN=" + HQ
    assert (p.local_id, p.remote_id) == (branch_dn, hq_dn)
    assert f"authentication of '{branch_dn}' with ECDSA_WITH_NULL successful" in (charon.log_text())
