"""IKE message fragmentation (RFC 7383): split a message into SKF payloads, open each
fragment, and decode the reassembled inner payloads.

Collecting fragments (which message, which numbers arrived, when to give up) is the
engine's job; this module only knows the bytes. Each fragment is sealed on its own: its
associated data is the IKE header plus the whole SKF header (generic header, Fragment
Number, Total Fragments), i.e. every byte before the IV (RFC 7383 §2.5).
"""

from __future__ import annotations

from collections.abc import Sequence

from pike.wire.bodies import SKF_HEADER, invalid
from pike.wire.codec import GENERIC, MAX_PAYLOAD_LEN, decode_inner, encode_payloads
from pike.wire.constants import HEADER_LEN, IKE_VERSION, HeaderFlag, PayloadType
from pike.wire.errors import EncodeError, MalformedMessage
from pike.wire.header import HEADER
from pike.wire.payloads import Message, SkfPayload
from pike.wire.sk import SkCrypter

SKF_OVERHEAD = HEADER_LEN + GENERIC.size + SKF_HEADER.size  # bytes before the IV
MAX_FRAGMENTS = 0xFFFF  # Total Fragments is 16 bits


def _chunk_size(cipher: SkCrypter, max_datagram: int) -> int:
    """Largest plaintext chunk whose fragment fits in ``max_datagram`` bytes."""
    room = max_datagram - SKF_OVERHEAD
    n = room
    while n > 0 and cipher.sealed_length(n) > room:
        n -= 1
    if n <= 0:
        raise EncodeError(f"no room for a fragment in {max_datagram} bytes")
    return n


def encode_fragments(msg: Message, cipher: SkCrypter, max_datagram: int) -> list[bytes]:
    """The datagrams carrying ``msg`` (whose payloads are the inner ones) as SKF fragments,
    each at most ``max_datagram`` bytes (IKE header included, UDP/IP and non-ESP marker
    not)."""
    if len(msg.spi_i) != 8 or len(msg.spi_r) != 8:
        raise EncodeError("IKE SPIs are 8 bytes (RFC 7296 §3.1)")
    first, parts = encode_payloads(msg.payloads, outer=False)
    plaintext = b"".join(parts)
    size = _chunk_size(cipher, max_datagram)
    chunks = [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]
    total = len(chunks)
    if total > MAX_FRAGMENTS:
        raise EncodeError(f"{total} fragments")
    flags = (HeaderFlag.INITIATOR if msg.is_initiator else 0) | (
        HeaderFlag.RESPONSE if msg.is_response else 0
    )
    datagrams = []
    for number, chunk in enumerate(chunks, start=1):
        body_len = cipher.sealed_length(len(chunk))
        skf_len = GENERIC.size + SKF_HEADER.size + body_len
        if skf_len > MAX_PAYLOAD_LEN:
            raise EncodeError(f"SKF payload is {skf_len} bytes long")
        aad = (
            HEADER.pack(
                msg.spi_i,
                msg.spi_r,
                PayloadType.SKF,
                IKE_VERSION,
                msg.exchange,
                flags,
                msg.message_id,
                HEADER_LEN + skf_len,
            )
            # RFC 7383 §2.5: Next Payload names the first inner payload in fragment 1 only.
            + GENERIC.pack(first if number == 1 else 0, 0, skf_len)
            + SKF_HEADER.pack(number, total)
        )
        body = cipher.seal(aad, chunk)
        if len(body) != body_len:
            raise EncodeError(f"cipher sealed {len(body)} bytes, announced {body_len}")
        datagrams.append(aad + body)
    return datagrams


def open_fragment(data: bytes, msg: Message, cipher: SkCrypter) -> tuple[SkfPayload, bytes]:
    """Check and decrypt one fragment (``msg`` decoded from ``data``); returns its SKF
    payload and plaintext chunk. A failing ``cipher.open`` (any ``Exception``) becomes
    ``integrity_check_failed`` with no notify: drop it silently (RFC 7383 §2.6.1)."""
    skf = msg.payloads[-1] if msg.payloads else None
    if not isinstance(skf, SkfPayload):
        raise invalid("no Encrypted Fragment payload to open")
    aad = data[: len(data) - len(skf.body)]
    try:
        chunk = cipher.open(aad, skf.body)
    except Exception as e:
        raise MalformedMessage("integrity_check_failed", type(e).__name__, None) from e
    return skf, chunk


def reassemble(msg: Message, first_payload: int, chunks: Sequence[bytes]) -> Message:
    """Decode the inner payloads of all fragments' plaintext, in fragment-number order;
    ``first_payload`` is fragment 1's Next Payload. Returns ``msg`` with them, encrypted."""
    return Message(
        msg.spi_i,
        msg.spi_r,
        msg.exchange,
        msg.message_id,
        msg.is_initiator,
        msg.is_response,
        decode_inner(b"".join(chunks), first_payload),
        encrypted=True,
    )
