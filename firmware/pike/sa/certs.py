"""Certificates in IKEv2: CERT/CERTREQ payloads, the peer's chain, its ID in the cert.

- CERT (RFC 7296 §3.6): encoding 4 (X.509 signature), our end-entity cert first, then
  the intermediates the config lists.
- CERTREQ (§3.7): encoding 4, the concatenated SHA-1 hashes of each trusted CA's
  SubjectPublicKeyInfo.
- The peer's chain is built from its CERT payloads up to one of the configured CA
  certificates: signatures, validity at ``now`` (wall clock, passed in), basicConstraints
  (cA, pathLenConstraint) and keyUsage (keyCertSign on CAs, digitalSignature on the end
  entity when the extension is present). No extendedKeyUsage is required (RFC 4945 §5.1.3.12
  leaves it to policy, and strongSwan requires none). ``cryptography``'s
  ``x509.verification`` is built for the Web PKI (TLS EKUs, SAN on the leaf, no intermediate
  from the peer without SAN rules we do not want), so the checks are done here.
- The peer's identity must be in its certificate, as strongSwan requires: the subject DN
  for ID_DER_ASN1_DN, a subjectAltName of the same kind for FQDN, e-mail and IP, the
  subjectKeyIdentifier (or SHA-1 of the public key) for ID_KEY_ID.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from pike.policy.config import Identity
from pike.sa import identity
from pike.sa.cert_error import CertError as CertError
from pike.sa.der import DerError, decode_name
from pike.sa.id_match import match_score
from pike.wire.constants import CertEncoding, IdType
from pike.wire.payloads import CertPayload, CertReqPayload

if TYPE_CHECKING:
    from datetime import datetime  # annotations only (idle RSS)

    # cryptography.x509 loads with the first certificate (idle RSS, docs/performance.md)
    from cryptography import x509

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_ID_DER_ASN1_DN = IdType.ID_DER_ASN1_DN

MAX_PATH = 8  # CAs above the end entity; strongSwan's default is 7 intermediates
MAX_CERT_PAYLOADS = MAX_PATH + 1  # the end entity and a full path of intermediates
SHA1_LEN = 20


# Extensions whose meaning we enforce (or that impose nothing on IKE); any other one marked
# critical fails the certificate (RFC 5280 §4.2).
@functools.cache
def _understood() -> tuple[type[x509.ExtensionType], ...]:
    from cryptography import x509

    return (
        x509.BasicConstraints,
        x509.KeyUsage,
        x509.ExtendedKeyUsage,
        x509.SubjectAlternativeName,
        x509.SubjectKeyIdentifier,
        x509.AuthorityKeyIdentifier,
    )


# How strongSwan prints DN attributes (its "C=CH, O=x, CN=gw" notation), by OID (X.520,
# PKCS #9, RFC 4519; the dotted strings of cryptography's NameOID, which we do not import at
# start: tests/ikev2/test_certs.py checks they agree).
_ATTR_NAMES = {
    "2.5.4.6": "C",
    "2.5.4.8": "ST",
    "2.5.4.7": "L",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.3": "CN",
    "1.2.840.113549.1.9.1": "E",
    "2.5.4.5": "serialNumber",
    "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.4": "SN",
    "2.5.4.42": "G",
    "2.5.4.12": "T",
}


# -- our side ------------------------------------------------------------------------------


def load_certificates(path: str) -> list[x509.Certificate]:
    """All certificates of a PEM file (several allowed) or one DER certificate."""
    from cryptography import x509

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CertError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertError(f"{path} holds no readable X.509 certificate: {exc}") from None
    return certs


def cert_payloads(chain: Sequence[x509.Certificate]) -> list[CertPayload]:
    # cryptography's serialization (0.9 MiB with ssh, dsa, ...): with certificates only
    from cryptography.hazmat.primitives import serialization

    return [
        CertPayload(CertEncoding.X509_SIGNATURE, c.public_bytes(serialization.Encoding.DER))
        for c in chain
    ]


def ca_keyid(cert: x509.Certificate) -> bytes:
    """SHA-1 of the DER SubjectPublicKeyInfo: how CERTREQ names a CA (RFC 7296 §3.7)."""
    from cryptography.hazmat.primitives import serialization  # as in cert_payloads

    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()


def certreq_payload(cas: Iterable[x509.Certificate]) -> CertReqPayload | None:
    ids = b"".join(dict.fromkeys(ca_keyid(c) for c in cas))
    return CertReqPayload(CertEncoding.X509_SIGNATURE, ids) if ids else None


def requested_keyids(payloads: Iterable[CertReqPayload]) -> set[bytes]:
    """The CA key ids a peer asked for (X.509 requests only; a ragged tail is ignored)."""
    out: set[bytes] = set()
    for p in payloads:
        if p.encoding == CertEncoding.X509_SIGNATURE:
            out.update(p.data[i : i + SHA1_LEN] for i in range(0, len(p.data) - 19, SHA1_LEN))
    return out


# -- the peer's chain ----------------------------------------------------------------------


def _dn(name: x509.Name) -> str:
    return identity.printable(name.rfc4514_string())  # a peer's certificate: its text


# cryptography parses a certificate lazily and reports malformed parts with several
# unrelated exception types, the first time each part is read.
@functools.cache
def _malformed() -> tuple[type[Exception], ...]:
    from cryptography import x509

    return (
        ValueError,
        TypeError,
        x509.DuplicateExtension,
        x509.InvalidVersion,
        x509.UnsupportedGeneralNameType,
        UnsupportedAlgorithm,
    )


def _parsed(data: bytes) -> x509.Certificate:
    """A certificate whose every part the checks read parses (CertError otherwise), so
    that no later access raises something other than CertError."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(data)
    _ = cert.version, cert.serial_number, cert.subject, cert.issuer
    _ = cert.not_valid_before_utc, cert.not_valid_after_utc
    _ = cert.signature_hash_algorithm, cert.signature_algorithm_oid
    _ = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    for ext in cert.extensions:  # each value, parsed once and cached by cryptography
        _ = ext.value
    cert.public_key()
    return cert


def parse_cert_payloads(payloads: Iterable[CertPayload]) -> list[x509.Certificate]:
    """The peer's X.509 certificates in the order sent (the first is its end entity).

    At most ``MAX_CERT_PAYLOADS``: this runs before the peer is authenticated, and each
    certificate costs a parse and maybe a signature check."""
    payloads = list(payloads)
    if len(payloads) > MAX_CERT_PAYLOADS:
        raise CertError(f"{len(payloads)} CERT payloads, at most {MAX_CERT_PAYLOADS} accepted")
    out = []
    for i, p in enumerate(payloads):
        if p.encoding != CertEncoding.X509_SIGNATURE:
            raise CertError(f"CERT payload {i + 1} has encoding {p.encoding}, only 4 (X.509)")
        try:
            out.append(_parsed(p.data))
        except _malformed() as exc:
            why = identity.printable(str(exc), 120)
            raise CertError(f"CERT payload {i + 1} is not a DER X.509 certificate: {why}") from None
    if not out:
        raise CertError("the peer sent no certificate")
    return out


def _check_common(cert: x509.Certificate, now: datetime, role: str) -> None:
    name = _dn(cert.subject)
    if now < cert.not_valid_before_utc:
        raise CertError(f"{role} '{name}' is not valid before {cert.not_valid_before_utc}")
    if now > cert.not_valid_after_utc:
        raise CertError(f"{role} '{name}' expired at {cert.not_valid_after_utc}")
    try:
        extensions = list(cert.extensions)
    except ValueError as exc:
        raise CertError(f"{role} '{name}' has a malformed extension: {exc}") from None
    for ext in extensions:
        if ext.critical and not isinstance(ext.value, _understood()):
            raise CertError(f"{role} '{name}' has unsupported critical extension {ext.oid}")


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_end_entity(cert: x509.Certificate, now: datetime) -> None:
    from cryptography import x509

    _check_common(cert, now, "certificate")
    ku = _ext(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.digital_signature:
        raise CertError(f"certificate '{_dn(cert.subject)}' lacks keyUsage digitalSignature")


def _check_ca(cert: x509.Certificate, now: datetime, below: int, role: str) -> None:
    """``below``: intermediate CAs between this CA and the end entity."""
    from cryptography import x509

    _check_common(cert, now, role)
    name = _dn(cert.subject)
    bc = _ext(cert, x509.BasicConstraints)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise CertError(f"{role} '{name}' is not a CA (basicConstraints cA is not set)")
    if bc.path_length is not None and below > bc.path_length:
        raise CertError(f"{role} '{name}' allows {bc.path_length} CAs below it, found {below}")
    ku = _ext(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise CertError(f"{role} '{name}' lacks keyUsage keyCertSign")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None if ``issuer`` signed ``cert``, else why not."""
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return "signature does not verify"
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _may_issue(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` is worth a signature check for ``cert``: the names match and, when
    both carry key identifiers, so do those (RFC 5280 §4.2.1.1). Checked before AUTH, so
    a peer's pile of same-named fake CAs costs a comparison each, not a verification."""
    from cryptography import x509

    if issuer.subject != cert.issuer:
        return False
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer, x509.SubjectKeyIdentifier)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or aki.key_identifier is None:
        return True
    return not isinstance(ski, x509.SubjectKeyIdentifier) or ski.digest == aki.key_identifier


def validate_chain(
    certs: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: datetime,
) -> list[x509.Certificate]:
    """The path from ``certs[0]`` (the peer's end entity) to a trusted CA, checked.

    ``certs[1:]`` are intermediates in any order. Raises CertError naming what failed.
    """
    if not anchors:
        raise CertError("no CA certificate configured for the peer")
    leaf = certs[0]
    _check_end_entity(leaf, now)
    path = [leaf]
    current = leaf
    for depth in range(MAX_PATH + 1):
        problems: list[str] = []
        for anchor in anchors:
            if not _may_issue(current, anchor):
                continue
            why = _issued_by(current, anchor)
            if why is None:
                _check_ca(anchor, now, depth, "CA")
                return [*path, anchor]
            problems.append(f"'{_dn(anchor.subject)}': {why}")
        for inter in certs[1:]:
            if inter in path or not _may_issue(current, inter):
                continue
            why = _issued_by(current, inter)
            if why is None:
                _check_ca(inter, now, depth, "intermediate CA")
                path.append(inter)
                current = inter
                break
            problems.append(f"'{_dn(inter.subject)}': {why}")
        else:
            detail = "; ".join(problems) if problems else "no such CA configured or sent"
            raise CertError(
                f"no trusted path for '{_dn(current.subject)}' "
                f"(issuer '{_dn(current.issuer)}': {detail})"
            )
    raise CertError(f"chain of '{_dn(leaf.subject)}' longer than {MAX_PATH} CAs")


def check_chain(certs: Sequence[bytes], anchors: Sequence[bytes], now: datetime) -> tuple[int, ...]:
    """The whole check of a peer's CERT chain, from octets: what pike-keyd (or piked's
    chain worker) does for a ``CheckChain`` off the event loop. Returns the path as
    indices into ``certs + anchors`` (end entity first, trusted CA last); raises CertError.
    ``anchors`` are the configured CAs (trusted input: a bad one is a CertError too)."""
    from cryptography import x509

    parsed = parse_cert_payloads(CertPayload(CertEncoding.X509_SIGNATURE, d) for d in certs)
    try:
        cas = [x509.load_der_x509_certificate(a) for a in anchors]
    except ValueError as exc:
        raise CertError(f"a configured CA certificate does not parse: {exc}") from None
    path = validate_chain(parsed, cas, now)
    pool = [*parsed, *cas]
    return tuple(next(i for i, c in enumerate(pool) if c is p) for p in path)


# -- identities ----------------------------------------------------------------------------


def dn_equal(a: bytes, b: bytes) -> bool:
    """Two DER DNs name the same entity (string types and case aside, as strongSwan)."""
    if a == b:
        return True
    try:
        da, db = decode_name(a), decode_name(b)
    except DerError:
        return False
    fold = [tuple((o, v.casefold()) for o, v in rdn) for rdn in da]
    return fold == [tuple((o, v.casefold()) for o, v in rdn) for rdn in db]


def ids_match(configured: Identity | None, peer: Identity) -> bool:
    """Whether ``configured`` (maybe a wildcard, see ``id_match``) admits ``peer``;
    DNs compare by meaning rather than bytes."""
    return match_score(configured, peer) > 0


# Identities as peers send them, by (type, bytes): a hub hears the same IDr (its own
# name) in every IKE_AUTH and each branch's IDi again at each reauthentication, and a DN
# takes a DER walk. Identities are immutable, so holders share them; bounded (peers
# choose the bytes): full, it starts over.
_PEER_IDS: dict[tuple[int, bytes], Identity] = {}
_PEER_IDS_MAX = 1024


def peer_identity(id_type: int, data: bytes) -> Identity:
    """``identity.from_wire`` with a readable text for DNs (for logs and list-sas)."""
    key = (id_type, data)
    ident = _PEER_IDS.get(key)
    if ident is None:
        if len(_PEER_IDS) >= _PEER_IDS_MAX:
            _PEER_IDS.clear()
        ident = _PEER_IDS[key] = _peer_identity(id_type, data)
    return ident


def _peer_identity(id_type: int, data: bytes) -> Identity:
    ident = identity.from_wire(id_type, data)
    if id_type != _ID_DER_ASN1_DN:
        return ident
    try:
        rdns = decode_name(data)
    except DerError:
        return ident
    text = ", ".join("+".join(f"{_ATTR_NAMES.get(o, o)}={v}" for o, v in rdn) for rdn in rdns)
    return Identity(id_type, data, identity.printable(text))


def subject_identity(cert: x509.Certificate) -> Identity:
    """Our identity when the config names none: the certificate's subject DN."""
    data = cert.subject.public_bytes()
    return peer_identity(IdType.ID_DER_ASN1_DN, data)


def id_in_cert(ident: Identity, cert: x509.Certificate) -> bool:
    """Whether ``ident`` is the certificate's subject or one of its subjectAltNames."""
    from cryptography import x509

    kind = ident.id_type
    if kind == IdType.ID_DER_ASN1_DN:
        return dn_equal(ident.data, cert.subject.public_bytes())
    if kind == IdType.ID_KEY_ID:
        ski = _ext(cert, x509.SubjectKeyIdentifier)
        if isinstance(ski, x509.SubjectKeyIdentifier) and ski.digest == ident.data:
            return True
        return ca_keyid(cert) == ident.data
    try:
        san = _ext(cert, x509.SubjectAlternativeName)
    except ValueError:
        return False
    if not isinstance(san, x509.SubjectAlternativeName):
        return False
    if kind == IdType.ID_FQDN:
        want = ident.data.decode("ascii", "replace").casefold()
        return any(n.casefold() == want for n in san.get_values_for_type(x509.DNSName))
    if kind == IdType.ID_RFC822_ADDR:
        want = ident.data.decode("ascii", "replace").casefold()
        return any(n.casefold() == want for n in san.get_values_for_type(x509.RFC822Name))
    if kind in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        try:
            addr = ipaddress.ip_address(ident.data)
        except ValueError:
            return False
        return addr in san.get_values_for_type(x509.IPAddress)
    return False
