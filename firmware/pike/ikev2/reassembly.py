"""Reassembly of RFC 7383 fragments (SKF) into the whole message, per IKE SA."""

from __future__ import annotations

from pike.ikev2.ike_sa import IkeSa
from pike.wire.errors import MalformedMessage
from pike.wire.fragments import open_fragment, reassemble
from pike.wire.payloads import Message

MAX_FRAGMENTS = 64  # bounds the reassembly state a peer can make us hold


def collect_fragment(sa: IkeSa, data: bytes, msg: Message) -> Message | None:
    """Collect RFC 7383 fragments; the whole message once the last one is in."""
    assert sa.cipher_in is not None
    skf, chunk = open_fragment(data, msg, sa.cipher_in)  # authenticated before kept
    total = skf.total_fragments
    if not 1 <= skf.fragment_number <= total <= MAX_FRAGMENTS:
        raise MalformedMessage("invalid_fragment", f"{skf.fragment_number}/{total}")
    key = (msg.message_id, msg.is_response)
    have_total, first, chunks = sa.fragments.get(key, (total, 0, {}))
    if have_total != total:
        # A retransmission with other fragment sizes: start over (RFC 7383 §2.6.2).
        first, chunks = 0, {}
    if skf.fragment_number == 1:
        first = skf.first_payload
    chunks.setdefault(skf.fragment_number, chunk)
    sa.fragments = {key: (total, first, chunks)}  # one message at a time (window 1)
    if len(chunks) < total:
        return None
    del sa.fragments[key]
    return reassemble(msg, first, [chunks[i] for i in range(1, total + 1)])
