"""What revocation reads from a certificate: the URIs of its CRL distribution points,
delta CRLs and OCSP responders (RFC 5280 §4.2.1.13, §4.2.1.15, §4.2.2.1) and the key id
CRLs and OCSP answers are filed under."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from cryptography import x509

# cryptography.x509 is imported by the first call (idle RSS, docs/performance.md).


def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def crl_uris(cert: x509.Certificate) -> list[str]:
    """The HTTP URIs of the certificate's CRL distribution points."""
    from cryptography import x509

    return point_uris(ext(cert, x509.CRLDistributionPoints))


def delta_crl_uris(cert: x509.Certificate) -> list[str]:
    """The HTTP URIs of the certificate's freshestCRL (delta CRLs, RFC 5280 §4.2.1.15)."""
    from cryptography import x509

    return point_uris(ext(cert, x509.FreshestCRL))


def point_uris(points: object) -> list[str]:
    """The HTTP URIs of CRLDistributionPoints or FreshestCRL (of a certificate or CRL)."""
    from cryptography import x509

    out: list[str] = []
    if isinstance(points, x509.CRLDistributionPoints | x509.FreshestCRL):
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and is_http(name.value):
                    out.append(name.value)
    return out


def ocsp_uris(cert: x509.Certificate) -> list[str]:
    """The HTTP URIs of the OCSP responders in the certificate's authorityInfoAccess."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    aia = ext(cert, x509.AuthorityInformationAccess)
    out: list[str] = []
    if isinstance(aia, x509.AuthorityInformationAccess):
        for desc in aia:
            loc = desc.access_location
            if (
                desc.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(loc, x509.UniformResourceIdentifier)
                and is_http(loc.value)
            ):
                out.append(loc.value)
    return out


def is_http(uri: str) -> bool:
    return uri.lower().startswith("http://")


def keyid(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()
