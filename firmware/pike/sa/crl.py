"""Certificate revocation lists (RFC 5280 §5): parsing, and a held CRL with its revoked
serials and the issuers whose signature on it was checked.

A delta CRL (§5.2.4: a DeltaCRLIndicator naming the base CRL number) lists what changed
since a complete CRL: its entries are revoked too, and its removeFromCRL entries take a
certificate on hold off the complete CRL it updates (``applies_to``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm

from pike.sa import identity
from pike.sa.cert_fields import keyid, point_uris
from pike.sa.revocation_status import RevocationError

if TYPE_CHECKING:
    from datetime import datetime  # annotations only (idle RSS)

    from cryptography import x509


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
    delta_base: int | None = None  # a delta CRL: the BaseCRLNumber it updates
    removed: frozenset[int] = frozenset()  # a delta CRL: serials taken off (removeFromCRL)
    delta_uris: tuple[str, ...] = ()  # a complete CRL's freshestCRL: where its deltas are

    def applies_to(self, base: CrlEntry) -> bool:
        """Whether this delta CRL updates the complete CRL ``base`` (§5.2.4: same issuer,
        base number at least the delta's BaseCRLNumber and below the delta's own)."""
        return (
            self.delta_base is not None
            and self.number is not None
            and base.delta_base is None
            and base.number is not None
            and self.delta_base <= base.number < self.number
            and base.crl.issuer == self.crl.issuer
        )

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
    from cryptography import x509  # deferred: idle RSS (docs/performance.md)

    try:
        if b"-----BEGIN" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
        _ = crl.issuer.rfc4514_string()
        number = base = None
        deltas: list[str] = []
        for ext in crl.extensions:
            if isinstance(ext.value, x509.CRLNumber):
                number = ext.value.crl_number
            elif isinstance(ext.value, x509.DeltaCRLIndicator):
                base = ext.value.crl_number
            elif isinstance(ext.value, x509.FreshestCRL):
                deltas = point_uris(ext.value)
            elif ext.critical:
                raise RevocationError(f"unsupported critical CRL extension {ext.oid}")
        if base is not None and number is None:
            raise RevocationError("delta CRL without a CRL number")
        revoked: dict[int, datetime] = {}
        removed: set[int] = set()
        for r in crl:
            if _reason(r) is x509.ReasonFlags.remove_from_crl:
                removed.add(r.serial_number)  # only meaningful in a delta CRL
            else:
                revoked[r.serial_number] = r.revocation_date_utc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RevocationError(f"not a CRL: {identity.printable(str(exc), 120)}") from None
    return CrlEntry(
        crl,
        source,
        this_update,
        next_update,
        number,
        revoked,
        delta_base=base,
        removed=frozenset(removed),
        delta_uris=tuple(deltas),
    )


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    from cryptography import x509

    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def revoked_by(
    serial: int, bases: list[CrlEntry], deltas: list[CrlEntry]
) -> tuple[CrlEntry, datetime] | None:
    """The CRL (complete or delta, all of one issuer) that revokes ``serial``, if any: a
    delta listing it, or a complete CRL listing it that no delta updating it took off."""
    for delta in deltas:
        at = delta.revoked.get(serial)
        if at is not None:
            return delta, at
    for base in bases:
        at = base.revoked.get(serial)
        if at is None:
            continue
        if any(serial in d.removed and d.applies_to(base) for d in deltas):
            continue  # a hold released since
        return base, at
    return None
