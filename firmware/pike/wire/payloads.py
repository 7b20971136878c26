"""IKEv2 payloads as plain values (RFC 7296 §3.3-3.16).

These classes hold meaning only; the byte layout lives in ``pike.wire.codec``. Each class
names its payload type in ``TYPE`` so a message is simply a list of payloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, ClassVar, Self, SupportsIndex, TypeVar

from pike.frozen import frozen
from pike.wire.constants import PayloadType

IPAddress = IPv4Address | IPv6Address


@frozen
class Transform:
    """RFC 7296 §3.3.2. ``key_length`` is the Key Length attribute (type 14) in bits."""

    type: int
    id: int
    key_length: int | None = None
    # Attributes other than Key Length: RFC 7296 §3.3.6 says a transform carrying an
    # attribute we do not know must be rejected, so keep them to let selection skip it.
    unknown_attributes: tuple[int, ...] = ()


@frozen
class Proposal:
    """RFC 7296 §3.3.1."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]


@frozen
class SaPayload:
    TYPE: ClassVar[int] = PayloadType.SA
    proposals: tuple[Proposal, ...]


@frozen
class KePayload:
    TYPE: ClassVar[int] = PayloadType.KE
    group: int
    data: bytes


@frozen
class IdPayload:
    """IDi or IDr (RFC 7296 §3.5); ``data`` is the identification data as sent."""

    TYPE: ClassVar[int] = PayloadType.IDI
    id_type: int
    data: bytes


@frozen
class IdiPayload(IdPayload):
    TYPE: ClassVar[int] = PayloadType.IDI


@frozen
class IdrPayload(IdPayload):
    TYPE: ClassVar[int] = PayloadType.IDR


@frozen
class CertPayload:
    TYPE: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes


@frozen
class CertReqPayload:
    TYPE: ClassVar[int] = PayloadType.CERTREQ
    encoding: int
    data: bytes


@frozen
class AuthPayload:
    TYPE: ClassVar[int] = PayloadType.AUTH
    method: int
    data: bytes


@frozen
class NoncePayload:
    TYPE: ClassVar[int] = PayloadType.NONCE
    data: bytes


@frozen
class NotifyPayload:
    """RFC 7296 §3.10. ``spi`` is empty when the SPI size is 0."""

    TYPE: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int
    data: bytes = b""
    protocol: int = 0
    spi: bytes = b""


@frozen
class DeletePayload:
    """RFC 7296 §3.11. For protocol IKE the SPI list is empty (the header names the SA)."""

    TYPE: ClassVar[int] = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...] = ()


@frozen
class VendorIdPayload:
    TYPE: ClassVar[int] = PayloadType.VENDOR_ID
    data: bytes


@frozen
class TrafficSelectorWire:
    """One selector inside TSi/TSr (RFC 7296 §3.13.1)."""

    ts_type: int
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: IPAddress
    end_addr: IPAddress


@frozen
class TsPayload:
    TYPE: ClassVar[int] = PayloadType.TSI
    selectors: tuple[TrafficSelectorWire, ...]


@frozen
class TsiPayload(TsPayload):
    TYPE: ClassVar[int] = PayloadType.TSI


@frozen
class TsrPayload(TsPayload):
    TYPE: ClassVar[int] = PayloadType.TSR


@frozen
class CpPayload:
    """RFC 7296 §3.15: attributes as (type, value) pairs."""

    TYPE: ClassVar[int] = PayloadType.CP
    cfg_type: int
    attributes: tuple[tuple[int, bytes], ...] = ()


@frozen
class EapPayload:
    """Kept opaque: pike does not act as an EAP server or client yet."""

    TYPE: ClassVar[int] = PayloadType.EAP
    data: bytes


@frozen
class SkPayload:
    """The Encrypted payload (RFC 7296 §3.14) before decryption.

    ``first_payload`` is the next-payload value in its generic header (the type of the
    first inner payload); ``body`` is IV || ciphertext || ICV exactly as received.
    """

    TYPE: ClassVar[int] = PayloadType.SK
    first_payload: int
    body: bytes


@frozen
class SkfPayload:
    """Encrypted Fragment payload (RFC 7383 §2.5) before decryption."""

    TYPE: ClassVar[int] = PayloadType.SKF
    first_payload: int
    fragment_number: int
    total_fragments: int
    body: bytes


@frozen
class UnknownPayload:
    """A payload type we do not know; kept when its critical bit is clear (RFC 7296 §2.5)."""

    type: int
    critical: bool
    data: bytes

    @property
    def TYPE(self) -> int:
        return self.type


Payload = (
    SaPayload
    | KePayload
    | IdiPayload
    | IdrPayload
    | CertPayload
    | CertReqPayload
    | AuthPayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | TsiPayload
    | TsrPayload
    | CpPayload
    | EapPayload
    | SkPayload
    | SkfPayload
    | UnknownPayload
)


_P = TypeVar("_P")

# Every payload class no other payload class derives from, each with None: a decoded
# message's ``first_of`` starts from this, so a class it does not hold answers None at once.
# ``first(IdPayload)`` must also find an IDi, so IdPayload and TsPayload are not keys:
# they are looked up by a scan.
_NONE_OF_EACH: dict[type[Any], Payload | None] = dict.fromkeys(
    (
        SaPayload,
        KePayload,
        IdiPayload,
        IdrPayload,
        CertPayload,
        CertReqPayload,
        AuthPayload,
        NoncePayload,
        NotifyPayload,
        DeletePayload,
        VendorIdPayload,
        TsiPayload,
        TsrPayload,
        CpPayload,
        EapPayload,
        SkPayload,
        SkfPayload,
        UnknownPayload,
    )
)
# What a changed list's ``first_of`` is: every class misses, so lookups scan.
_STALE: Mapping[type[Any], Payload | None] = MappingProxyType({})


class PayloadList(list[Payload]):
    """The payloads of a decoded message, with what the engine looks up in them.

    The engine asks a received message for a dozen payloads and notifies, each a scan in
    Python. ``indexed`` (the decoder's) notes the first payload of each class
    (``first_of``), the Notify payloads (``notifies``) and the first of each type
    (``notify_of``). The list stays a plain list to its users: every method that changes it
    drops what was noted, and lookups scan again (a payload put in later may be of a class
    from outside the codec, which ``isinstance`` must see). A list that was never indexed
    has none of the three (``AttributeError``): lookups scan it too.
    """

    __slots__ = ("first_of", "notifies", "notify_of", "received")
    first_of: Mapping[type[Any], Payload | None]
    notify_of: Mapping[int, NotifyPayload] | None
    notifies: list[NotifyPayload] | None  # in reverse order
    # Decrypted payloads: the type of the first and the inner chain as received (RFC 9242
    # IntAuth covers these octets, not a re-encoding of them). Kept on the list rather than
    # the message: a field less to store for every message built or decoded.
    received: tuple[int, bytes]

    @classmethod
    def indexed(cls, payloads: list[Payload]) -> PayloadList:
        """``payloads`` with their index. One walk backwards with plain stores: the last
        value stored for a key is the first payload. (Built from C, with ``map``, ``zip``
        and ``compress``, it counts fewer instructions but takes three times as long.)"""
        found = cls(payloads)
        first_of = _NONE_OF_EACH.copy()
        notify_of: dict[int, NotifyPayload] = {}
        notifies: list[NotifyPayload] = []  # the last first
        for p in reversed(payloads):
            kind = type(p)
            first_of[kind] = p
            if kind is NotifyPayload:
                notify_of[p.notify_type] = p  # type: ignore[union-attr,assignment]
                notifies.append(p)  # type: ignore[arg-type]
        found.first_of, found.notify_of, found.notifies = first_of, notify_of, notifies
        return found

    # The mutating methods of ``list``: each drops what was noted, then does its work.
    def _changed(self) -> None:
        self.first_of, self.notify_of, self.notifies = _STALE, None, None

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._changed()
        super().__delitem__(key)

    def __iadd__(self, other: Iterable[Payload]) -> Self:  # type: ignore[override,misc]
        self._changed()
        return super().__iadd__(other)

    def __imul__(self, n: SupportsIndex) -> Self:
        self._changed()
        return super().__imul__(n)

    def append(self, p: Payload) -> None:
        self._changed()
        super().append(p)

    def extend(self, payloads: Iterable[Payload]) -> None:
        self._changed()
        super().extend(payloads)

    def insert(self, i: SupportsIndex, p: Payload) -> None:
        self._changed()
        super().insert(i, p)

    def remove(self, p: Payload) -> None:
        self._changed()
        super().remove(p)

    def pop(self, i: SupportsIndex = -1) -> Payload:
        self._changed()
        return super().pop(i)

    def clear(self) -> None:
        self._changed()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._changed()
        super().reverse()


@dataclass(slots=True)
class Message:
    """An IKEv2 message: header fields plus its payloads.

    On decode, ``payloads`` are the plaintext (outer) payloads, with an ``SkPayload`` still
    encrypted; after ``decrypt``, ``payloads`` holds the inner payloads and ``encrypted`` is
    True. On encode, ``encrypted=True`` means: put ``payloads`` inside an SK payload.
    Decoded messages hold a ``PayloadList``, so ``first``/``all``/``notify`` are lookups.
    """

    spi_i: bytes
    spi_r: bytes
    exchange: int
    message_id: int
    is_initiator: bool
    is_response: bool
    payloads: list[Payload] = field(default_factory=list)
    encrypted: bool = False

    # Each lookup asks the index of a decoded message straight away; a message we build
    # holds a plain list (no index: AttributeError), a changed one a stale index, and
    # IdPayload/TsPayload are no keys of it (KeyError): those are scanned.
    def first(self, cls: type[_P]) -> _P | None:
        try:
            return self.payloads.first_of[cls]  # type: ignore[attr-defined,no-any-return]
        except (AttributeError, KeyError):
            pass
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def all(self, cls: type[_P]) -> list[_P]:
        if cls is NotifyPayload:
            notifies: list[_P] | None = getattr(self.payloads, "notifies", None)
            if notifies is not None:
                return notifies[::-1]
        return [p for p in self.payloads if isinstance(p, cls)]

    def notify(self, notify_type: int) -> NotifyPayload | None:
        try:
            return self.payloads.notify_of.get(notify_type)  # type: ignore[attr-defined,no-any-return]
        except AttributeError:
            pass
        for p in self.payloads:
            if isinstance(p, NotifyPayload) and p.notify_type == notify_type:
                return p
        return None
