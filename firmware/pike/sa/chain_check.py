"""A message waiting for its peer's CERT chain to be checked off the event loop
(``CheckChain``; IKEv2's use: ``pike.ikev2.chain_wait``)."""

from __future__ import annotations

from dataclasses import dataclass

from pike.sa.actions import Address
from pike.wire.payloads import Message


@dataclass(slots=True)
class ChainWait:
    ref: int  # the CheckChain's
    message_id: int
    response: bool
    msg: Message
    data: bytes
    src: Address
    dst: Address
    certs: tuple[bytes, ...]
    anchors: tuple[bytes, ...]
    result: tuple[int, ...] | Exception | None = None
