"""Delete the IKE SA with INFORMATIONAL {D(IKE)} (RFC 7296 §1.4.1); children go with it."""

from __future__ import annotations

from pike.ikev2.state import IkeState
from pike.ikev2.tasks.base import Task
from pike.wire.constants import ExchangeType, ProtocolId
from pike.wire.payloads import DeletePayload, Message


class IkeDelete(Task):
    name = "ike_delete"

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        if self.initiator:
            if self.sa.state != IkeState.DELETING:
                self.sa.set_state(IkeState.DELETING)
            msg.payloads.append(DeletePayload(ProtocolId.IKE))
        # The responder answers with an empty INFORMATIONAL.

    def process(self, msg: Message, now: float) -> None:
        """Initiator: any answer ends the SA. Responder: the SA ends once answered."""

    def completed(self, now: float) -> None:
        self.sa.fail("terminated" if self.initiator else "peer_deleted", now)


class Informational(Task):
    """A responder's answer to an INFORMATIONAL request without deletes: empty (liveness
    checks, RFC 7296 §1.4), or after logging the status notifies it carried."""

    name = "informational"

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        pass

    def process(self, msg: Message, now: float) -> None:
        pass
