"""Byte layout of the payload bodies with a flat shape (RFC 7296 §3.4-3.16, RFC 7383 §2.5).

Each payload body follows the 4-byte generic payload header (handled in
``pike.wire.codec``). Most bodies are "a few fixed fields, then opaque data": those are
declared as a ``FixedSpec`` beside their RFC diagram. Bodies with inner counts or lists
(Notify, Delete, CP) have a small decoder/encoder pair. SA and TS bodies live in
``sa_body`` and ``ts_body``.

A decoder receives the message's bytes and the body's bounds (nested bodies: a
``Reader`` bounded to the body) and must consume them exactly; the chain walker rejects
leftovers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Generic, TypeVar

from pike.wire.buffer import Reader, truncated
from pike.wire.constants import IdType, NotifyType, ProtocolId
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CpPayload,
    DeletePayload,
    EapPayload,
    IdiPayload,
    IdPayload,
    IdrPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    VendorIdPayload,
)

NONCE_MIN = 16  # RFC 7296 §3.9
NONCE_MAX = 256  # RFC 7296 §3.9
IPV4_LEN = 4
IPV6_LEN = 16
ESP_AH_SPI_LEN = 4  # RFC 7296 §3.3.1


def invalid(detail: str) -> MalformedMessage:
    return MalformedMessage("invalid_syntax", detail, NotifyType.INVALID_SYNTAX)


# The generic payload header (RFC 7296 §3.2) in front of every body: Next Payload, the
# critical bit and RESERVED, Payload Length. Each payload's writer packs it together with
# the body's fixed fields, in one call.
GENERIC = struct.Struct("!BBH")
GENERIC_PACK = GENERIC.pack
MAX_PAYLOAD_LEN = 0xFFFF


class Unusual(Exception):
    """A decoding step met something other than the common shape of its payload."""


# A step decodes a whole payload (generic header and body) at ``pos`` when it has the
# common shape, and returns it with the type of the next payload and the offset after it.
# On anything else it raises ``Unusual``, ``struct.error`` or ``MalformedMessage``, and the
# chain walker decodes the payload again with the full decoder of its body, which is the one
# authority on what is accepted and what error names a malformed payload. A step accepts
# only what that decoder accepts, and returns what it would.
Step = Callable[[bytes, int, int], tuple[Any, int, int]]


def too_long(p: object, length: int) -> EncodeError:
    return EncodeError(f"{type(p).__name__} is {length} bytes long")


def with_header(encode: Callable[[Any], bytes]) -> Callable[[Any, int], bytes]:
    """A writer of the whole payload from an encoder of its body (the payloads that are
    rare on the hot path)."""

    def write(p: Any, next_kind: int) -> bytes:
        body = encode(p)
        length = GENERIC.size + len(body)
        if length > MAX_PAYLOAD_LEN:
            raise too_long(p, length)
        return GENERIC_PACK(next_kind, 0, length) + body

    return write


_P = TypeVar("_P")


@dataclass(frozen=True, slots=True)
class FixedSpec(Generic[_P]):
    """A body made of fixed fields (``fmt``; pad bytes ``x`` are RESERVED: zero when sent,
    ignored when received, RFC 7296 §2.5) followed by opaque ``tail`` data."""

    cls: Callable[..., _P]
    fmt: struct.Struct
    fields: tuple[str, ...]
    tail: str = "data"
    tail_min: int = 0
    tail_max: int = 0xFFFF
    check: Callable[[Any], None] | None = None
    # The payload's values in ``fmt``'s order, then the tail: one C call to read them all.
    _values: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    # The generic payload header and ``fmt``: what ``step`` and ``write`` do in one call.
    _head: struct.Struct = field(init=False, repr=False, compare=False)
    # The whole payload at once (see ``Step``), and the whole payload given the next type.
    step: Callable[[bytes, int, int], tuple[_P, int, int]] = field(
        init=False, repr=False, compare=False
    )
    write: Callable[[Any, int], bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_values", attrgetter(*self.fields, self.tail))
        object.__setattr__(self, "_head", struct.Struct(GENERIC.format + self.fmt.format[1:]))
        object.__setattr__(self, "step", _fixed_step(self))
        object.__setattr__(self, "write", _fixed_write(self))

    def decode(self, data: bytes, start: int, end: int) -> _P:
        fixed = start + self.fmt.size
        if not self.tail_min <= end - fixed <= self.tail_max:
            if fixed > end:
                raise truncated(f"{self.fmt.size} bytes of fields in a {end - start} byte body")
            raise invalid(
                f"{self.tail} is {end - fixed} bytes, "
                f"must be {self.tail_min}..{self.tail_max} (RFC 7296 §3)"
            )
        # Payload classes list the fixed fields first and the tail last.
        payload = self.cls(*self.fmt.unpack_from(data, start), data[fixed:end])
        if self.check is not None:
            self.check(payload)
        return payload

    def encode(self, p: Any) -> bytes:
        if not self.fields:
            return self._values(p)  # type: ignore[no-any-return]  # just the tail
        *fixed, tail = self._values(p)
        return self.fmt.pack(*fixed) + tail  # type: ignore[no-any-return]


def _fixed_step(spec: FixedSpec[_P]) -> Callable[[bytes, int, int], tuple[_P, int, int]]:
    """``spec``'s step (see ``Step``): one unpack for the generic header and the fields,
    with the spec's values bound in the closure (a payload is decoded many times)."""
    unpack, head_size = spec._head.unpack_from, spec._head.size
    cls, check, tail_min, tail_max = spec.cls, spec.check, spec.tail_min, spec.tail_max

    def step_one_field(data: bytes, pos: int, end: int) -> tuple[_P, int, int]:
        next_kind, _, length, value = unpack(data, pos)
        stop = pos + length
        if stop > end or not tail_min <= length - head_size <= tail_max:
            raise Unusual
        payload = cls(value, data[pos + head_size : stop])
        if check is not None:
            check(payload)
        return payload, next_kind, stop

    def step_tail_only(data: bytes, pos: int, end: int) -> tuple[_P, int, int]:
        next_kind, _, length = unpack(data, pos)
        stop = pos + length
        if stop > end or not tail_min <= length - head_size <= tail_max:
            raise Unusual
        payload = cls(data[pos + head_size : stop])
        if check is not None:
            check(payload)
        return payload, next_kind, stop

    def step(data: bytes, pos: int, end: int) -> tuple[_P, int, int]:
        next_kind, _, length, *fixed = unpack(data, pos)
        stop = pos + length
        if stop > end or not tail_min <= length - head_size <= tail_max:
            raise Unusual
        payload = cls(*fixed, data[pos + head_size : stop])
        if check is not None:
            check(payload)
        return payload, next_kind, stop

    if not spec.fields:
        return step_tail_only
    return step_one_field if len(spec.fields) == 1 else step


def _fixed_write(spec: FixedSpec[_P]) -> Callable[[Any, int], bytes]:
    """``spec``'s writer: the whole payload, generic header and fields in one pack."""
    values, pack, head_size = spec._values, spec._head.pack, spec._head.size

    def write_tail_only(p: Any, next_kind: int) -> bytes:
        tail = values(p)
        length = head_size + len(tail)
        if length > MAX_PAYLOAD_LEN:
            raise too_long(p, length)
        return pack(next_kind, 0, length) + tail  # type: ignore[no-any-return]

    def write_one_field(p: Any, next_kind: int) -> bytes:
        value, tail = values(p)
        length = head_size + len(tail)
        if length > MAX_PAYLOAD_LEN:
            raise too_long(p, length)
        return pack(next_kind, 0, length, value) + tail  # type: ignore[no-any-return]

    def write(p: Any, next_kind: int) -> bytes:
        *fixed, tail = values(p)
        length = head_size + len(tail)
        if length > MAX_PAYLOAD_LEN:
            raise too_long(p, length)
        return pack(next_kind, 0, length, *fixed) + tail  # type: ignore[no-any-return]

    if not spec.fields:
        return write_tail_only
    return write_one_field if len(spec.fields) == 1 else write


_ID_ADDRESS_LEN = {int(IdType.ID_IPV4_ADDR): IPV4_LEN, int(IdType.ID_IPV6_ADDR): IPV6_LEN}


def _check_id(p: IdPayload) -> None:
    # RFC 7296 §3.5: address identities are exactly one address.
    expected = _ID_ADDRESS_LEN.get(p.id_type)
    if expected is not None and len(p.data) != expected:
        raise invalid(f"ID type {p.id_type} with {len(p.data)} bytes")


_NO_FIELDS = struct.Struct("!")

# RFC 7296 §3.4 Key Exchange Payload
#    +-------------------------------+-------------------------------+
#    |   Diffie-Hellman Group Num    |           RESERVED            |
#    +-------------------------------+-------------------------------+
#    ~                       Key Exchange Data                       ~
KE = FixedSpec(KePayload, struct.Struct("!H2x"), ("group",))

# RFC 7296 §3.5 Identification Payloads
#    +---------------+-----------------------------------------------+
#    |   ID Type     |                 RESERVED                      |
#    +---------------+-----------------------------------------------+
#    ~                   Identification Data                         ~
IDI = FixedSpec(IdiPayload, struct.Struct("!B3x"), ("id_type",), check=_check_id)
IDR = FixedSpec(IdrPayload, struct.Struct("!B3x"), ("id_type",), check=_check_id)

# RFC 7296 §3.6 Certificate Payload, §3.7 Certificate Request Payload
#    +-+-+-+-+-+-+-+-+
#    | Cert Encoding |
#    +-+-+-+-+-+-+-+-+-----------------------------------------------+
#    ~               Certificate Data / Certification Authority      ~
CERT = FixedSpec(CertPayload, struct.Struct("!B"), ("encoding",))
CERTREQ = FixedSpec(CertReqPayload, struct.Struct("!B"), ("encoding",))

# RFC 7296 §3.8 Authentication Payload
#    +---------------+-----------------------------------------------+
#    | Auth Method   |                RESERVED                       |
#    +---------------+-----------------------------------------------+
#    ~                      Authentication Data                      ~
AUTH = FixedSpec(AuthPayload, struct.Struct("!B3x"), ("method",))

# RFC 7296 §3.9 Nonce Payload: 16..256 bytes of Nonce Data
NONCE = FixedSpec(NoncePayload, _NO_FIELDS, (), tail_min=NONCE_MIN, tail_max=NONCE_MAX)

# RFC 7296 §3.12 Vendor ID Payload, §3.16 EAP Payload (kept opaque)
VENDOR_ID = FixedSpec(VendorIdPayload, _NO_FIELDS, ())
EAP = FixedSpec(EapPayload, _NO_FIELDS, ())


# RFC 7296 §3.10 Notify Payload
#    +---------------+---------------+-------------------------------+
#    |  Protocol ID  |   SPI Size    |      Notify Message Type      |
#    +---------------+---------------+-------------------------------+
#    ~                Security Parameter Index (SPI)                 ~
#    ~                       Notification Data                       ~
_NOTIFY = struct.Struct("!BBH")
_NOTIFY_SIZE, _NOTIFY_UNPACK = _NOTIFY.size, _NOTIFY.unpack_from


def decode_notify(data: bytes, start: int, end: int) -> NotifyPayload:
    if end - start < _NOTIFY_SIZE:
        raise truncated(f"Notify body of {end - start} bytes")
    protocol, spi_size, notify_type = _NOTIFY_UNPACK(data, start)
    spi_start = start + _NOTIFY_SIZE
    data_start = spi_start + spi_size
    if data_start > end:
        raise truncated(f"Notify SPI of {spi_size} bytes in a {end - start} byte body")
    return NotifyPayload(notify_type, data[data_start:end], protocol, data[spi_start:data_start])


_NOTIFY_PAYLOAD = struct.Struct(GENERIC.format + _NOTIFY.format[1:])
_NOTIFY_PAYLOAD_UNPACK = _NOTIFY_PAYLOAD.unpack_from


# Notifies with neither SPI nor data (a status: INITIAL_CONTACT, MOBIKE_SUPPORTED, ...) by
# protocol and type, shared: several are in every handshake, and they are immutable values.
# Bounded: a peer sending ever new types only empties it.
_EMPTY_NOTIFIES: dict[int, NotifyPayload] = {}
_EMPTY_NOTIFIES_MAX = 256


# The same by the 8 bytes of the whole payload as received (the generic header with the next
# type, the Payload Length 8 and the critical bit, then the protocol, SPI size 0 and the
# type), with the next type: a status seen before is found without unpacking it. Those bytes
# decide the payload and whether it is valid. Bounded like the values.
_STATUS_SEEN: dict[bytes, tuple[NotifyPayload, int]] = {}
_STATUS_LEN = _NOTIFY_PAYLOAD.size


def step_notify(data: bytes, pos: int, end: int) -> tuple[NotifyPayload, int, int]:
    """The whole Notify payload at ``pos`` (see ``Step``)."""
    stop = pos + _STATUS_LEN
    seen = _STATUS_SEEN.get(data[pos:stop])
    if seen is not None and stop <= end:
        return seen[0], seen[1], stop
    next_kind, _, length, protocol, spi_size, notify_type = _NOTIFY_PAYLOAD_UNPACK(data, pos)
    stop = pos + length
    if length == _STATUS_LEN and stop <= end:  # a status: no SPI (or invalid), no data
        if spi_size:
            raise Unusual
        key = protocol << 16 | notify_type
        notify = _EMPTY_NOTIFIES.get(key)
        if notify is None:
            if len(_EMPTY_NOTIFIES) >= _EMPTY_NOTIFIES_MAX:
                _EMPTY_NOTIFIES.clear()
            notify = _EMPTY_NOTIFIES[key] = NotifyPayload(notify_type, b"", protocol, b"")
        if len(_STATUS_SEEN) >= _EMPTY_NOTIFIES_MAX:
            _STATUS_SEEN.clear()
        _STATUS_SEEN[data[pos:stop]] = notify, next_kind
        return notify, next_kind, stop
    spi_start = pos + _NOTIFY_PAYLOAD.size
    data_start = spi_start + spi_size
    if data_start > stop or stop > end:
        raise Unusual
    notify = NotifyPayload(notify_type, data[data_start:stop], protocol, data[spi_start:data_start])
    return notify, next_kind, stop


# Status notifies as written, by (next type, protocol, type): the engine sends the same
# few in every handshake. Bounded like the decoded ones.
_EMPTY_WRITTEN: dict[tuple[int, int, int], bytes] = {}


def write_notify(p: NotifyPayload, next_kind: int) -> bytes:
    spi, data = p.spi, p.data
    if not spi and not data:
        key = (next_kind, p.protocol, p.notify_type)
        written = _EMPTY_WRITTEN.get(key)
        if written is None:
            size = _NOTIFY_PAYLOAD.size
            written = _NOTIFY_PAYLOAD.pack(next_kind, 0, size, p.protocol, 0, p.notify_type)
            if len(_EMPTY_WRITTEN) >= _EMPTY_NOTIFIES_MAX:
                _EMPTY_WRITTEN.clear()
            _EMPTY_WRITTEN[key] = written
        return written
    length = _NOTIFY_PAYLOAD.size + len(spi) + len(data)
    if length > MAX_PAYLOAD_LEN:
        raise too_long(p, length)
    head = _NOTIFY_PAYLOAD.pack(next_kind, 0, length, p.protocol, len(spi), p.notify_type)
    return head + spi + data


# RFC 7296 §3.11 Delete Payload
#    +---------------+---------------+-------------------------------+
#    | Protocol ID   |   SPI Size    |          Num of SPIs          |
#    +---------------+---------------+-------------------------------+
#    ~               Security Parameter Index(es) (SPI)              ~
_DELETE = struct.Struct("!BBH")
_DELETE_SPI_SIZE = {int(ProtocolId.ESP): ESP_AH_SPI_LEN, int(ProtocolId.AH): ESP_AH_SPI_LEN}


def decode_delete(r: Reader) -> DeletePayload:
    protocol, spi_size, count = r.unpack(_DELETE, "Delete")
    if spi_size * count != r.remaining:
        raise invalid(f"Delete: {count} SPIs of {spi_size} bytes in {r.remaining} bytes")
    if protocol == ProtocolId.IKE and (spi_size or count):
        raise invalid("Delete for IKE must carry no SPI (RFC 7296 §3.11)")
    if protocol in (ProtocolId.ESP, ProtocolId.AH) and spi_size != ESP_AH_SPI_LEN:
        raise invalid(f"Delete: SPI size {spi_size} for protocol {protocol}")
    if count and spi_size == 0:
        raise invalid("Delete: SPIs of size 0")
    return DeletePayload(protocol, tuple(r.read(spi_size, "SPI") for _ in range(count)))


def encode_delete(p: DeletePayload) -> bytes:
    # ESP and AH SPIs are 4 bytes even when the list is empty (RFC 7296 §3.11).
    size = len(p.spis[0]) if p.spis else _DELETE_SPI_SIZE.get(p.protocol, 0)
    if any(len(spi) != size for spi in p.spis):
        raise EncodeError("Delete SPIs must all have the same size")
    return _DELETE.pack(p.protocol, size, len(p.spis)) + b"".join(p.spis)


# RFC 7296 §3.15 Configuration Payload
#    +---------------+-----------------------------------------------+
#    |   CFG Type    |                    RESERVED                   |
#    +---------------+-----------------------------------------------+
#    ~                   Configuration Attributes                    ~
# and §3.15.1 each attribute:
#    +-+-----------------------------+-------------------------------+
#    |R|         Attribute Type      |            Length             |
#    +-+-----------------------------+-------------------------------+
#    ~                             Value                             ~
_CP = struct.Struct("!B3x")
_CP_ATTR = struct.Struct("!HH")
_CP_TYPE_MASK = 0x7FFF  # the R bit is reserved (ignored on receipt)


def decode_cp(r: Reader) -> CpPayload:
    (cfg_type,) = r.unpack(_CP, "CP")
    attributes = []
    while r.remaining:
        attr_type, length = r.unpack(_CP_ATTR, "CP attribute")
        attributes.append((attr_type & _CP_TYPE_MASK, r.read(length, "CP attribute value")))
    return CpPayload(cfg_type, tuple(attributes))


def encode_cp(p: CpPayload) -> bytes:
    parts = [_CP.pack(p.cfg_type)]
    for attr_type, value in p.attributes:
        if attr_type > _CP_TYPE_MASK:
            raise EncodeError(f"CP attribute type {attr_type} > 15 bits")
        parts.append(_CP_ATTR.pack(attr_type, len(value)))
        parts.append(value)
    return b"".join(parts)


# RFC 7383 §2.5 Encrypted Fragment Payload (after the generic header)
#    +-------------------------------+-------------------------------+
#    |        Fragment Number        |        Total Fragments        |
#    +-------------------------------+-------------------------------+
#    |                     Initialization Vector                     |
#    ~                      Encrypted content                        ~
#    ~                    Integrity Checksum Data                    ~
SKF_HEADER = struct.Struct("!HH")
