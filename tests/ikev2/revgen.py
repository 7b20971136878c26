"""CRLs and OCSP responses made with ``cryptography``, for the revocation tests.

crl = make_crl(ca, revoked=[gw.cert.serial_number])
resp = ocsp_response(ca, gw.cert, "good", nonce=b"...")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from .x509gen import DAY, NOW, Issued, _sign_hash, issue

CRL_URI = "http://192.0.2.9/ca.crl"  # in memory: nothing is fetched from it


def make_crl(
    ca: Issued,
    revoked: Sequence[int] = (),
    *,
    this_update: dt.datetime = NOW - DAY,
    next_update: dt.datetime | None = NOW + DAY,
    number: int = 1,
    signer: Issued | None = None,
    delta_of: int | None = None,
    removed: Sequence[int] = (),
    freshest: str | None = None,
) -> x509.CertificateRevocationList:
    """A CRL; ``delta_of``: a delta CRL updating complete CRL number ``delta_of``, whose
    ``removed`` serials are taken off it (removeFromCRL); ``freshest``: the delta CRLs'
    URI a complete CRL names."""
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update)
        .next_update(next_update or NOW + 3650 * DAY)
        .add_extension(x509.CRLNumber(number), False)
    )
    if delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta_of), True)
    if freshest is not None:
        b = b.add_extension(x509.FreshestCRL([_point(freshest)]), False)
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - DAY)
            .build()
        )
    for serial in removed:
        reason = x509.CRLReason(x509.ReasonFlags.remove_from_crl)
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - DAY)
            .add_extension(reason, False)
            .build()
        )
    key = (signer or ca).key
    return b.sign(key, _sign_hash(key))


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _point(uri: str) -> x509.DistributionPoint:
    return x509.DistributionPoint([x509.UniformResourceIdentifier(uri)], None, None, None)


def freshest(uri: str) -> tuple[x509.ExtensionType, bool]:
    """A certificate's freshestCRL extension: where its CA's delta CRLs are."""
    return x509.FreshestCRL([_point(uri)]), False


def cdp(uri: str) -> tuple[x509.ExtensionType, bool]:
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(uri)], None, None, None)
    return (x509.CRLDistributionPoints([point]), False)


def aia(uri: str) -> tuple[x509.ExtensionType, bool]:
    desc = x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(uri)
    )
    return (x509.AuthorityInformationAccess([desc]), False)


def ocsp_response(
    ca: Issued,
    cert: x509.Certificate,
    status: str,
    *,
    nonce: bytes | None = None,
    this_update: dt.datetime = NOW - dt.timedelta(minutes=1),
    next_update: dt.datetime | None = NOW + DAY,
    responder: Issued | None = None,
) -> bytes:
    """A signed OCSP response about ``cert`` (by ``responder``, default the CA)."""
    cert_status = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }[status]
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=ca.cert,
        algorithm=hashes.SHA1(),
        cert_status=cert_status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=NOW - DAY if status == "revoked" else None,
        revocation_reason=None,
    )
    signer = responder or ca
    b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
    if responder is not None:
        b = b.certificates([responder.cert])
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), False)
    resp = b.sign(signer.key, _sign_hash(signer.key))
    return resp.public_bytes(serialization.Encoding.DER)


def crl_gateway(ca: Issued, ident: str, uri: str | None = CRL_URI) -> Issued:
    """A P-256 gateway certificate for ``ident`` naming ``uri`` as its CRL distribution
    point (None: no CDP, so no revocation check)."""
    extra = [cdp(uri)] if uri else []
    return issue(ca, "ecdsa-p256", ident, [x509.DNSName(ident)], extra=extra)
