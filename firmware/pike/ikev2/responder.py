"""Requests as responder: new IKE SAs from IKE_SA_INIT, and which tasks answer the
requests of an existing IKE SA.

An IKE_SA_INIT request finds its connections by address, is answered with a stateless
notify where we take no state (no config, cookies under load, a malformed request), and
otherwise creates a half-open IKE SA that HALF_OPEN_TIMEOUT bounds (see timers.py).
"""

from __future__ import annotations

import logging

from pike.ikev2.cookies import CookieJar
from pike.ikev2.ike_sa import IkeSa, Ikev2Context
from pike.ikev2.log import log
from pike.ikev2.tasks.base import Task
from pike.ikev2.tasks.child_create import ChildCreate
from pike.ikev2.tasks.child_delete import ChildDelete
from pike.ikev2.tasks.ike_auth import IkeAuth
from pike.ikev2.tasks.ike_delete import IkeDelete, Informational
from pike.ikev2.tasks.ike_init import IkeInit
from pike.ikev2.tasks.ike_intermediate import IkeIntermediate
from pike.ikev2.tasks.ike_mobike import MobikeUpdate, carries_mobike
from pike.ikev2.tasks.ike_rekey import IkeRekey
from pike.policy.config import Config
from pike.sa.actions import Address, SendDatagram
from pike.sa.admission import Verdict
from pike.sa.conn_index import Candidates, index_of
from pike.sa.context import Random
from pike.sa.state import IkeState
from pike.wire.codec import decode_message, encode_message
from pike.wire.constants import ExchangeType, NotifyType, ProtocolId
from pike.wire.errors import MalformedMessage
from pike.wire.header import Header
from pike.wire.payloads import DeletePayload, Message, NotifyPayload, SaPayload
from pike.wire.rules import check_payloads

# Enum members compared per request: a member lookup is slow on Python 3.11
_DESTROYED = IkeState.DESTROYED
_CONNECTING = IkeState.CONNECTING
_IKE_AUTH = ExchangeType.IKE_AUTH
_COOKIE_VERDICT = Verdict.COOKIE
_IKE_INTERMEDIATE = ExchangeType.IKE_INTERMEDIATE
_IKE_FOLLOWUP_KE = ExchangeType.IKE_FOLLOWUP_KE
_INFORMATIONAL = ExchangeType.INFORMATIONAL
_CREATE_CHILD_SA = ExchangeType.CREATE_CHILD_SA
_IKE = ProtocolId.IKE
_ESP = ProtocolId.ESP
_ADDITIONAL_KEY_EXCHANGE = NotifyType.ADDITIONAL_KEY_EXCHANGE

HalfOpenKey = tuple[bytes, str, int]  # (initiator's SPI, its address, its port)


class InitResponder:
    """IKE_SA_INIT requests: the half-open IKE SAs and the cookie secret."""

    def __init__(self, ctx: Ikev2Context, sas: dict[bytes, IkeSa], random: Random) -> None:
        self.ctx = ctx
        self.sas = sas  # the engine's table, by our SPI
        # Only CONNECTING SAs (``forget`` takes the others out after each step), so its
        # size is the half-open count the cookie threshold compares with.
        self.half_open: dict[HalfOpenKey, IkeSa] = {}
        self._key_of: dict[IkeSa, HalfOpenKey] = {}
        self._cookies = CookieJar(random)

    def request(self, hdr: Header, data: bytes, src: Address, dst: Address, now: float) -> None:
        key = (hdr.spi_i, src[0], src[1])
        existing = self.half_open.get(key)
        if existing is not None and existing.state != _DESTROYED:
            # (a half-open SA keeps the IKE_SA_INIT request it answered: AUTH signs it)
            if existing.init_request != data:
                # Same SPIi, address and port, other bytes: not a retransmission. Answering
                # it with the cached response would reflect our larger answer at whoever
                # the source pretends to be (a 28-byte header drew up to 22 times more).
                raise MalformedMessage("retransmit_mismatch", "IKE_SA_INIT of a half-open SA")
            # A retransmitted IKE_SA_INIT: the task manager re-sends its cached response.
            existing.tasks.on_request(decode_message(data), data, [], now)
            return
        try:
            msg = decode_message(data)
            check_payloads(msg.exchange, False, msg.payloads, False)
        except MalformedMessage as e:
            if e.notify is not None:
                req = Message(hdr.spi_i, bytes(8), hdr.exchange, hdr.message_id, True, False)
                stateless_notify(self.ctx, req, src, dst, e.notify, notify_data(e))
            raise
        candidates = connections_for(self.ctx.config, dst[0], src[0])
        if not candidates:
            self.ctx.log_limit.log(
                log, logging.INFO, "no_config", now,
                "no IKEv2 connection for %s...%s, sending NO_PROPOSAL_CHOSEN", dst[0], src[0],
            )  # fmt: skip
            stateless_notify(self.ctx, msg, src, dst, NotifyType.NO_PROPOSAL_CHOSEN)
            self.ctx.counters.drop("no_config")
            return
        cookie = self._cookies.valid(msg, src, now)
        daemon = self.ctx.config.daemon
        admission = self.ctx.admission
        verdict = admission.admit(daemon, src[0], now, cookie=cookie, ike_sas=len(self.sas))
        if verdict is _COOKIE_VERDICT:
            made = self._cookies.make(msg, src, now)
            stateless_notify(self.ctx, msg, src, dst, NotifyType.COOKIE, made)
            self.ctx.counters.drop("cookie_required")
            return
        sa = IkeSa(
            self.ctx,
            self.ctx.unique_id(),
            False,
            hdr.spi_i,
            dst,
            src,
            candidates.conns[0],
            spi_r=self.ctx.ike_spi(),
            created_at=now,
        )
        sa.candidates = candidates
        sa.set_state(_CONNECTING, now)
        self.sas[sa.spi_r] = sa
        self.half_open[key] = sa
        self._key_of[sa] = key
        admission.opened(src[0], sa.unique_id, cookie)
        sa.tasks.on_request(
            msg,
            data,
            [IkeInit(sa, False)],
            now,
        )

    def forget(self, sa: IkeSa) -> None:
        """``sa`` is no longer half-open (established or gone)."""
        key = self._key_of.pop(sa, None)
        if key is None:
            return  # not half-open (any more): asked after every step of every SA
        if self.half_open.get(key) is sa:
            del self.half_open[key]
        self.ctx.admission.closed(sa.unique_id)


def responder_tasks(sa: IkeSa, msg: Message) -> list[Task]:
    """The tasks that answer a request of an IKE SA past IKE_SA_INIT."""
    if msg.exchange == _IKE_AUTH:
        return [IkeAuth(sa, False), ChildCreate(sa, False)]
    if msg.exchange == _IKE_INTERMEDIATE:
        return [IkeIntermediate(sa, False)]
    if msg.exchange == _IKE_FOLLOWUP_KE:
        # the CREATE_CHILD_SA task the link names continues (RFC 9370 §2.2.4)
        link = msg.notify(_ADDITIONAL_KEY_EXCHANGE)
        waiting = sa.followups.pop(link.data, None) if link and sa.followups else None
        return [waiting] if waiting is not None else [_Refuse(sa, NotifyType.STATE_NOT_FOUND)]
    if msg.exchange == _INFORMATIONAL:
        deletes = msg.all(DeletePayload)
        tasks: list[Task] = []
        if any(d.protocol == _IKE for d in deletes):
            tasks.append(IkeDelete(sa, False))
        elif any(d.protocol == _ESP for d in deletes):
            tasks.append(ChildDelete(sa, False))
        elif carries_mobike(msg):
            tasks.append(MobikeUpdate(sa, False))
        else:
            tasks.append(Informational(sa, False))
        return tasks
    if msg.exchange == _CREATE_CHILD_SA:
        sa_payload = msg.first(SaPayload)
        if sa_payload is not None and any(p.protocol == _IKE for p in sa_payload.proposals):
            return [IkeRekey(sa, False)]
        return [ChildCreate(sa, False, exchange=_CREATE_CHILD_SA)]
    return [_Refuse(sa, NotifyType.NO_ADDITIONAL_SAS)]


class _Refuse(Task):
    """Answer an exchange we do not take part in yet with one notify (non-fatal)."""

    name = "refuse"

    def __init__(self, sa: IkeSa, notify: int) -> None:
        super().__init__(sa, False)
        self.notify = notify

    @property
    def exchange(self) -> int:
        return ExchangeType.CREATE_CHILD_SA

    def process(self, msg: Message, now: float) -> None:
        pass

    def build(self, msg: Message, now: float) -> None:
        msg.payloads.append(NotifyPayload(self.notify))


def connections_for(config: Config, local: str, remote: str) -> Candidates:
    """The IKEv2 connections whose configured addresses admit this pair (indexed)."""
    return index_of(config).candidates(2, local, remote)


def stateless_notify(
    ctx: Ikev2Context, req: Message, src: Address, dst: Address, notify: int, data: bytes = b""
) -> None:
    """Answer ``req`` with one notify from no IKE SA (responder SPI zero)."""
    resp = Message(req.spi_i, bytes(8), req.exchange, req.message_id, False, True)
    resp.payloads.append(NotifyPayload(notify, data))
    ctx.emit(SendDatagram(encode_message(resp), dst, src))


def notify_data(e: MalformedMessage) -> bytes:
    """UNSUPPORTED_CRITICAL_PAYLOAD names the payload type in one octet (RFC 7296 §3.10.1)."""
    if e.notify == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD and e.detail.isdigit():
        return bytes((int(e.detail) & 0xFF,))
    return b""
