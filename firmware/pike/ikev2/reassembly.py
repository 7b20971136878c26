"""Reassembly of RFC 7383 fragments (SKF) into the whole message, per IKE SA.

What a peer can make us hold here is bounded three ways: fragments are taken only when
both sides announced fragmentation (IKEV2_FRAGMENTATION_SUPPORTED) and only for the
message ID the exchange expects next, at most MAX_FRAGMENTS of them, and at most
``max_packet`` bytes of plaintext per message (strongSwan's charon.max_packet, 10 000 by
default): anything else is a counted drop.
"""

from __future__ import annotations

from pike.ikev2.ike_sa import IkeSa
from pike.wire.errors import MalformedMessage
from pike.wire.fragments import open_fragment, reassemble
from pike.wire.payloads import Message

MAX_FRAGMENTS = 64  # bounds the reassembly state a peer can make us hold


def _expected(sa: IkeSa, msg: Message) -> bool:
    """The message ID is the next request (or the last, retransmitted), or the response
    to our outstanding request."""
    tasks = sa.tasks
    if msg.is_response:
        return bool(tasks.active) and msg.message_id == tasks.mid_out
    return msg.message_id in (tasks.mid_in, tasks.mid_in - 1)


def collect_fragment(sa: IkeSa, data: bytes, msg: Message) -> Message | None:
    """Collect RFC 7383 fragments; the whole message once the last one is in."""
    assert sa.cipher_in is not None
    if not sa.frag_peer:
        raise MalformedMessage("fragment_not_negotiated", "SKF without fragmentation announced")
    if not _expected(sa, msg):
        raise MalformedMessage("fragment_unexpected_id", f"SKF of message {msg.message_id}")
    skf, chunk = open_fragment(data, msg, sa.cipher_in)  # authenticated before kept
    total = skf.total_fragments
    if not 1 <= skf.fragment_number <= total <= MAX_FRAGMENTS:
        raise MalformedMessage("invalid_fragment", f"{skf.fragment_number}/{total}")
    key = (msg.message_id, msg.is_response)
    have_total, first, chunks = (sa.fragments or {}).get(key, (total, 0, {}))
    if have_total != total:
        # A retransmission with other fragment sizes: start over (RFC 7383 §2.6.2).
        first, chunks = 0, {}
    if skf.fragment_number in chunks:
        return None  # a duplicate adds nothing
    limit = sa.ctx.config.daemon.max_packet
    held = sum(len(c) for c in chunks.values()) + len(chunk)
    if held > limit:
        sa.fragments = None
        raise MalformedMessage("message_too_large", f"fragments past max_packet {limit} bytes")
    if skf.fragment_number == 1:
        first = skf.first_payload
    chunks[skf.fragment_number] = chunk
    sa.fragments = {key: (total, first, chunks)}  # one message at a time (window 1)
    if len(chunks) < total:
        return None
    sa.fragments = None
    return reassemble(msg, first, [chunks[i] for i in range(1, total + 1)])
