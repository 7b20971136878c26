"""pike.sa.certs: CERT/CERTREQ, chain validation at a given time, ID in certificate."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from pike.policy.identity import parse_identity
from pike.sa.certs import (
    CertError,
    ca_keyid,
    cert_payloads,
    certreq_payload,
    dn_equal,
    id_in_cert,
    ids_match,
    load_certificates,
    parse_cert_payloads,
    peer_identity,
    requested_keyids,
    subject_identity,
    validate_chain,
)
from pike.wire.constants import IdType
from pike.wire.payloads import CertPayload, CertReqPayload

from .x509gen import DAY, NOW, issue, make_ca, write

AT = NOW  # every check gets its time as a parameter


@pytest.fixture(scope="module")
def root():
    return make_ca("ecdsa-p256", "root", path_length=1)


@pytest.fixture(scope="module")
def sub(root):
    return make_ca("ecdsa-p256", "sub", issuer=root, path_length=0)


def ee(ca, cn="gw.example.net", **kw):
    return issue(ca, "ecdsa-p256", cn, [x509.DNSName(cn)], **kw)


# -- chains --------------------------------------------------------------------------------


def test_direct_chain(root) -> None:
    leaf = ee(root)
    path = validate_chain([leaf.cert], [root.cert], AT)
    assert path == [leaf.cert, root.cert]


def test_intermediate_in_any_order(root, sub) -> None:
    leaf = ee(sub)
    stray = make_ca(cn="unrelated").cert
    path = validate_chain([leaf.cert, stray, sub.cert], [root.cert], AT)
    assert path == [leaf.cert, sub.cert, root.cert]


def test_missing_intermediate(root, sub) -> None:
    with pytest.raises(CertError, match=r"no trusted path for 'CN=gw.example.net.*issuer 'CN=sub"):
        validate_chain([ee(sub).cert], [root.cert], AT)


def test_unknown_ca() -> None:
    ca, other = make_ca(cn="ours"), make_ca(cn="theirs")
    with pytest.raises(CertError, match=r"no such CA configured or sent"):
        validate_chain([ee(other).cert], [ca.cert], AT)


def test_same_name_other_key() -> None:
    """An impostor CA with our CA's name: the signature check catches it."""
    ca, impostor = make_ca(cn="same"), make_ca(cn="same")
    with pytest.raises(CertError, match=r"'CN=same,O=pike test,C=CH': signature does not verify"):
        validate_chain([ee(impostor).cert], [ca.cert], AT)


def test_no_anchor_configured(root) -> None:
    with pytest.raises(CertError, match=r"no CA certificate configured"):
        validate_chain([ee(root).cert], [], AT)


@pytest.mark.parametrize(
    ("offset", "message"), [(-400 * DAY, "is not valid before"), (400 * DAY, "expired at")]
)
def test_end_entity_validity_at_given_time(root, offset, message) -> None:
    leaf = ee(root)
    validate_chain([leaf.cert], [root.cert], AT)
    with pytest.raises(CertError, match=rf"certificate 'CN=gw.example.net.*' {message}"):
        validate_chain([leaf.cert], [root.cert], AT + offset)


def test_expired_ca() -> None:
    old = make_ca(cn="old", not_before=NOW - 20 * DAY, not_after=NOW - DAY)
    leaf = ee(old, not_before=NOW - 10 * DAY)
    with pytest.raises(CertError, match=r"CA 'CN=old,O=pike test,C=CH' expired"):
        validate_chain([leaf.cert], [old.cert], AT)


def test_intermediate_must_be_ca(root) -> None:
    fake = make_ca(cn="not a ca", issuer=root, ca_flag=False)
    with pytest.raises(CertError, match=r"intermediate CA 'CN=not a ca.*' is not a CA"):
        validate_chain([ee(fake).cert, fake.cert], [root.cert], AT)


def test_path_length(root, sub) -> None:
    deeper = make_ca(cn="deeper", issuer=sub)
    with pytest.raises(CertError, match=r"'CN=sub.*' allows 0 CAs below it, found 1"):
        validate_chain([ee(deeper).cert, deeper.cert, sub.cert], [root.cert], AT)


def test_end_entity_key_usage(root) -> None:
    no_sig = ee(root, digital_signature=False)
    with pytest.raises(CertError, match=r"lacks keyUsage digitalSignature"):
        validate_chain([no_sig.cert], [root.cert], AT)
    validate_chain([ee(root, key_usage=False).cert], [root.cert], AT)  # absent: any use


def test_unknown_critical_extension(root) -> None:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    odd = ee(root, extra=[(ext, True)])
    with pytest.raises(CertError, match=r"unsupported critical extension"):
        validate_chain([odd.cert], [root.cert], AT)
    validate_chain([ee(root, extra=[(ext, False)]).cert], [root.cert], AT)


def test_no_eku_required_but_any_accepted(root) -> None:
    eku = x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.17")])  # ipsecIKE
    validate_chain([ee(root, extra=[(eku, True)]).cert], [root.cert], AT)


# -- payloads ------------------------------------------------------------------------------


def test_cert_payloads_roundtrip(root, sub) -> None:
    leaf = ee(sub)
    payloads = cert_payloads([leaf.cert, sub.cert])
    assert [p.encoding for p in payloads] == [4, 4]
    assert parse_cert_payloads(payloads) == [leaf.cert, sub.cert]


def test_parse_cert_payload_errors() -> None:
    with pytest.raises(CertError, match=r"sent no certificate"):
        parse_cert_payloads([])
    with pytest.raises(CertError, match=r"CERT payload 1 has encoding 12"):
        parse_cert_payloads([CertPayload(12, b"http://x")])
    with pytest.raises(CertError, match=r"CERT payload 1 is not a DER X.509"):
        parse_cert_payloads([CertPayload(4, b"\x30\x03junk")])


def test_certreq_is_sha1_of_spki(root, sub) -> None:
    spki = root.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ca_keyid(root.cert) == hashlib.sha1(spki).digest()
    req = certreq_payload([root.cert, sub.cert, root.cert])
    assert req == CertReqPayload(4, ca_keyid(root.cert) + ca_keyid(sub.cert))
    assert certreq_payload([]) is None
    assert requested_keyids([req, CertReqPayload(12, b"x" * 20)]) == {
        ca_keyid(root.cert),
        ca_keyid(sub.cert),
    }


def test_load_certificates(tmp_path: Path, root, sub) -> None:
    leaf = ee(sub)
    pem, _ = write(tmp_path, "gw", leaf, sub)
    assert load_certificates(str(pem)) == [leaf.cert, sub.cert]
    der = tmp_path / "gw.der"
    der.write_bytes(leaf.cert.public_bytes(serialization.Encoding.DER))
    assert load_certificates(str(der)) == [leaf.cert]
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(CertError, match=r"no readable X.509"):
        load_certificates(str(tmp_path / "bad.pem"))
    with pytest.raises(CertError, match=r"cannot read"):
        load_certificates(str(tmp_path / "missing.pem"))


# -- identities ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi(root):
    sans = [
        x509.DNSName("gw.example.net"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
        x509.RFC822Name("admin@example.net"),
    ]
    return issue(root, "ecdsa-p256", "gw.example.net", sans)


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("gw.example.net", True),
        ("GW.Example.NET", True),
        ("other.example.net", False),
        ("192.0.2.1", True),
        ("192.0.2.9", False),
        ("2001:db8::1", True),
        ("admin@example.net", True),
        ("root@example.net", False),
        ("C=CH, O=pike test, CN=gw.example.net", True),
        ("C=CH, O=pike test, CN=other", False),
        ("CN=gw.example.net, O=pike test, C=CH", False),  # RDN order matters
    ],
)
def test_id_in_cert(multi, text: str, inside: bool) -> None:
    assert id_in_cert(parse_identity(text), multi.cert) is inside


def test_key_id_identity(multi) -> None:
    ski = multi.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert id_in_cert(parse_identity("keyid:#" + ski.hex()), multi.cert)
    assert not id_in_cert(parse_identity("keyid:#00112233"), multi.cert)


def _printable_dn(cn: str) -> bytes:
    """The DN as strongSwan encodes it from text: PrintableString where it can."""
    p = _ASN1Type.PrintableString
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CH", _type=p),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pike test", _type=p),
            x509.NameAttribute(NameOID.COMMON_NAME, cn, _type=p),
        ]
    ).public_bytes()


def test_dn_compared_by_meaning(multi) -> None:
    configured = parse_identity("C=CH, O=pike test, CN=gw.example.net")
    wire = _printable_dn("gw.example.net")
    assert wire != configured.data  # cryptography writes UTF8String for O and CN
    peer = peer_identity(IdType.ID_DER_ASN1_DN, wire)
    assert peer.text == "C=CH, O=pike test, CN=gw.example.net"
    assert ids_match(configured, peer)
    assert id_in_cert(peer, multi.cert)
    assert not dn_equal(wire, _printable_dn("other"))
    assert not dn_equal(wire, b"\x30\x05garbage")


def test_subject_identity(multi) -> None:
    me = subject_identity(multi.cert)
    assert me.id_type == IdType.ID_DER_ASN1_DN
    assert me.text == "C=CH, O=pike test, CN=gw.example.net"


def test_validation_time_is_a_parameter(root) -> None:
    leaf = ee(root)
    then = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(CertError, match=r"not valid before"):
        validate_chain([leaf.cert], [root.cert], then)


def test_dn_attribute_names_are_the_oids_cryptography_names() -> None:
    """pike.sa.certs spells the DN attribute OIDs out (cryptography.x509 is not imported at
    start); they must be the ones NameOID holds."""
    from cryptography.x509.oid import NameOID

    from pike.sa.certs import _ATTR_NAMES as spelled_out

    expected = {
        NameOID.COUNTRY_NAME: "C",
        NameOID.STATE_OR_PROVINCE_NAME: "ST",
        NameOID.LOCALITY_NAME: "L",
        NameOID.ORGANIZATION_NAME: "O",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
        NameOID.COMMON_NAME: "CN",
        NameOID.EMAIL_ADDRESS: "E",
        NameOID.SERIAL_NUMBER: "serialNumber",
        NameOID.DOMAIN_COMPONENT: "DC",
        NameOID.SURNAME: "SN",
        NameOID.GIVEN_NAME: "G",
        NameOID.TITLE: "T",
    }
    assert spelled_out == {oid.dotted_string: name for oid, name in expected.items()}
