"""Delete CHILD_SAs with INFORMATIONAL {D(ESP)} (RFC 7296 §1.4.1).

Each side names the SPI it receives on; the answer names the other direction's SPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.ikev2.log import log
from pike.ikev2.tasks.base import Task
from pike.sa.child_sa import ChildSa
from pike.sa.state import ChildState
from pike.wire.constants import ExchangeType, ProtocolId
from pike.wire.payloads import DeletePayload, Message

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


class ChildDelete(Task):
    sa: IkeSa

    name = "child_delete"

    def __init__(
        self, sa: IkeSa, initiator: bool, child: ChildSa | None = None, *, rekeyed: bool = False
    ) -> None:
        super().__init__(sa, initiator)
        self.child = child
        self.rekeyed = rekeyed  # a successor uses the same policies: keep them
        self.deleted: list[ChildSa] = []

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        if self.initiator:
            assert self.child is not None
            if self.child.state in (ChildState.INSTALLED, ChildState.REKEYED, ChildState.FAILED):
                self.child.set_state(ChildState.DELETING, self.sa.name)
            spi = self.child.spi_in.to_bytes(4, "big")
            msg.payloads.append(DeletePayload(ProtocolId.ESP, (spi,)))
            return
        if self.deleted:
            spis = tuple(c.spi_in.to_bytes(4, "big") for c in self.deleted)
            msg.payloads.append(DeletePayload(ProtocolId.ESP, spis))
        # Out of the kernel before the answer leaves: once the peer has it, the peer removes
        # its inbound SA, so we must not send on the old outbound SA any longer.
        for child in self.deleted:
            self.sa.remove_child(child, "deleted by peer")

    def process(self, msg: Message, now: float) -> None:
        if self.initiator:
            assert self.child is not None
            self.sa.remove_child(self.child, "deleted", keep_policies=self.rekeyed)
            return
        for d in msg.all(DeletePayload):
            if d.protocol != ProtocolId.ESP:
                continue
            for spi in d.spis:
                value = int.from_bytes(spi, "big")
                child = next((c for c in self.sa.children if c.spi_out == value), None)
                if child is None:
                    log.info("%s: peer deletes unknown CHILD_SA %08x", self.sa.tag(), value)
                    continue
                self.sa.ctx.child_closed(self.sa, child)
                self.deleted.append(child)
