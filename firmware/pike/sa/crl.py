"""Certificate revocation lists (RFC 5280 §5): parsing, and a held CRL with its revoked
serials and the issuers whose signature on it was checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from pike.sa import identity
from pike.sa.cert_fields import keyid
from pike.sa.revocation_status import RevocationError


@dataclass(slots=True)
class CrlEntry:
    crl: x509.CertificateRevocationList
    source: str  # "http://..." or a file path
    this_update: datetime
    next_update: datetime | None
    number: int | None
    # serial -> revocation date, built once: a hub looks up every peer at each scrape
    revoked: dict[int, datetime] = field(default_factory=dict)
    verified: dict[bytes, bool] = field(default_factory=dict)  # issuer key id -> signature ok

    def fresh(self, now: datetime) -> bool:
        return self.next_update is None or now <= self.next_update

    def signed_by(self, issuer: x509.Certificate) -> bool:
        kid = keyid(issuer)
        ok = self.verified.get(kid)
        if ok is None:
            try:
                ok = self.crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError, UnsupportedAlgorithm):
                ok = False
            self.verified[kid] = ok
        return ok


def parse_crl(data: bytes, source: str) -> CrlEntry:
    """A CRL in DER or PEM; its signature is checked against the issuer when used."""
    try:
        if b"-----BEGIN" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
        _ = crl.issuer.rfc4514_string()
        number = None
        for ext in crl.extensions:
            if isinstance(ext.value, x509.CRLNumber):
                number = ext.value.crl_number
            elif isinstance(ext.value, x509.DeltaCRLIndicator):
                raise RevocationError("delta CRLs are not supported")
            elif ext.critical:
                raise RevocationError(f"unsupported critical CRL extension {ext.oid}")
        revoked = {r.serial_number: r.revocation_date_utc for r in crl}
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RevocationError(f"not a CRL: {identity.printable(str(exc), 120)}") from None
    return CrlEntry(crl, source, this_update, next_update, number, revoked)
