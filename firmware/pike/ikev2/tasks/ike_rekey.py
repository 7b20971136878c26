"""Rekey the IKE SA with CREATE_CHILD_SA { SA, Ni, KEi } (RFC 7296 §1.3.2, §2.18).

The new IKE SA takes over every CHILD_SA; the side that initiated the rekey then deletes
the old IKE SA. SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old PRF.
Additional key exchanges (RFC 9370) follow in IKE_FOLLOWUP_KE; their secrets come after
Ni | Nr, and the new IKE SA exists only once they are done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.crypto.errors import KeyExchangeError
from pike.crypto.ke import KeyExchange
from pike.crypto.proposal import group_name
from pike.ikev2.followup_ke import Followup, FollowupError
from pike.ikev2.log import log
from pike.ikev2.negotiate import check_reply, groups_of, select, to_wire
from pike.ikev2.tasks.base import RespondError, RestartExchange, Task
from pike.ikev2.tasks.followup_steps import answer, offer, take_answer, take_request
from pike.sa.context import NONCE_SIZE
from pike.sa.state import IkeState
from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType, ProtocolId
from pike.wire.payloads import (
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
)

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


class IkeRekey(Task):
    sa: IkeSa

    name = "ike_rekey"

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.new: IkeSa | None = None
        self.group: int | None = None
        self.ke: KeyExchange | None = None
        self.ni = b""
        self.nr = b""
        self.followup: Followup | None = None  # RFC 9370 additional key exchanges
        self.shared = b""  # SK(0), kept until they are done

    @property
    def exchange(self) -> int:
        if self.followup is not None and self.initiator:
            return ExchangeType.IKE_FOLLOWUP_KE
        return ExchangeType.CREATE_CHILD_SA

    def done(self) -> bool:
        return self.followup is None or self.followup.finished

    def _spawn(self, initiator: bool, spi_i: bytes, spi_r: bytes) -> IkeSa:
        from pike.ikev2.ike_sa import IkeSa

        old = self.sa
        new = IkeSa(
            old.ctx,
            old.ctx.unique_id(),
            initiator,
            spi_i,
            old.local,
            old.remote,
            old.conn,
            spi_r=spi_r,
        )
        new.nat_local, new.nat_remote = old.nat_local, old.nat_remote
        # what IKE_SA_INIT announced holds for the successor (RFC 7383 §2.3: fragmentation)
        new.frag_peer = old.frag_peer
        new.ppk_used = old.ppk_used  # its keys come from SK_d', which holds the PPK
        new.my_id, new.peer_id = old.my_id, old.peer_id
        new.mobike, new.peer_addrs = old.mobike, old.peer_addrs
        new.original_initiator = old.roams()
        new.tasks.release()  # held weakly until adopted: a failed rekey's is freed at once
        return new

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg)
            return
        if self.followup is not None:
            self.followup.build_i(msg)
            return
        old = self.sa
        assert old.conn is not None
        if old.state == IkeState.ESTABLISHED:
            old.set_state(IkeState.REKEYING)
        if self.group is None:
            self.group = old.chosen.group if old.chosen else 0
            if not self.group:
                self.group = groups_of(old.conn.proposals)[0]
        self.new = self._spawn(True, old.ctx.ike_spi(), bytes(8))
        self.ke = KeyExchange(self.group, old.ctx.random)
        self.ni = old.ctx.random(NONCE_SIZE)
        msg.payloads.append(SaPayload(to_wire(old.conn.proposals, self.new.spi_i, self.group)))
        msg.payloads.append(NoncePayload(self.ni))
        msg.payloads.append(KePayload(self.group, self.ke.public_bytes()))

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg)
            return
        old, new = self.sa, self.new
        assert old.conn is not None and new is not None
        if self.followup is not None:
            self._followup_i(msg, now)
            return
        assert self.ke is not None
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and len(invalid_ke.data) >= 2:
            wanted = int.from_bytes(invalid_ke.data[:2], "big")
            if wanted in groups_of(old.conn.proposals) and wanted != self.group:
                self.group = wanted
                raise RestartExchange
        if any(n.notify_type <= ERROR_NOTIFY_MAX for n in msg.all(NotifyPayload)):
            self._abort("peer refused the IKE rekey")
            return
        sa_payload, nonce, ke = msg.first(SaPayload), msg.first(NoncePayload), msg.first(KePayload)
        chosen = (
            check_reply(old.conn.proposals, sa_payload.proposals, ProtocolId.IKE)
            if sa_payload
            else None
        )
        if chosen is None or nonce is None or ke is None or len(chosen.spi) != 8:
            self._abort("invalid IKE rekey response")
            return
        if ke.group != chosen.group or ke.group != self.ke.group:
            self._abort(f"responder KE group {group_name(ke.group)}")
            return
        try:
            shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            self._abort(str(e))
            return
        self.nr = nonce.data
        new.spi_r = chosen.spi
        new.chosen = chosen
        new.ni, new.nr = self.ni, self.nr
        if chosen.additional:
            self.shared = shared
            try:
                self.followup = Followup.after_answer(chosen.additional, old.ctx.random, msg)
            except FollowupError as e:
                self._abort(str(e))
            return
        new.derive_keys(shared, rekey_of=old)
        self._switch(now)

    def _followup_i(self, msg: Message, now: float) -> None:
        followup, new = self.followup, self.new
        assert followup is not None and new is not None
        why = take_answer(followup, msg)
        if why is not None:
            self.followup = None
            self._abort(why)
            return
        if followup.finished:
            self._keys_with_followups(new)
            self._switch(now)

    def _followup_refused(self) -> None:
        self.new = None

    def _keys_with_followups(self, new: IkeSa) -> None:
        assert self.followup is not None
        new.derive_keys(self.shared, rekey_of=self.sa, extra=self.followup.secret)
        new.addke_done = tuple(self.followup.done)
        self.shared = b""
        log.info(
            "%s: IKE rekey: %d additional key exchange(s) done in IKE_FOLLOWUP_KE",
            self.sa.tag(),
            len(self.followup.done),
        )

    def completed(self, now: float) -> None:
        if not self.initiator and self.new is not None:
            if self.followup is None or self.followup.finished:
                self._switch(now)
            return
        if self.initiator and self.new is not None and self.new.state == IkeState.ESTABLISHED:
            from pike.ikev2.tasks.ike_delete import IkeDelete

            self.sa.tasks.queue(IkeDelete(self.sa, True, rekeyed=True))

    def _abort(self, why: str) -> None:
        log.info("%s: IKE rekey failed: %s", self.sa.tag(), why)
        if self.sa.state == IkeState.REKEYING:
            self.sa.set_state(IkeState.ESTABLISHED)
        self.new = None

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message) -> None:
        old = self.sa
        assert old.conn is not None
        if msg.exchange == ExchangeType.IKE_FOLLOWUP_KE:
            assert self.followup is not None and self.new is not None
            take_request(self.followup, msg, self._followup_refused)
            if self.followup.finished:
                self._keys_with_followups(self.new)
            return
        sa_payload, nonce, ke = msg.first(SaPayload), msg.first(NoncePayload), msg.first(KePayload)
        if sa_payload is None or nonce is None:
            raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False)
        chosen = select(
            old.conn.proposals, sa_payload.proposals, ProtocolId.IKE, ke.group if ke else None
        )
        if chosen is None or len(chosen.spi) != 8:
            raise RespondError(NotifyType.NO_PROPOSAL_CHOSEN, fatal=False)
        if ke is None or ke.group != chosen.group:
            raise RespondError(
                NotifyType.INVALID_KE_PAYLOAD, chosen.group.to_bytes(2, "big"), fatal=False
            )
        if old.tasks.busy() and any(isinstance(t, IkeRekey) for t in old.tasks.active):
            # Simultaneous IKE rekey: keep it simple and let ours finish (RFC 7296 §2.8.2
            # allows refusing with TEMPORARY_FAILURE).
            raise RespondError(NotifyType.TEMPORARY_FAILURE, fatal=False)
        self.ke = KeyExchange(chosen.group, old.ctx.random, responder=True)
        try:
            shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False, detail=str(e)) from e
        self.ni, self.nr = nonce.data, old.ctx.random(NONCE_SIZE)
        new = self._spawn(False, chosen.spi, old.ctx.ike_spi())
        new.chosen = chosen
        new.ni, new.nr = self.ni, self.nr
        self.new = new
        if chosen.additional:
            self.shared = shared
            self.followup = Followup(chosen.additional, old.ctx.random)
            return
        new.derive_keys(shared, rekey_of=old)

    def _build_r(self, msg: Message) -> None:
        new, followup = self.new, self.followup
        if msg.exchange == ExchangeType.IKE_FOLLOWUP_KE:
            assert followup is not None
            answer(followup, msg, self.sa, self)
            return
        assert new is not None and new.chosen is not None and self.ke is not None
        reply = Proposal(new.chosen.number, ProtocolId.IKE, new.spi_r, new.chosen.transforms())
        msg.payloads.append(SaPayload((reply,)))
        msg.payloads.append(NoncePayload(self.nr))
        msg.payloads.append(KePayload(self.ke.group, self.ke.public_bytes()))
        if followup is not None:
            offer(followup, msg, self.sa, self)

    # -- both ----------------------------------------------------------------------------
    def _switch(self, now: float) -> None:
        """The new IKE SA takes the children; the old one waits for its delete."""
        from pike.sa.actions import IkeSaEstablished

        old, new = self.sa, self.new
        assert new is not None
        new.children, old.children = old.children, []
        new.established_at = now
        new.created_at = now
        new.set_state(IkeState.CONNECTING)
        new.set_state(IkeState.ESTABLISHED)
        new.reauth_at = old.reauth_at  # reauthentication is not postponed by a rekey
        new.replaced_by, old.replaced_by = old.replaced_by, None
        if new.replaced_by is not None:
            new.replaced_by.replaces = new  # a reauthentication under way replaces new
        new.schedule(now)
        old.set_state(IkeState.REKEYED)
        old.ctx.adopt(new)
        log.info("%s: IKE_SA rekeyed, successor %s", old.tag(), new.tag())
        old.ctx.counters.conn(old.name).ike_rekeys += 1
        old.ctx.emit(IkeSaEstablished(new.name, new.unique_id, new.spi_i, new.spi_r, rekey=True))
