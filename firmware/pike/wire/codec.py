"""IKEv2 messages <-> bytes: the payload chain, the SK payload, whole messages.

Generic payload header (RFC 7296 §3.2), in front of every payload body:
    +---------------+-+-------------+-------------------------------+
    | Next Payload  |C|  RESERVED   |         Payload Length        |
    +---------------+-+-------------+-------------------------------+

Decoding checks every length against its container before a value is used (docs/architecture.md);
whatever the bytes, it raises nothing but ``MalformedMessage``. A payload in its common
shape is decoded by its step (``STEPS``: header and fields in one unpack); anything else,
and every malformed payload, by the full decoder of its body (``DECODERS``), which names
what is wrong. Encoding writes each payload whole (``WRITERS``) and joins the parts once
(the responder's hot path). A value we cannot encode is our own bug and raises
``EncodeError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from pike.wire import bodies, sa_body, ts_body
from pike.wire.bodies import GENERIC as GENERIC
from pike.wire.bodies import MAX_PAYLOAD_LEN as MAX_PAYLOAD_LEN
from pike.wire.bodies import Step, Unusual, invalid, too_long, with_header
from pike.wire.buffer import Reader, truncated
from pike.wire.constants import (
    GENERIC_PAYLOAD_HEADER_LEN,
    HEADER_LEN,
    IKE_VERSION,
    HeaderFlag,
    NotifyType,
    PayloadType,
)
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.header import HEADER, IKE_MAJOR_VERSION, decode_header
from pike.wire.memo import memoized
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
    Message,
    NoncePayload,
    NotifyPayload,
    Payload,
    PayloadList,
    SaPayload,
    SkfPayload,
    SkPayload,
    TsiPayload,
    TsPayload,
    TsrPayload,
    UnknownPayload,
    VendorIdPayload,
)
from pike.wire.sk import SkCrypter

_GENERIC_PACK = GENERIC.pack
_HEADER_AND_SK = struct.Struct(HEADER.format + GENERIC.format[1:])
_INITIATOR = int(HeaderFlag.INITIATOR)
_RESPONSE = int(HeaderFlag.RESPONSE)
_ENCRYPTED_CLASSES = (SkPayload, SkfPayload)
CRITICAL = 0x80  # RFC 7296 §3.2

# A body decoder gets the message's bytes and the body's bounds and must use all of it.
Decoder = Callable[[bytes, int, int], Payload]


def _with_reader(decode: Callable[[Reader], Payload]) -> Decoder:
    """Adapt a decoder of nested structures, which walks a ``Reader``."""

    def decoder(data: bytes, start: int, end: int) -> Payload:
        r = Reader(data, start, end)
        payload = decode(r)
        if r.remaining:
            raise invalid(f"{r.remaining} bytes after the payload's fields")
        return payload

    return decoder


# Payload type -> body decoder. SK and SKF are handled by the chain walker itself because
# their generic header's Next Payload names the first inner payload (RFC 7296 §3.14).
DECODERS: dict[int, Decoder] = {
    PayloadType.SA: sa_body.decode_sa,
    PayloadType.KE: bodies.KE.decode,
    PayloadType.IDI: bodies.IDI.decode,
    PayloadType.IDR: bodies.IDR.decode,
    PayloadType.CERT: bodies.CERT.decode,
    PayloadType.CERTREQ: bodies.CERTREQ.decode,
    PayloadType.AUTH: bodies.AUTH.decode,
    PayloadType.NONCE: bodies.NONCE.decode,
    PayloadType.NOTIFY: bodies.decode_notify,
    PayloadType.DELETE: _with_reader(bodies.decode_delete),
    PayloadType.VENDOR_ID: bodies.VENDOR_ID.decode,
    PayloadType.TSI: ts_body.decode_tsi,
    PayloadType.TSR: ts_body.decode_tsr,
    PayloadType.CP: _with_reader(bodies.decode_cp),
    PayloadType.EAP: bodies.EAP.decode,
}


def _encode_skf(p: SkfPayload) -> bytes:
    return bodies.SKF_HEADER.pack(p.fragment_number, p.total_fragments) + p.body


def _encrypted_error() -> EncodeError:
    return EncodeError("the Encrypted payload must be the last outer payload")


def _write_sk(p: SkPayload, next_kind: int) -> bytes:
    # Its Next Payload names the first inner payload (RFC 7296 §3.14).
    if next_kind:
        raise _encrypted_error()
    length = GENERIC.size + len(p.body)
    if length > MAX_PAYLOAD_LEN:
        raise too_long(p, length)
    return _GENERIC_PACK(p.first_payload, 0, length) + p.body


def _write_skf(p: SkfPayload, next_kind: int) -> bytes:
    if next_kind:
        raise _encrypted_error()
    body = _encode_skf(p)
    length = GENERIC.size + len(body)
    if length > MAX_PAYLOAD_LEN:
        raise too_long(p, length)
    return _GENERIC_PACK(p.first_payload, 0, length) + body


def _write_unknown(p: UnknownPayload, next_kind: int) -> bytes:
    # The critical bit as given (RFC 7296 §2.5).
    length = GENERIC.size + len(p.data)
    if length > MAX_PAYLOAD_LEN:
        raise too_long(p, length)
    return _GENERIC_PACK(next_kind, CRITICAL if p.critical else 0, length) + p.data


# Payload class -> writer of the whole payload (generic header and body) given the type
# of the payload after it: the header is packed with the body's fixed fields.
WRITERS: dict[type[Any], Callable[[Any, int], bytes]] = {
    SaPayload: sa_body.write_sa,
    KePayload: bodies.KE.write,
    IdPayload: bodies.IDI.write,
    IdiPayload: bodies.IDI.write,
    IdrPayload: bodies.IDR.write,
    CertPayload: bodies.CERT.write,
    CertReqPayload: bodies.CERTREQ.write,
    AuthPayload: bodies.AUTH.write,
    NoncePayload: bodies.NONCE.write,
    NotifyPayload: bodies.write_notify,
    DeletePayload: with_header(bodies.encode_delete),
    VendorIdPayload: bodies.VENDOR_ID.write,
    TsPayload: ts_body.write_ts,
    TsiPayload: ts_body.write_ts,
    TsrPayload: ts_body.write_ts,
    CpPayload: with_header(bodies.encode_cp),
    EapPayload: bodies.EAP.write,
    SkPayload: _write_sk,
    SkfPayload: _write_skf,
    UnknownPayload: _write_unknown,
}
_WRITER = WRITERS.get

_SK = int(PayloadType.SK)  # plain ints: enum attribute access is slow on the hot path


# Payload type -> the memo of its decoded bodies (see ``pike.wire.memo``): the types whose
# bodies recur from branch to branch.
MEMOS: dict[int, dict[bytes, Any]] = {
    PayloadType.SA: sa_body.OFFERS,  # and sa_body.PROPOSALS_BUT_SPI: see step_sa
    PayloadType.IDR: {},
    PayloadType.CERTREQ: {},
    PayloadType.VENDOR_ID: {},
    PayloadType.TSI: {},
    PayloadType.TSR: {},
}

# Payload type -> the step that decodes it in its common shape: the chain walker's fast path.
STEPS: dict[int, Step] = {
    PayloadType.SA: sa_body.step_sa,
    PayloadType.KE: bodies.KE.step,
    PayloadType.IDI: bodies.IDI.step,
    PayloadType.IDR: memoized(bodies.IDR.decode, MEMOS[PayloadType.IDR]),
    PayloadType.CERT: bodies.CERT.step,
    PayloadType.CERTREQ: memoized(bodies.CERTREQ.decode, MEMOS[PayloadType.CERTREQ]),
    PayloadType.AUTH: bodies.AUTH.step,
    PayloadType.NONCE: bodies.NONCE.step,
    PayloadType.NOTIFY: bodies.step_notify,
    PayloadType.VENDOR_ID: memoized(bodies.VENDOR_ID.decode, MEMOS[PayloadType.VENDOR_ID]),
    PayloadType.TSI: memoized(ts_body.decode_tsi, MEMOS[PayloadType.TSI]),
    PayloadType.TSR: memoized(ts_body.decode_tsr, MEMOS[PayloadType.TSR]),
    PayloadType.EAP: bodies.EAP.step,
}
_INNER_STEP = STEPS.get


def _step_sk(data: bytes, pos: int, end: int) -> tuple[SkPayload, int, int]:
    """The Encrypted payload, last of the outer chain (RFC 7296 §3.14): its Next Payload
    names the first inner payload, so the chain ends here (next type 0)."""
    first_inner, _, length = _GENERIC_UNPACK(data, pos)
    stop = pos + length
    if length < GENERIC_PAYLOAD_HEADER_LEN or stop != end:
        raise Unusual
    return SkPayload(first_inner, data[pos + GENERIC_PAYLOAD_HEADER_LEN : stop]), 0, stop


def _no_step(data: bytes, pos: int, end: int) -> tuple[Payload, int, int]:
    """The step of a type without one (unknown types, SK and SKF inside): the full way."""
    raise Unusual


# The outer chain may end with an SK payload; inside it, SK and SKF are invalid (and left to
# the full way, which says so).
_OUTER_STEP = {**STEPS, PayloadType.SK: _step_sk}.get
# What makes a step give up: the payload is then decoded again the full way.
_NOT_COMMON = (Unusual, struct.error, MalformedMessage)

_SKF = int(PayloadType.SKF)
_ENCRYPTED_TYPES = (_SK, _SKF)
_GENERIC_UNPACK = GENERIC.unpack_from


def _decode_encrypted(
    kind: int, first: int, data: bytes, start: int, end: int
) -> SkPayload | SkfPayload:
    if kind == _SK:
        return SkPayload(first, data[start:end])
    r = Reader(data, start, end)
    number, total = r.unpack(bodies.SKF_HEADER, "SKF")
    # RFC 7383 §2.5: numbers run 1..Total; Next Payload is zero except in fragment 1.
    if not 1 <= number <= total:
        raise invalid(f"SKF fragment {number} of {total}")
    if number != 1 and first != 0:
        raise invalid(f"SKF fragment {number} with Next Payload {first}")
    return SkfPayload(first, number, total, r.rest())


def decode_payloads(
    data: bytes | memoryview, first: int, start: int = 0, *, outer: bool = True
) -> PayloadList:
    """Walk a payload chain from ``start`` to the end of ``data``, starting with type
    ``first``. ``outer`` is False inside an SK payload, where SK/SKF may not appear."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    pos = start
    payloads: list[Payload] = []
    append = payloads.append
    step_of = _OUTER_STEP if outer else _INNER_STEP
    kind = first
    while kind:
        try:
            payload, kind, pos = step_of(kind, _no_step)(data, pos, end)
        except _NOT_COMMON:
            payload, kind, pos = _decode_payload(data, pos, end, kind, outer)
        append(payload)
    if pos != end:
        raise invalid(f"{end - pos} bytes after the last payload")
    return PayloadList.indexed(payloads)


def decode_inner(plaintext: bytes, first: int) -> PayloadList:
    """The inner payloads of an Encrypted payload (or of all fragments), which remember the
    octets they came from (see ``int_auth_data``)."""
    payloads = decode_payloads(plaintext, first, outer=False)
    payloads.received = first, plaintext
    return payloads


def _decode_payload(
    data: bytes, pos: int, end: int, kind: int, outer: bool
) -> tuple[Payload, int, int]:
    """The payload of type ``kind`` at ``pos``, the full way: every check in order, and the
    error that names what is wrong. Returns it with the next payload's type (0 after the
    Encrypted payload, which ends the chain) and the offset after it."""
    if end - pos < GENERIC_PAYLOAD_HEADER_LEN:
        raise truncated(f"payload {kind} header at offset {pos}")
    next_kind, flags, length = _GENERIC_UNPACK(data, pos)
    body_start = pos + GENERIC_PAYLOAD_HEADER_LEN
    stop = pos + length
    if length < GENERIC_PAYLOAD_HEADER_LEN or stop > end:
        raise invalid(f"payload {kind} at offset {pos}: length {length}, {end - pos} left")
    decoder = DECODERS.get(kind)
    if decoder is not None:
        try:
            return decoder(data, body_start, stop), next_kind, stop
        except MalformedMessage as e:
            # Name the payload: body decoders only know their own fields.
            raise MalformedMessage(e.reason, f"{_name(kind)}: {e.detail}", e.notify) from None
    if kind in _ENCRYPTED_TYPES:
        # RFC 7296 §3.14: the Encrypted payload is the last one of the message.
        if not outer:
            raise invalid(f"payload {kind} inside the Encrypted payload")
        if stop != end:
            raise invalid(f"payload {kind} is not the last payload")
        return _decode_encrypted(kind, next_kind, data, body_start, stop), 0, stop
    if flags & CRITICAL:
        # RFC 7296 §2.5: skip unknown payloads unless the sender marked them critical.
        raise MalformedMessage(
            "unsupported_critical_payload",
            str(kind),
            NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
        )
    return UnknownPayload(kind, False, data[body_start:stop]), next_kind, stop


def _name(kind: int) -> str:
    try:
        return PayloadType(kind).name
    except ValueError:
        return str(kind)


def decode_message(data: bytes) -> Message:
    """Header and outer payloads; an SK payload stays encrypted (see ``decrypt_message``)."""
    if len(data) < HEADER_LEN:
        decode_header(data)  # raises the precise error
    # The fields are unpacked here rather than through ``Header``: this is the hot path.
    spi_i, spi_r, first, version, exchange, flags, message_id, length = HEADER.unpack_from(data)
    if length != len(data) or version >> 4 != IKE_MAJOR_VERSION:
        decode_header(data)  # raises the precise error (the length first)
    return Message(
        spi_i,
        spi_r,
        exchange,
        message_id,
        bool(flags & _INITIATOR),
        bool(flags & _RESPONSE),
        decode_payloads(data, first, HEADER_LEN),
    )


def decrypt_message(data: bytes, msg: Message, cipher: SkCrypter) -> Message:
    """Open the SK payload of ``msg`` (decoded from ``data``) and decode its inner chain.

    Any ``Exception`` from ``cipher.open`` (bad ICV, short body, bad padding: whatever the
    crypto library raises) means the message is not authentic: it becomes
    ``integrity_check_failed`` with no notify, to be dropped silently (RFC 7296 §2.21.2).
    BaseExceptions such as KeyboardInterrupt pass through.
    """
    sk = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sk, SkPayload):
        raise invalid("no Encrypted payload to open")
    aad = data[: len(data) - len(sk.body)]  # SK is last: header + SK generic header
    try:
        plaintext = cipher.open(aad, sk.body)
    except Exception as e:
        raise MalformedMessage("integrity_check_failed", type(e).__name__, None) from e
    return Message(
        msg.spi_i,
        msg.spi_r,
        msg.exchange,
        msg.message_id,
        msg.is_initiator,
        msg.is_response,
        decode_inner(plaintext, sk.first_payload),
        True,
    )


def int_auth_data(msg: Message) -> bytes:
    """IntAuth_[i|r]*A | IntAuth_[i|r]*P of an IKE_INTERMEDIATE message (RFC 9242 §3.1):
    the IKE header and the Encrypted payload's generic header with lengths as if the
    Encrypted payload held just the plaintext inner payloads (no IV, padding or ICV),
    then those payloads. A fragmented message counts as the whole (RFC 9242 §3.1.2).
    Received messages use the octets as received, ours are encoded."""
    received: tuple[int, bytes] | None = getattr(msg.payloads, "received", None)
    if received is not None:
        first, plain = received
    else:
        first, parts = encode_payloads(msg.payloads, outer=False)
        plain = b"".join(parts)
    sk_len = GENERIC_PAYLOAD_HEADER_LEN + len(plain)
    head = _header(msg, _SK, HEADER_LEN + sk_len)
    return head + GENERIC.pack(first, 0, sk_len) + plain


def encode_payloads(payloads: Sequence[Payload], *, outer: bool = True) -> tuple[int, list[bytes]]:
    """Return the first payload type and the parts of the chain (one per payload)."""
    parts: list[bytes] = []
    if not payloads:
        return 0, parts
    append = parts.append
    # Each generic header names the type of the payload after it: a payload is written
    # when the next one's type is known. (A Python loop: ``map(type, ...)`` and
    # ``map(call, ...)`` from C took longer than this.)
    # The SK and SKF writers refuse to be followed by a payload (RFC 7296 §3.14); the last
    # payload may be one only in the outer chain.
    p = payloads[0]
    first = p.TYPE
    for after in payloads[1:]:
        writer = _WRITER(type(p))
        if writer is None:
            raise _no_encoder(p)
        append(writer(p, after.TYPE))
        p = after
    writer = _WRITER(type(p))
    if writer is None:
        raise _no_encoder(p)
    if not outer and type(p) in _ENCRYPTED_CLASSES:
        raise _encrypted_error()
    append(writer(p, 0))
    return first, parts


def _no_encoder(p: Payload) -> EncodeError:
    return EncodeError(f"no encoder for {type(p).__name__}")


def encode_message(msg: Message, cipher: SkCrypter | None = None) -> bytes:
    """The datagram for ``msg``; with ``msg.encrypted`` its payloads go, sealed by
    ``cipher``, into an SK payload."""
    if len(msg.spi_i) != 8 or len(msg.spi_r) != 8:
        raise EncodeError("IKE SPIs are 8 bytes (RFC 7296 §3.1)")
    try:
        if not msg.encrypted:
            first, parts = encode_payloads(msg.payloads)
            length = HEADER_LEN + sum(map(len, parts))
            head = _header(msg, first, length)
            return head + b"".join(parts)
        if cipher is None:
            raise EncodeError("an encrypted message needs a cipher")
        first, parts = encode_payloads(msg.payloads, outer=False)
        plaintext = b"".join(parts)
        body_len = cipher.sealed_length(len(plaintext))
        sk_len = GENERIC_PAYLOAD_HEADER_LEN + body_len
        if sk_len > MAX_PAYLOAD_LEN:
            raise EncodeError(f"Encrypted payload is {sk_len} bytes long")
        # The IKE header and the SK payload's generic header, in one pack.
        aad = _HEADER_AND_SK.pack(
            msg.spi_i,
            msg.spi_r,
            _SK,
            IKE_VERSION,
            msg.exchange,
            (_INITIATOR if msg.is_initiator else 0) | (_RESPONSE if msg.is_response else 0),
            msg.message_id,
            HEADER_LEN + sk_len,
            first,
            0,
            sk_len,
        )
        body = cipher.seal(aad, plaintext)
        if len(body) != body_len:
            raise EncodeError(f"cipher sealed {len(body)} bytes, announced {body_len}")
        return aad + body
    except (struct.error, OverflowError) as e:
        raise EncodeError(f"field out of range: {e}") from e


def _header(msg: Message, first: int, length: int) -> bytes:
    return HEADER.pack(
        msg.spi_i,
        msg.spi_r,
        first,
        IKE_VERSION,
        msg.exchange,
        (_INITIATOR if msg.is_initiator else 0) | (_RESPONSE if msg.is_response else 0),
        msg.message_id,
        length,
    )
