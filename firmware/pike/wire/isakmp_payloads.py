"""IKEv1 (ISAKMP) payloads as plain values (RFC 2408 §3.4-3.16, RFC 2407 §4.6, RFC 3947).

Meaning only; the byte layout lives in ``isakmp_bodies`` and ``isakmp``. Each class names
its payload type in ``TYPE``, so a message is a list of payloads, like the IKEv2 codec's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from pike.frozen import frozen
from pike.wire.isakmp_constants import DOI_IPSEC, SIT_IDENTITY_ONLY, FlagV1, PayloadV1

# A data attribute: (class, value). Basic attributes are 16-bit; variable ones (life
# durations) are unsigned integers of any width.
Attribute = tuple[int, int]


@frozen
class V1Transform:
    """RFC 2408 §3.6: transform number, transform ID and its SA attributes, in order."""

    number: int
    transform_id: int
    attributes: tuple[Attribute, ...] = ()

    def attr(self, attr_class: int) -> int | None:
        for kind, value in self.attributes:
            if kind == attr_class:
                return value
        return None


@frozen
class V1Proposal:
    """RFC 2408 §3.5. Proposals sharing a number are one logical proposal (AND)."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[V1Transform, ...]


@frozen
class V1Sa:
    """RFC 2408 §3.4 with the IPsec DOI situation (RFC 2407 §4.6.1)."""

    TYPE: ClassVar[int] = PayloadV1.SA
    proposals: tuple[V1Proposal, ...]
    doi: int = DOI_IPSEC
    situation: int = SIT_IDENTITY_ONLY


@frozen
class V1Ke:
    """RFC 2408 §3.7: just the public value; the group comes from the SA."""

    TYPE: ClassVar[int] = PayloadV1.KE
    data: bytes


@frozen
class V1Id:
    """RFC 2407 §4.6.2: phase 1 identity or Quick Mode proxy ID (IDci/IDcr)."""

    TYPE: ClassVar[int] = PayloadV1.ID
    id_type: int
    protocol: int
    port: int
    data: bytes


@frozen
class V1Cert:
    TYPE: ClassVar[int] = PayloadV1.CERT
    encoding: int
    data: bytes


@frozen
class V1CertReq:
    TYPE: ClassVar[int] = PayloadV1.CERTREQ
    encoding: int
    data: bytes


@frozen
class V1Hash:
    TYPE: ClassVar[int] = PayloadV1.HASH
    data: bytes


@frozen
class V1Sig:
    TYPE: ClassVar[int] = PayloadV1.SIG
    data: bytes


@frozen
class V1Nonce:
    TYPE: ClassVar[int] = PayloadV1.NONCE
    data: bytes


@frozen
class V1Notify:
    """RFC 2408 §3.14. ``spi`` is empty when the SPI size is 0."""

    TYPE: ClassVar[int] = PayloadV1.NOTIFY
    notify_type: int
    data: bytes = b""
    protocol: int = 0
    spi: bytes = b""
    doi: int = DOI_IPSEC


@frozen
class V1Delete:
    """RFC 2408 §3.15: ISAKMP SAs are named by their 16-byte cookie pair."""

    TYPE: ClassVar[int] = PayloadV1.DELETE
    protocol: int
    spis: tuple[bytes, ...]
    doi: int = DOI_IPSEC


@frozen
class V1VendorId:
    TYPE: ClassVar[int] = PayloadV1.VENDOR_ID
    data: bytes


@frozen
class V1NatD:
    """RFC 3947 §3.2: HASH(CKY-I | CKY-R | IP | Port). ``TYPE`` 130 for the drafts."""

    TYPE: ClassVar[int] = PayloadV1.NAT_D
    data: bytes


@frozen
class V1NatDDraft(V1NatD):
    TYPE: ClassVar[int] = PayloadV1.NAT_D_DRAFT


@frozen
class V1NatOa:
    """RFC 3947 §5.2: the original address; ``id_type`` IPV4_ADDR or IPV6_ADDR."""

    TYPE: ClassVar[int] = PayloadV1.NAT_OA
    id_type: int
    data: bytes


@frozen
class V1NatOaDraft(V1NatOa):
    TYPE: ClassVar[int] = PayloadV1.NAT_OA_DRAFT


@frozen
class V1Unknown:
    """A payload type we do not know: kept, the engine ignores it (RFC 2408 has no
    critical bit)."""

    type: int
    data: bytes

    @property
    def TYPE(self) -> int:
        return self.type


V1Payload = (
    V1Sa
    | V1Ke
    | V1Id
    | V1Cert
    | V1CertReq
    | V1Hash
    | V1Sig
    | V1Nonce
    | V1Notify
    | V1Delete
    | V1VendorId
    | V1NatD
    | V1NatOa
    | V1Unknown
)

_P = TypeVar("_P")


@dataclass(slots=True)
class V1Message:
    """An ISAKMP message: header fields and payloads.

    On decode of an encrypted message (flag E), ``payloads`` is empty and ``ciphertext``
    holds the body until ``decrypt_v1`` opens it. ``raw`` holds each decoded payload's
    bytes as received, generic header included: HASH and signature inputs are computed
    over those bytes, never over a re-encoding (RFC 2409 §5, §5.5).
    """

    spi_i: bytes
    spi_r: bytes
    exchange: int
    message_id: int
    flags: int = 0
    payloads: list[V1Payload] = field(default_factory=list)
    ciphertext: bytes = field(default=b"", compare=False)
    raw: tuple[bytes, ...] = field(default=(), compare=False)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FlagV1.ENCRYPTION)

    @property
    def commit(self) -> bool:
        return bool(self.flags & FlagV1.COMMIT)

    def first(self, cls: type[_P]) -> _P | None:
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def all(self, cls: type[_P]) -> list[_P]:
        return [p for p in self.payloads if isinstance(p, cls)]

    def notify(self, notify_type: int) -> V1Notify | None:
        for p in self.payloads:
            if isinstance(p, V1Notify) and p.notify_type == notify_type:
                return p
        return None

    def body_of(self, index: int) -> bytes:
        """Payload ``index``'s body as received (without its generic header)."""
        return self.raw[index][4:]

    def after(self, index: int) -> bytes:
        """The payload bytes after payload ``index`` as received (Quick Mode HASH input)."""
        return b"".join(self.raw[index + 1 :])
