"""OCSP (RFC 6960): the request we send, and the checks on a response (our CertID and
nonce, a signature by the issuer or a responder it authorized, freshness)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pike.sa import identity
from pike.sa.cert_fields import ext
from pike.sa.revocation_status import RevocationError, Status

# How long an OCSP answer without nextUpdate is used (RFC 6960 §4.2.2.1: then newer
# information is always available).
OCSP_NO_NEXT_UPDATE = timedelta(minutes=5)
# A response whose thisUpdate is this far in the future is refused (clock skew).
CLOCK_SKEW = timedelta(minutes=5)
NONCE_SIZE = 16


# -- signatures -----------------------------------------------------------------------------


def _verify(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    """Whether ``signature`` over ``data`` verifies with a certificate's public ``key``."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# -- requests and responses -----------------------------------------------------------------


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes) -> bytes:
    """A DER OCSPRequest for ``cert`` (SHA-1 CertID, as responders expect) with a nonce."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class OcspEntry:
    status: Status  # GOOD, REVOKED or UNKNOWN (the responder does not know it)
    source: str
    this_update: datetime
    next_update: datetime  # until when it is used
    revoked_at: datetime | None = None


def _responder_ok(resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> bool:
    """The response is signed by the issuer, or by a responder certificate the issuer
    issued for OCSP signing (RFC 6960 §4.2.2.2)."""
    data, sig, alg = resp.tbs_response_bytes, resp.signature, resp.signature_hash_algorithm
    if _verify(issuer.public_key(), sig, data, alg):
        return True
    for delegate in resp.certificates:
        try:
            delegate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            continue
        eku = ext(delegate, x509.ExtendedKeyUsage)
        if (
            not isinstance(eku, x509.ExtendedKeyUsage)
            or ExtendedKeyUsageOID.OCSP_SIGNING not in eku
        ):
            continue
        if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
            continue
        if _verify(delegate.public_key(), sig, data, alg):
            return True
    return False


def check_ocsp_response(
    data: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes | None,
    now: datetime,
    source: str,
) -> OcspEntry:
    """The status an OCSP response gives ``cert``, after checking that it answers our
    request (CertID, nonce), is signed by someone allowed to and is fresh."""
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise RevocationError(f"not an OCSP response: {identity.printable(str(exc), 80)}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationError(f"responder answered {resp.response_status.name}")
    try:
        if not _responder_ok(resp, issuer, now):
            raise RevocationError(
                "response signature does not verify with the issuer or a responder it authorized"
            )
        got = None
        for ext in resp.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                got = ext.value.nonce
        # A nonce that differs is a replay or a mix-up. None at all is how RFC 5019
        # responders (pre-signed answers, most public CAs) answer: then thisUpdate and
        # nextUpdate bound the replay, as RFC 6960 §4.4.1 allows.
        if nonce is not None and got is not None and got != nonce:
            raise RevocationError("response nonce does not match our request")
        single = None
        want_key = _issuer_key_hash(issuer)
        for r in resp.responses:
            if r.serial_number != cert.serial_number:
                continue
            algo = type(r.hash_algorithm)
            if r.issuer_key_hash == want_key.get(algo) and r.issuer_name_hash == _name_hash(
                issuer, r.hash_algorithm
            ):
                single = r
                break
        if single is None:
            raise RevocationError("response does not answer for this certificate")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RevocationError(
            f"malformed OCSP response: {identity.printable(str(exc), 80)}"
        ) from None
    if this_update > now + CLOCK_SKEW:
        raise RevocationError(f"response thisUpdate {this_update} is in the future")
    if next_update is not None and next_update < now:
        raise RevocationError(f"response is stale (nextUpdate {next_update})")
    if next_update is None:
        if this_update < now - OCSP_NO_NEXT_UPDATE:
            raise RevocationError(f"response without nextUpdate is old (thisUpdate {this_update})")
        next_update = now + OCSP_NO_NEXT_UPDATE
    status = {
        ocsp.OCSPCertStatus.GOOD: Status.GOOD,
        ocsp.OCSPCertStatus.REVOKED: Status.REVOKED,
        ocsp.OCSPCertStatus.UNKNOWN: Status.UNKNOWN,
    }[single.certificate_status]
    revoked_at = single.revocation_time_utc if status is Status.REVOKED else None
    return OcspEntry(status, source, this_update, next_update, revoked_at)


def _issuer_key_hash(issuer: x509.Certificate) -> dict[type, bytes]:
    # the hash of the issuer's public key BIT STRING (RFC 6960 §4.1.1)
    der = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_bits = _spki_key_bits(der)
    out: dict[type, bytes] = {}
    for algo in (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512):
        h = hashes.Hash(algo())
        h.update(key_bits)
        out[algo] = h.finalize()
    return out


def _name_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(issuer.subject.public_bytes())
    return h.finalize()


def _spki_key_bits(der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's content (without the unused-bits octet)."""

    def header(buf: bytes, pos: int) -> tuple[int, int, int]:
        tag = buf[pos]
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[pos : pos + n], "big")
            pos += n
        return tag, pos, length

    _, pos, _ = header(der, 0)  # SubjectPublicKeyInfo SEQUENCE
    _, inner, alg_len = header(der, pos)  # AlgorithmIdentifier
    tag, bits, bits_len = header(der, inner + alg_len)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo without BIT STRING")
    return der[bits + 1 : bits + bits_len]
