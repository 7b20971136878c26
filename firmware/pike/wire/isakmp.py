"""IKEv1 messages <-> bytes (RFC 2408 §3): the payload chain and the encrypted body.

The ISAKMP header has the IKE header's 28-byte layout (``pike.wire.header``), with major
version 1 and the flags E (encryption), C (commit), A (authentication only). The generic
payload header is IKEv2's without the critical bit. With flag E, everything after the
header is ciphertext (RFC 2408 §3.1); the plaintext chain may end in padding (RFC 2409
§5.3), which the walker skips after the last payload.

Like the IKEv2 codec, decoding checks lengths before meaning and raises nothing but
``MalformedMessage``; its ``notify`` is the ISAKMP notify type (PAYLOAD-MALFORMED, ...).
Encoding a value that cannot be encoded is our bug: ``EncodeError``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from pike.wire import isakmp_bodies as b
from pike.wire import isakmp_sa
from pike.wire.buffer import Reader
from pike.wire.constants import GENERIC_PAYLOAD_HEADER_LEN, HEADER_LEN
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.header import HEADER, peek_header
from pike.wire.isakmp_constants import (
    ISAKMP_MAJOR_VERSION,
    ISAKMP_VERSION,
    FlagV1,
    NotifyV1,
    PayloadV1,
)
from pike.wire.isakmp_payloads import (
    V1Cert,
    V1CertReq,
    V1Delete,
    V1Hash,
    V1Id,
    V1Ke,
    V1Message,
    V1NatD,
    V1NatDDraft,
    V1NatOa,
    V1NatOaDraft,
    V1Nonce,
    V1Notify,
    V1Payload,
    V1Sa,
    V1Sig,
    V1Unknown,
    V1VendorId,
)

GENERIC = struct.Struct("!BxH")  # RFC 2408 §3.2: no critical bit in IKEv1
MAX_PAYLOAD_LEN = 0xFFFF
MAX_PADDING = 255  # RFC 2409 §5.3 padding after the last payload of an encrypted body
KNOWN_FLAGS = FlagV1.ENCRYPTION | FlagV1.COMMIT | FlagV1.AUTH_ONLY

Decoder = Callable[[bytes, int, int], V1Payload]


def _with_reader(decode: Callable[[Reader], Any]) -> Decoder:
    def decoder(data: bytes, start: int, end: int) -> V1Payload:
        r = Reader(data, start, end)
        payload: V1Payload = decode(r)
        if r.remaining:
            raise malformed(f"{r.remaining} bytes after the payload's fields")
        return payload

    return decoder


DECODERS: dict[int, Decoder] = {
    PayloadV1.SA: _with_reader(isakmp_sa.decode_sa),
    PayloadV1.KE: b.KE.decode,
    PayloadV1.ID: b.ID.decode,
    PayloadV1.CERT: b.CERT.decode,
    PayloadV1.CERTREQ: b.CERTREQ.decode,
    PayloadV1.HASH: b.HASH.decode,
    PayloadV1.SIG: b.SIG.decode,
    PayloadV1.NONCE: b.NONCE.decode,
    PayloadV1.NOTIFY: _with_reader(b.decode_notify),
    PayloadV1.DELETE: _with_reader(b.decode_delete),
    PayloadV1.VENDOR_ID: b.VENDOR_ID.decode,
    PayloadV1.NAT_D: b.NAT_D.decode,
    PayloadV1.NAT_OA: b.NAT_OA.decode,
    PayloadV1.NAT_D_DRAFT: b.NAT_D_DRAFT.decode,
    PayloadV1.NAT_OA_DRAFT: b.NAT_OA_DRAFT.decode,
}

ENCODERS: dict[type[Any], Callable[[Any], bytes]] = {
    V1Sa: isakmp_sa.encode_sa,
    V1Ke: b.KE.encode,
    V1Id: b.ID.encode,
    V1Cert: b.CERT.encode,
    V1CertReq: b.CERTREQ.encode,
    V1Hash: b.HASH.encode,
    V1Sig: b.SIG.encode,
    V1Nonce: b.NONCE.encode,
    V1Notify: b.encode_notify,
    V1Delete: b.encode_delete,
    V1VendorId: b.VENDOR_ID.encode,
    V1NatD: b.NAT_D.encode,
    V1NatDDraft: b.NAT_D_DRAFT.encode,
    V1NatOa: b.NAT_OA.encode,
    V1NatOaDraft: b.NAT_OA_DRAFT.encode,
    V1Unknown: lambda p: p.data,
}


def malformed(detail: str) -> MalformedMessage:
    return MalformedMessage("invalid_syntax", detail, NotifyV1.PAYLOAD_MALFORMED)


def _name(kind: int) -> str:
    try:
        return PayloadV1(kind).name
    except ValueError:
        return str(kind)


def decode_payloads_v1(
    data: bytes | memoryview, first: int, start: int = 0, *, padded: bool = False
) -> tuple[list[V1Payload], tuple[bytes, ...]]:
    """Walk the chain from ``start``; return the payloads and each one's raw bytes.
    ``padded``: bytes after the last payload are padding (an opened encrypted body)."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    pos = start
    payloads: list[V1Payload] = []
    raw: list[bytes] = []
    kind = first
    while kind:
        if end - pos < GENERIC_PAYLOAD_HEADER_LEN:
            raise MalformedMessage(
                "truncated", f"payload {kind} header at offset {pos}", NotifyV1.PAYLOAD_MALFORMED
            )
        next_kind, length = GENERIC.unpack_from(data, pos)
        if length < GENERIC_PAYLOAD_HEADER_LEN or pos + length > end:
            raise malformed(f"payload {_name(kind)} at offset {pos}: length {length}")
        body_start, payload_end = pos + GENERIC_PAYLOAD_HEADER_LEN, pos + length
        decoder = DECODERS.get(kind)
        if decoder is None:
            payloads.append(V1Unknown(kind, data[body_start:payload_end]))
        else:
            try:
                payloads.append(decoder(data, body_start, payload_end))
            except MalformedMessage as e:
                # Body decoders share IKEv2's specs: name the payload, use ISAKMP's notify.
                raise MalformedMessage(
                    e.reason, f"{_name(kind)}: {e.detail}", NotifyV1.PAYLOAD_MALFORMED
                ) from None
        raw.append(data[pos:payload_end])
        pos = payload_end
        kind = next_kind
    left = end - pos
    if left and not (padded and left <= MAX_PADDING):
        raise malformed(f"{left} bytes after the last payload")
    return payloads, tuple(raw)


def decode_v1(data: bytes) -> V1Message:
    """Header and payloads; an encrypted body stays in ``ciphertext`` (see ``decrypt_v1``)."""
    header = peek_header(data)
    if header.length != len(data):
        raise MalformedMessage(
            "bad_length", f"header says {header.length}, datagram is {len(data)}", None
        )
    if header.major_version != ISAKMP_MAJOR_VERSION:
        raise MalformedMessage(
            "invalid_major_version",
            f"major version {header.major_version}",
            NotifyV1.INVALID_MAJOR_VERSION,
        )
    if header.flags & ~KNOWN_FLAGS:
        raise MalformedMessage("invalid_flags", f"{header.flags:#x}", NotifyV1.INVALID_FLAGS)
    if header.spi_i == bytes(8):
        raise MalformedMessage("invalid_cookie", "zero initiator cookie", NotifyV1.INVALID_COOKIE)
    msg = V1Message(header.spi_i, header.spi_r, header.exchange, header.message_id, header.flags)
    if header.flags & FlagV1.ENCRYPTION:
        if len(data) == HEADER_LEN:
            raise malformed("encrypted message without a body")
        msg.ciphertext = data[HEADER_LEN:]
        msg.raw = (bytes((header.next_payload,)),)  # the first inner payload type
        return msg
    msg.payloads, msg.raw = decode_payloads_v1(data, header.next_payload, HEADER_LEN)
    return msg


def decrypt_v1(msg: V1Message, open_: Callable[[bytes], bytes]) -> V1Message:
    """Open ``msg.ciphertext`` with ``open_`` (CBC with the IV chain, RFC 2409 App. B) and
    decode the chain. IKEv1 has no ICV: a wrong key shows as garbage, so any failure of
    ``open_`` or of the chain is ``decryption_failed``, dropped without an answer (the HASH
    check after it is what authenticates)."""
    if not msg.encrypted or not msg.raw:
        raise malformed("not an encrypted message")
    first = msg.raw[0][0]
    try:
        plaintext = open_(msg.ciphertext)
        payloads, raw = decode_payloads_v1(plaintext, first, padded=True)
    except Exception as e:
        raise MalformedMessage("decryption_failed", type(e).__name__, None) from e
    return V1Message(
        msg.spi_i, msg.spi_r, msg.exchange, msg.message_id, msg.flags, payloads, b"", raw
    )


def encode_body(p: V1Payload) -> bytes:
    encoder = ENCODERS.get(type(p))
    if encoder is None:
        raise EncodeError(f"no encoder for {type(p).__name__}")
    return encoder(p)


def encode_chain(payloads: Sequence[V1Payload]) -> tuple[int, bytes]:
    """The first payload type and the chain's bytes (generic headers included)."""
    parts: list[bytes] = []
    for i, p in enumerate(payloads):
        body = encode_body(p)
        length = GENERIC_PAYLOAD_HEADER_LEN + len(body)
        if length > MAX_PAYLOAD_LEN:
            raise EncodeError(f"{type(p).__name__} is {length} bytes long")
        nxt = payloads[i + 1].TYPE if i + 1 < len(payloads) else 0
        parts.append(GENERIC.pack(nxt, length))
        parts.append(body)
    return (payloads[0].TYPE if payloads else 0), b"".join(parts)


def encode_v1(msg: V1Message, seal: Callable[[bytes], bytes] | None = None) -> bytes:
    """The datagram for ``msg``; with flag E, ``seal`` pads and encrypts the chain."""
    if len(msg.spi_i) != 8 or len(msg.spi_r) != 8:
        raise EncodeError("ISAKMP cookies are 8 bytes (RFC 2408 §3.1)")
    first, chain = encode_chain(msg.payloads)
    if msg.encrypted:
        if seal is None:
            raise EncodeError("an encrypted message needs a cipher")
        chain = seal(chain)
    try:
        head = HEADER.pack(
            msg.spi_i,
            msg.spi_r,
            first,
            ISAKMP_VERSION,
            msg.exchange,
            msg.flags,
            msg.message_id,
            HEADER_LEN + len(chain),
        )
    except struct.error as e:
        raise EncodeError(f"field out of range: {e}") from e
    return head + chain
