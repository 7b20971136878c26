"""IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (RFC 7383 §2.3).

Both sides announce support; only when both did may later encrypted messages that exceed
``fragment_size`` travel as Encrypted Fragment payloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.ikev2.tasks.base import Task
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_IKEV2_FRAGMENTATION_SUPPORTED = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
# The notify as sent: an immutable value every IKE_SA_INIT shares (not built per message)
_SUPPORTED = NotifyPayload(_IKEV2_FRAGMENTATION_SUPPORTED)


class IkeFrag(Task):
    sa: IkeSa

    name = "ike_frag"

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_SA_INIT

    def _enabled(self) -> bool:
        return self.sa.conn is not None and self.sa.conn.fragmentation

    def build(self, msg: Message, now: float) -> None:
        # The responder announces it only in answer to the initiator's announcement.
        if self._enabled() and (self.initiator or self.sa.frag_peer):
            msg.payloads.append(_SUPPORTED)

    def process(self, msg: Message, now: float) -> None:
        peer = msg.notify(_IKEV2_FRAGMENTATION_SUPPORTED) is not None
        self.sa.frag_peer = peer and self._enabled()
