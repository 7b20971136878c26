"""IKE_INTERMEDIATE exchanges (RFC 9242) carrying the additional key exchanges of RFC 9370.

After IKE_SA_INIT, each additional key exchange the proposal agreed on (ADDKE1..7, NONE
skipped) runs in its own IKE_INTERMEDIATE exchange: HDR, SK {KEi(n)} and HDR, SK {KEr(n)},
protected with the keys of the exchange before. Once both halves are in, the IKE SA's keys
are derived anew from SK_d and the new shared secret (``IkeSa.fold_key``). Every
IKE_INTERMEDIATE message is chained into IntAuth with the keys that protected it, and
IKE_AUTH's AUTH covers IntAuth (``IkeSa.add_int_auth``, ``IkeSa.int_auth``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.crypto.errors import CryptoError, KeyExchangeError
from pike.crypto.ids import TransformType
from pike.crypto.ke import KeyExchange
from pike.crypto.proposal import Algorithm, algorithm_name
from pike.ikev2.log import log
from pike.ikev2.tasks.base import RespondError, Task, TaskFailed
from pike.sa.state import IkeState
from pike.wire.codec import int_auth_data
from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType, notify_name
from pike.wire.payloads import KePayload, Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


def method_name(method: int) -> str:
    """``mlkem768``, ``x25519``: the keyword of a key exchange method."""
    return algorithm_name(Algorithm(TransformType.KE, method))


class IkeIntermediate(Task):
    """The initiator's task runs all pending additional key exchanges, one exchange each;
    the responder gets one task per request."""

    sa: IkeSa

    name = "ike_intermediate"

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.ke: KeyExchange | None = None
        self.shared = b""
        self.method = 0

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_INTERMEDIATE

    def done(self) -> bool:
        return not self.sa.addke_todo

    def _finish(self) -> None:
        sa = self.sa
        sa.fold_key(self.shared)
        self.shared = b""
        sa.addke_done, sa.addke_todo = (*sa.addke_done, sa.addke_todo[0]), sa.addke_todo[1:]
        log.info(
            "%s: additional key exchange %d (%s) done, IKE SA keys derived anew",
            sa.tag(),
            len(sa.addke_done),
            method_name(self.method),
        )

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg)
            return
        sa = self.sa
        self.method = sa.addke_todo[0]
        self.ke = KeyExchange(self.method, sa.ctx.random)
        msg.payloads.append(KePayload(self.method, self.ke.public_bytes()))
        sa.add_int_auth(int_auth_data(msg), from_initiator=True)

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg)
            return
        sa = self.sa
        for n in msg.all(NotifyPayload):
            if n.notify_type <= ERROR_NOTIFY_MAX:
                raise TaskFailed(
                    "peer_error",
                    f"IKE_INTERMEDIATE answered with notify {notify_name(n.notify_type)}",
                )
        ke = msg.first(KePayload)
        if ke is None or self.ke is None or ke.group != self.method:
            got = "none" if ke is None else str(ke.group)
            raise TaskFailed("invalid_ke_payload", f"IKE_INTERMEDIATE KE method {got}")
        sa.add_int_auth(int_auth_data(msg), from_initiator=False)
        try:
            self.shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise TaskFailed("invalid_ke_payload", str(e)) from e
        self.ke = None
        self._finish()

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message) -> None:
        sa = self.sa
        if not sa.intermediate or not sa.addke_todo:
            # an established SA survives a stray one (RFC 9242 allows it only before AUTH)
            established = sa.state == IkeState.ESTABLISHED
            raise RespondError(
                NotifyType.INVALID_SYNTAX,
                fatal=not established,
                detail="IKE_INTERMEDIATE not expected",
            )
        self.method = sa.addke_todo[0]
        ke = msg.first(KePayload)
        if ke is None or ke.group != self.method:
            got = "none" if ke is None else str(ke.group)
            raise RespondError(
                NotifyType.INVALID_SYNTAX,
                detail=f"IKE_INTERMEDIATE KE method {got}, agreed {method_name(self.method)}",
            )
        sa.add_int_auth(int_auth_data(msg), from_initiator=True)
        self.ke = KeyExchange(self.method, sa.ctx.random, responder=True)
        try:
            self.shared = self.ke.shared_secret(ke.data)
        except (KeyExchangeError, CryptoError) as e:
            raise RespondError(NotifyType.INVALID_SYNTAX, detail=str(e)) from e

    def _build_r(self, msg: Message) -> None:
        assert self.ke is not None
        msg.payloads.append(KePayload(self.method, self.ke.public_bytes()))
        self.sa.add_int_auth(int_auth_data(msg), from_initiator=False)

    def completed(self, now: float) -> None:
        # The response went out under the old keys; the next message uses the new ones.
        if not self.initiator and self.shared:
            self._finish()
