"""Host tier: piked and strongSwan 5.9 authenticate each other with certificates.

A CA and both gateway certificates are made with ``cryptography`` (tests/ikev2/x509gen.py),
for each key type the issue names: RSA (PKCS#1 v1.5, and PSS with ``rsa_pss``), ECDSA
P-256/P-384/P-521 and Ed25519 (charon verifies and makes Ed25519 signatures with its openssl
or curve25519 plugin, both loaded). piked runs on ``left`` (branch1.example.net), charon
on ``right`` (hq.example.net); each side initiates in turn. The host kernel has no ESP, so
only the IKE SA is checked (the CHILD_SA is refused the way strongSwan refuses it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from ikev2.x509gen import Issued, issue, make_ca, write

from .conftest import Gateways, MakeCharon, MakePiked
from .piked import PikedNode
from .strongswan import Child, Connection, StrongswanNode

BRANCH = "branch1.example.net"
HQ = "hq.example.net"

# key type -> (CA key type, how charon names the signature scheme piked used)
KINDS = {
    "rsa": ("rsa", "RSA_EMSA_PKCS1_SHA2_256"),
    "rsa-pss": ("rsa", "RSA_EMSA_PSS_SHA2_256_SALT_32"),
    "ecdsa-p256": ("ecdsa-p256", "ECDSA_WITH_SHA256_DER"),
    "ecdsa-p384": ("ecdsa-p384", "ECDSA_WITH_SHA384_DER"),
    "ecdsa-p521": ("ecdsa-p521", "ECDSA_WITH_SHA512_DER"),
    "ed25519": ("ed25519", "ED25519"),
}


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
    classic: bool = False,
    dn_ids: bool = False,
) -> tuple[PikedNode, StrongswanNode]:
    key_type = "rsa" if kind == "rsa-pss" else kind
    ca = make_ca(KINDS[kind][0], "pike interop CA")
    mine: Issued = issue(ca, key_type, BRANCH, [x509.DNSName(BRANCH)])
    theirs: Issued = issue(ca, key_type, HQ, [x509.DNSName(HQ)])

    charon_files = tmp_path / "charon-creds"
    cert, key = write(charon_files, "hq", theirs)
    ca_cert, _ = write(charon_files, "ca", ca)
    hq_id, branch_id = (theirs.dn, mine.dn) if dn_ids else (HQ, BRANCH)
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
    charon.write_config()
    charon.install_cert(ca_cert, ca=True)
    charon.install_cert(cert)
    charon.install_key(key)
    charon.start()

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


def _check(gw: Gateways, piked: PikedNode, charon: StrongswanNode, kind: str) -> None:
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    clog = charon.log_text()
    scheme = KINDS[kind][1]
    assert f"authentication of '{BRANCH}' with {scheme} successful" in clog, clog[-3000:]
    plog = piked.log_text()
    assert f"authenticated peer '{HQ}' with" in plog, plog[-3000:]
    ours = {
        "rsa": "RSA_PKCS1_SHA256",
        "rsa-pss": "RSA_PSS_SHA256",
        "ecdsa-p256": "ECDSA_SHA256",
        "ecdsa-p384": "ECDSA_SHA384",
        "ecdsa-p521": "ECDSA_SHA512",
    }.get(kind, "ED25519")
    assert f"authenticated peer '{HQ}' with {ours} (method 14)" in plog, plog[-3000:]


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_piked_initiates_with_certificates(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> None:
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind)
    piked.initiate("hq")
    _check(gateways, piked, charon, kind)


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_strongswan_initiates_with_certificates(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> None:
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, kind)
    charon.initiate("lan", ike="hq", check=False)
    _check(gateways, piked, charon, kind)


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
    """charon without RFC 7427: both sides sign and verify AUTH methods 1 / 9 / 10 / 11."""
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
@pytest.mark.parametrize("who", ["piked", "strongswan"])
def test_distinguished_name_identities(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, who: str
) -> None:
    """IDs as DNs: charon encodes them (PrintableString) unlike pike's config (UTF8String)."""
    piked, charon = _setup(gateways, make_piked, make_charon, tmp_path, "ecdsa-p256", dn_ids=True)
    if who == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    branch_dn = "C=CH, O=pike test, CN=" + BRANCH
    hq_dn = "C=CH, O=pike test, CN=" + HQ
    assert f"authentication of '{branch_dn}' with ECDSA_WITH_SHA256_DER successful" in (
        charon.log_text()
    )
    assert f"authenticated peer '{hq_dn}' with ECDSA_SHA256 (method 14)" in piked.log_text()
