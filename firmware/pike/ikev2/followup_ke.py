"""The additional key exchanges of a CREATE_CHILD_SA (RFC 9370 §2.2.4): IKE_FOLLOWUP_KE.

When the proposal a CREATE_CHILD_SA agreed on (CHILD_SA with PFS, or IKE SA rekey) names
additional key exchanges, the responder's answer carries N(ADDITIONAL_KEY_EXCHANGE) with a
link, and each additional exchange follows as IKE_FOLLOWUP_KE: SK {KEi(n),
N(ADDITIONAL_KEY_EXCHANGE)(link)} and SK {KEr(n), [N(ADDITIONAL_KEY_EXCHANGE)(next link)]}.
Keys are made only once all are done, from SK(0) | Ni | Nr | SK(1) | ... | SK(n).
"""

from __future__ import annotations

from pike.crypto.errors import CryptoError, KeyExchangeError
from pike.crypto.ke import KeyExchange
from pike.sa.context import Random
from pike.wire.constants import ERROR_NOTIFY_MAX, NotifyType, notify_name
from pike.wire.payloads import KePayload, Message, NotifyPayload

LINK_SIZE = 8  # our links are random, the peer's opaque (RFC 9370 §2.2.4)


class FollowupError(Exception):
    """The additional exchange failed; the text says why, for one log line."""


class Followup:
    """One CREATE_CHILD_SA's additional key exchanges, either role."""

    def __init__(self, methods: tuple[int, ...], random: Random) -> None:
        self.todo = list(methods)
        self.done: list[int] = []
        self.secrets: list[bytes] = []
        self.link = b""
        self._random = random
        self._ke: KeyExchange | None = None

    @property
    def finished(self) -> bool:
        return not self.todo

    @property
    def secret(self) -> bytes:
        """SK(1) | ... | SK(n), to follow Ni | Nr in the key derivation."""
        return b"".join(self.secrets)

    def _take_link(self, msg: Message) -> None:
        n = msg.notify(NotifyType.ADDITIONAL_KEY_EXCHANGE)
        self.link = n.data if n is not None else b""
        if self.todo and not self.link:
            raise FollowupError("no ADDITIONAL_KEY_EXCHANGE link for the next exchange")

    def _collect(self, secret: bytes) -> None:
        self.secrets.append(secret)
        self.done.append(self.todo.pop(0))

    # -- initiator -----------------------------------------------------------------------
    @classmethod
    def after_answer(cls, methods: tuple[int, ...], random: Random, msg: Message) -> Followup:
        """The exchanges a CREATE_CHILD_SA response agreed on, linked to its first one."""
        followup = cls(methods, random)
        followup.answered(msg)
        return followup

    def answered(self, msg: Message) -> None:
        """The CREATE_CHILD_SA response: its link to the first IKE_FOLLOWUP_KE."""
        self._take_link(msg)

    def build_i(self, msg: Message) -> None:
        method = self.todo[0]
        self._ke = KeyExchange(method, self._random)
        msg.payloads.append(KePayload(method, self._ke.public_bytes()))
        msg.payloads.append(NotifyPayload(NotifyType.ADDITIONAL_KEY_EXCHANGE, self.link))

    def process_i(self, msg: Message) -> None:
        for n in msg.all(NotifyPayload):
            if n.notify_type <= ERROR_NOTIFY_MAX:
                raise FollowupError(f"peer answered with {notify_name(n.notify_type)}")
        ke = msg.first(KePayload)
        if ke is None or self._ke is None or ke.group != self.todo[0]:
            raise FollowupError(f"response without a KE payload of method {self.todo[0]}")
        try:
            secret = self._ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise FollowupError(str(e)) from e
        self._ke = None
        self._collect(secret)
        self._take_link(msg)

    # -- responder -----------------------------------------------------------------------
    def new_link(self) -> bytes:
        self.link = self._random(LINK_SIZE)
        return self.link

    def offer_link(self, msg: Message) -> bytes:
        """The CREATE_CHILD_SA answer's link to the first IKE_FOLLOWUP_KE."""
        link = self.new_link()
        msg.payloads.append(NotifyPayload(NotifyType.ADDITIONAL_KEY_EXCHANGE, link))
        return link

    def process_r(self, msg: Message) -> None:
        ke = msg.first(KePayload)
        if ke is None or ke.group != self.todo[0]:
            raise FollowupError(f"request without a KE payload of method {self.todo[0]}")
        self._ke = KeyExchange(ke.group, self._random, responder=True)
        try:
            secret = self._ke.shared_secret(ke.data)
        except (KeyExchangeError, CryptoError) as e:
            raise FollowupError(str(e)) from e
        self._collect(secret)

    def build_r(self, msg: Message) -> None:
        """Our KE payload, and the link to the next exchange if one follows."""
        assert self._ke is not None
        msg.payloads.append(KePayload(self._ke.group, self._ke.public_bytes()))
        self._ke = None
        if self.todo:
            msg.payloads.append(NotifyPayload(NotifyType.ADDITIONAL_KEY_EXCHANGE, self.new_link()))
