"""Delete the IKE SA with INFORMATIONAL {D(IKE)} (RFC 7296 §1.4.1); children go with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.ikev2.tasks.base import Task
from pike.sa.state import IkeState
from pike.wire.constants import ExchangeType, ProtocolId
from pike.wire.payloads import DeletePayload, Message

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


class IkeDelete(Task):
    sa: IkeSa

    name = "ike_delete"

    def __init__(
        self, sa: IkeSa, initiator: bool, *, rekeyed: bool = False, reason: str = ""
    ) -> None:
        super().__init__(sa, initiator)
        self.rekeyed = rekeyed  # the old SA after a rekey: its children live on elsewhere
        self.reason = reason  # why we delete it, when not just "terminated"

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        if self.initiator:
            if self.sa.state not in (IkeState.DELETING, IkeState.REKEYED):
                self.sa.set_state(IkeState.DELETING)
            msg.payloads.append(DeletePayload(ProtocolId.IKE))
        # The responder answers with an empty INFORMATIONAL.

    def process(self, msg: Message, now: float) -> None:
        """Initiator: any answer ends the SA. Responder: the SA ends once answered."""

    def completed(self, now: float) -> None:
        if self.rekeyed or self.sa.state == IkeState.REKEYED:
            reason = "rekeyed"
        else:
            reason = self.reason or ("terminated" if self.initiator else "peer_deleted")
        self.sa.fail(reason, now)


class Informational(Task):
    """A responder's answer to an INFORMATIONAL request without deletes: empty (liveness
    checks, RFC 7296 §1.4), or after logging the status notifies it carried."""

    sa: IkeSa

    name = "informational"

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        pass

    def process(self, msg: Message, now: float) -> None:
        pass
