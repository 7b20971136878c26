"""The responder's view of an initiator's IKE_AUTH request, re-sealed after a change.

A hostile peer can complete IKE_SA_INIT and then send anything inside SK with valid keys:
these helpers decrypt the initiator's real IKE_AUTH with the responder's keys, let a test
(or the fuzzer) change the plaintext payloads, and seal the result with the initiator's
keys, so that it reaches the responder's tasks instead of dying at the integrity check.
"""

from __future__ import annotations

from dataclasses import dataclass

from pike.ikev2.ike_sa import IkeSa
from pike.sa.actions import SendDatagram
from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.payloads import Message, Payload

from .pair import Node, deliver, make_pair


@dataclass
class AuthRequest:
    initiator: Node
    responder: Node
    sealer: IkeSa  # the initiator's IKE SA: its keys seal what the responder opens
    datagram: SendDatagram  # the initiator's real IKE_AUTH request
    message: Message  # its plaintext

    def seal(self, payloads: list[Payload]) -> bytes:
        msg = Message(
            self.message.spi_i,
            self.message.spi_r,
            self.message.exchange,
            self.message.message_id,
            self.message.is_initiator,
            self.message.is_response,
            list(payloads),
            True,
        )
        assert self.sealer.cipher_out is not None
        return encode_message(msg, self.sealer.cipher_out)

    def send(self, data: bytes, now: float = 0.0) -> list[SendDatagram]:
        """``data`` to the responder from the initiator's address; its answers."""
        d = self.datagram
        self.responder.now = now
        self.responder.engine.receive_datagram(data, d.src, d.dst, now)
        return self.responder.drain()


def auth_request(a_text: str | None = None, b_text: str | None = None) -> AuthRequest:
    """Two engines through IKE_SA_INIT; the initiator's IKE_AUTH caught before delivery."""
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    (auth,) = deliver(deliver(a.drain(), b, 0.0), a, 0.0)
    (bsa,) = b.engine.sas.values()
    (asa,) = a.engine.sas.values()
    assert bsa.cipher_in is not None
    msg = decrypt_message(auth.data, decode_message(auth.data), bsa.cipher_in)
    return AuthRequest(a, b, asa, auth, msg)
