"""Host tier: piked and strongSwan 5.9 authenticate each other with certificates, in IKEv2
and in IKEv1 Main and Aggressive Mode (the shared scenarios are parametrized ``ikev1`` /
``ikev2``).

A CA and both gateway certificates are made with ``cryptography`` (tests/ikev2/x509gen.py).
piked runs on ``left`` (branch1.example.net), charon on ``right`` (hq.example.net); each
side initiates in turn. The host kernel has no ESP, so only the IKE (ISAKMP) SA is checked
(the CHILD_SA is refused the way strongSwan refuses it).

IKEv2: for each key type the issue names: RSA (PKCS#1 v1.5, and PSS with ``rsa_pss``),
ECDSA P-256/P-384/P-521 and Ed25519 (charon verifies and makes Ed25519 signatures with its
openssl or curve25519 plugin, both loaded).

IKEv1 (RSA, ECDSA) negotiates one authentication method for both ends (RSA 3, ECDSA
9/10/11), so both certificates have the same key type. Both sides must log that they
verified the other's signature with the IKEv1 scheme: charon's RSA_EMSA_PKCS1_NULL /
ECDSA_WITH_NULL (the hash signed as it is), piked's RSA_PKCS1_NULL / ECDSA_NULL.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.x509gen import Issued, issue, make_ca, write

from .conftest import Gateways, MakeCharon, MakePiked
from .piked import PikedNode
from .quick_mode_checks import installed_alike, refused_without_esp
from .strongswan import Child, Connection, StrongswanNode
from .strongswan_v1 import ikev1_connection

BRANCH = "branch1.example.net"
HQ = "hq.example.net"

# IKEv2 key type -> (CA key type, how charon names the signature scheme piked used)
KINDS = {
    "rsa": ("rsa", "RSA_EMSA_PKCS1_SHA2_256"),
    "rsa-pss": ("rsa", "RSA_EMSA_PSS_SHA2_256_SALT_32"),
    "ecdsa-p256": ("ecdsa-p256", "ECDSA_WITH_SHA256_DER"),
    "ecdsa-p384": ("ecdsa-p384", "ECDSA_WITH_SHA384_DER"),
    "ecdsa-p521": ("ecdsa-p521", "ECDSA_WITH_SHA512_DER"),
    "ed25519": ("ed25519", "ED25519"),
}
# IKEv1 key type -> (charon's name for the scheme piked signed with, piked's, auth method)
KINDS_V1 = {
    "rsa": ("RSA_EMSA_PKCS1_NULL", "RSA_PKCS1_NULL", 3),
    "ecdsa-p256": ("ECDSA_WITH_NULL", "ECDSA_NULL", 9),
    "ecdsa-p384": ("ECDSA_WITH_NULL", "ECDSA_NULL", 10),
    "ecdsa-p521": ("ECDSA_WITH_NULL", "ECDSA_NULL", 11),
}
# (IKE version, key type) for the scenarios both versions share
VERSION_KINDS = [
    *(pytest.param(1, k, id=f"ikev1-{k}") for k in KINDS_V1),
    *(pytest.param(2, k, id=f"ikev2-{k}") for k in KINDS),
]


def _conn(
    local: str, remote: str, me: str, peer: str, lts: str, rts: str, **kw: object
) -> Connection:
    return Connection(
        "hq",
        [local],
        [remote],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_auth="pubkey",
        remote_auth="pubkey",
        local_id=me,
        remote_id=peer,
        children=[Child("lan", [lts], [rts], ("aes128gcm16",))],
        **kw,  # type: ignore[arg-type]
    )


def _setup(
    gw: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    *,
    version: int = 2,
    classic: bool = False,
    dn_ids: bool = False,
    aggressive: bool = False,
    piked_aggressive: bool | None = None,
) -> tuple[PikedNode, StrongswanNode]:
    key_type = "rsa" if kind == "rsa-pss" else kind
    ca = make_ca(KINDS[kind][0] if version == 2 else "ecdsa-p256", "pike interop CA")
    mine: Issued = issue(ca, key_type, BRANCH, [x509.DNSName(BRANCH)])
    theirs: Issued = issue(ca, key_type, HQ, [x509.DNSName(HQ)])

    charon_files = tmp_path / "charon-creds"
    cert, key = write(charon_files, "hq", theirs)
    ca_cert, _ = write(charon_files, "ca", ca)
    hq_id, branch_id = (theirs.dn, mine.dn) if dn_ids else (HQ, BRANCH)
    if version == 1:
        conn = ikev1_connection(
            "192.0.2.2", "192.0.2.1", local_ts="10.2.0.0/24", remote_ts="10.1.0.0/24",
            local_id=hq_id, remote_id=branch_id, aggressive=aggressive,
        )  # fmt: skip
        conn.local_auth = conn.remote_auth = "pubkey"
        conn.local_certs = [cert.name]
    else:
        conn = _conn(
            "192.0.2.2", "192.0.2.1", hq_id, branch_id, "10.2.0.0/24", "10.1.0.0/24",
            local_certs=[cert.name],
        )  # fmt: skip
    charon = make_charon(gw.right, "charon", conn, libipsec=gw.libipsec, start=False)
    if kind == "rsa-pss":
        charon.charon_settings["rsa_pss"] = "yes"  # charon signs with PSS too
    if classic:
        # No RFC 7427: charon sends no SIGNATURE_HASH_ALGORITHMS and signs the classic way.
        charon.charon_settings["signature_authentication"] = "no"
    charon.start_with(cert, key, ca_cert)

    if version == 1:
        mine_conn = ikev1_connection(
            "192.0.2.1", "192.0.2.2", local_ts="10.1.0.0/24", remote_ts="10.2.0.0/24",
            local_id=BRANCH, remote_id=HQ,
            aggressive=aggressive if piked_aggressive is None else piked_aggressive,
        )  # fmt: skip
    else:
        mine_conn = _conn("192.0.2.1", "192.0.2.2", BRANCH, HQ, "10.1.0.0/24", "10.2.0.0/24")
    piked = make_piked(gw.left, "piked", mine_conn, start=False)
    # Relative names: the loader resolves them against the config file's directory.
    write(piked.dir, "branch", mine)
    write(piked.dir, "ca", ca)
    # With DN ids piked names none for itself: its certificate's subject is used.
    local: dict[str, object] = {"auth": "pubkey"} if dn_ids else {"auth": "pubkey", "id": BRANCH}
    local.update(certs=["branch.pem"], key="branch.key")
    if kind == "rsa-pss":
        local["rsa_pss"] = True
    piked.extra = {
        "hq": {"local": local, "remote": {"auth": "pubkey", "id": hq_id, "cacerts": ["ca.pem"]}}  # type: ignore[dict-item]
    }
    piked.start()
    return piked, charon


def _check(
    piked: PikedNode, charon: StrongswanNode, kind: str, version: int, aggressive: bool = False
) -> None:
    timeout = 20 if version == 1 else 15
    p = piked.wait_established("hq", timeout=timeout)
    c = charon.wait_established("hq", timeout=timeout)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    assert p.version == version
    clog, plog = charon.log_text(), piked.log_text()
    if version == 1:
        theirs, ours, method = KINDS_V1[kind]
        exchange = "AGGRESSIVE" if aggressive else "ID_PROT"
        assert f"{exchange} request 0" in clog, clog[-3000:]
    else:
        theirs, method = KINDS[kind][1], 14
        ours = {
            "rsa": "RSA_PKCS1_SHA256",
            "rsa-pss": "RSA_PSS_SHA256",
            "ecdsa-p256": "ECDSA_SHA256",
            "ecdsa-p384": "ECDSA_SHA384",
            "ecdsa-p521": "ECDSA_SHA512",
        }.get(kind, "ED25519")
    assert f"authentication of '{BRANCH}' with {theirs} successful" in clog, clog[-3000:]
    assert f"authenticated peer '{HQ}' with {ours} (method {method})" in plog, plog[-3000:]


@pytest.mark.interop
@pytest.mark.parametrize(("version", "kind"), VERSION_KINDS)
def test_piked_initiates_with_certificates(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    version: int,
    kind: str,
) -> None:
    """IKEv2, or IKEv1 Main Mode."""
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind, version=version)
    piked.initiate("hq", check=version == 2)
    _check(piked, charon, kind, version)


@pytest.mark.interop
@pytest.mark.parametrize(("version", "kind"), VERSION_KINDS)
def test_strongswan_initiates_with_certificates(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    version: int,
    kind: str,
) -> None:
    """IKEv2, or IKEv1 Main Mode."""
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind, version=version)
    charon.initiate("lan", ike="hq", check=False)
    _check(piked, charon, kind, version)


CLASSIC = {
    "rsa": ("RSA signature", "RSA_PKCS1_SHA1 (method 1)"),
    "ecdsa-p256": ("ECDSA-256 signature", "ECDSA_SHA256 (method 9)"),
    "ecdsa-p384": ("ECDSA-384 signature", "ECDSA_SHA384 (method 10)"),
    "ecdsa-p521": ("ECDSA-521 signature", "ECDSA_SHA512 (method 11)"),
}


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(CLASSIC))
def test_classic_auth_methods_with_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> None:
    """IKEv2, charon without RFC 7427: both sides sign and verify AUTH methods 1 / 9 / 10 /
    11."""
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind, classic=True)
    charon.initiate("lan", ike="hq", check=False)
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    theirs, ours = CLASSIC[kind]
    clog, plog = charon.log_text(), piked.log_text()
    assert f"authentication of '{BRANCH}' with {theirs} successful" in clog, clog[-3000:]
    assert f"authenticated peer '{HQ}' with {ours}" in plog, plog[-3000:]


@pytest.mark.interop
@pytest.mark.parametrize(
    ("version", "initiator", "aggressive"),
    [
        pytest.param(1, "strongswan", False, id="ikev1-main"),
        pytest.param(1, "strongswan", True, id="ikev1-aggressive"),
        pytest.param(2, "piked", False, id="ikev2-piked"),
        pytest.param(2, "strongswan", False, id="ikev2-strongswan"),
    ],
)
def test_distinguished_name_identities(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    version: int,
    initiator: str,
    aggressive: bool,
) -> None:
    """IDs as DNs (charon encodes them as PrintableString, pike's config as UTF8String):
    piked matches the peer's ID by meaning, answers with its subject DN, and lists both DNs
    the way strongSwan prints them."""
    piked, charon = _setup(
        gateways, make_piked, make_charon, tmp_path, "ecdsa-p256",
        version=version, aggressive=aggressive, dn_ids=True,
    )  # fmt: skip
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    timeout = 20 if version == 1 else 15
    p = piked.wait_established("hq", timeout=timeout)
    c = charon.wait_established("hq", timeout=timeout)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    branch_dn, hq_dn = "C=CH, O=pike test, CN=" + BRANCH, "C=CH, O=pike test, CN=" + HQ
    assert (p.local_id, p.remote_id) == (branch_dn, hq_dn)
    theirs, ours = ("ECDSA_WITH_NULL", "ECDSA_NULL (method 9)") if version == 1 else (
        "ECDSA_WITH_SHA256_DER", "ECDSA_SHA256 (method 14)"
    )  # fmt: skip
    assert f"authentication of '{branch_dn}' with {theirs} successful" in charon.log_text()
    if version == 2:
        assert f"authenticated peer '{hq_dn}' with {ours}" in piked.log_text()


@pytest.mark.interop
@pytest.mark.parametrize(
    "kind", [pytest.param("rsa", marks=pytest.mark.kernel_interop), "ecdsa-p256"]
)
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_ikev1_aggressive_mode_with_certificates(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    initiator: str,
) -> None:
    """Both roles; piked signs AM2 or AM3 through its SignRequest, and the Quick Mode that
    follows (charon sends QM1 right behind AM3) completes: both halves of the CHILD_SA
    carry the same SPIs (without ESP in the kernel piked refuses the Quick Mode:
    tests/interop/quick_mode_checks.py; the IKEv1 guest tier runs the RSA ones with ESP:
    the Quick Mode is the same whatever the key)."""
    piked, charon = _setup(
        gateways, make_piked, make_charon, tmp_path, kind, version=1, aggressive=True
    )
    if initiator == "piked":
        piked.initiate("hq", check=False)
    else:
        charon.initiate("lan", ike="hq", check=False)
    _check(piked, charon, kind, 1, aggressive=True)
    assert "Aggressive Mode" in piked.log_text()
    if gateways.esp_in_kernel:
        installed_alike(piked, charon)
    else:
        refused_without_esp(piked, charon, initiator == "piked")


@pytest.mark.interop
def test_ikev1_aggressive_mode_refused_without_aggressive_true(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path
) -> None:
    """charon offers Aggressive Mode to a piked connection without ``aggressive = true``:
    piked answers AUTHENTICATION-FAILED in the clear (as charon itself would) and keeps
    nothing; charon gives the attempt up."""
    piked, charon = _setup(
        gateways, make_piked, make_charon, tmp_path, "ecdsa-p256",
        version=1, aggressive=True, piked_aggressive=False,
    )  # fmt: skip
    charon.initiate("lan", ike="hq", check=False)
    deadline = time.monotonic() + 15
    while "received AUTHENTICATION_FAILED" not in (clog := charon.log_text()):
        assert time.monotonic() < deadline, clog[-3000:]
        time.sleep(0.2)
    assert "Aggressive Mode from 192.0.2.2 not allowed" in piked.log_text()
    assert re.search(  # one WARNING an operator can act on
        r"WARNING\s+refusing Aggressive Mode from 192\.0\.2\.2 \(id .+, sending"
        r" AUTHENTICATION_FAILED\): hq has aggressive = false",
        piked.log_text(),
    ), piked.log_text()[-3000:]
    assert piked.list_sas() == []
