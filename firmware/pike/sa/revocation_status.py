"""What a revocation check answers (pike.sa.revocation): a status, where it came from,
and the error a CRL or OCSP response that cannot be used raises."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pike.sa import identity

if TYPE_CHECKING:
    from cryptography import x509


class Status(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # no CRL or OCSP URI: nothing to ask (strongSwan's SKIPPED)
    FAILED = "failed"  # a URI exists, but no usable answer came
    PENDING = "pending"  # being fetched: ask again later


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    source: str = ""  # where the answer came from ("crl http://...", "ocsp http://...")
    detail: str = ""


class RevocationError(Exception):
    """A CRL or OCSP response that cannot be used (the text says why)."""


def serial_text(serial: int) -> str:
    """A serial as strongSwan and openssl print it: colon-separated hex bytes."""
    raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    return ":".join(f"{b:02x}" for b in raw)


def subject_text(cert: x509.Certificate) -> str:
    return identity.printable(cert.subject.rfc4514_string())
