"""IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (RFC 7383 §2.3): steps of the ike_init
task, both roles.

Both sides announce support; only when both did may later encrypted messages that exceed
``fragment_size`` travel as Encrypted Fragment payloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.wire.constants import NotifyType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_IKEV2_FRAGMENTATION_SUPPORTED = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
# The notify as sent: an immutable value every IKE_SA_INIT shares (not built per message)
_SUPPORTED = NotifyPayload(_IKEV2_FRAGMENTATION_SUPPORTED)


def announce_frag(sa: IkeSa, msg: Message, initiator: bool) -> None:
    """Our announcement; the responder's only in answer to the initiator's."""
    # (the responder's frag_peer: the peer announced it and our connection allows it)
    wanted = sa.conn is not None and sa.conn.fragmentation if initiator else sa.frag_peer
    if wanted:
        msg.payloads.append(_SUPPORTED)


def note_frag(sa: IkeSa, msg: Message) -> None:
    """Both announced it (the peer in ``msg``, our connection allows it)."""
    conn = sa.conn
    sa.frag_peer = (
        conn is not None
        and conn.fragmentation
        and msg.notify(_IKEV2_FRAGMENTATION_SUPPORTED) is not None
    )
