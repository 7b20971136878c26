"""IKE_SA_INIT: proposals, key exchange, nonces; COOKIE and INVALID_KE_PAYLOAD retries.

RFC 7296 §1.2, §2.6 (cookies), §3.4 (INVALID_KE_PAYLOAD). The notifies that ride along
are steps of this task kept in their own modules: NAT detection (ike_natd),
fragmentation support (ike_frag), signature hash algorithms and the responder's CERTREQ
(ike_hash_algs); one task rather than four per IKE_SA_INIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from logging import INFO, WARNING
from typing import TYPE_CHECKING

from pike.crypto.errors import KeyExchangeError
from pike.crypto.ids import ADDKE_TYPES
from pike.crypto.ke import KeyExchange
from pike.crypto.proposal import ProposalSpec, group_name
from pike.ikev2.describe import configured, offered
from pike.ikev2.log import log
from pike.ikev2.negotiate import check_reply, groups_of, select, to_wire
from pike.ikev2.tasks.base import RespondError, RestartExchange, Task, TaskFailed
from pike.ikev2.tasks.ike_frag import announce_frag, note_frag
from pike.ikev2.tasks.ike_hash_algs import announce_hashes, note_hashes
from pike.ikev2.tasks.ike_intermediate import IkeIntermediate
from pike.ikev2.tasks.ike_natd import add_natd, float_for_auth, note_nat
from pike.sa.chosen import Chosen
from pike.sa.context import NONCE_SIZE
from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType, ProtocolId, notify_name
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

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_USE_PPK = NotifyType.USE_PPK
_INTERMEDIATE_EXCHANGE_SUPPORTED = NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED
_IKE = ProtocolId.IKE


class IkeInit(Task):
    sa: IkeSa

    name = "ike_init"

    # None until set (defaults of the class: every IKE_SA_INIT makes one of these tasks)
    group: int | None = None
    cookie: bytes | None = None
    peer_ke: KePayload | None = None

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_SA_INIT

    def _our_groups(self) -> list[int]:
        assert self.sa.conn is not None
        return groups_of(self.sa.conn.proposals)

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg)
            return
        sa = self.sa
        assert sa.conn is not None
        if self.group is None:
            groups = self._our_groups()
            if not groups:
                raise TaskFailed("no_ke_group")
            self.group = groups[0]
        if sa.ke is None or sa.ke.group != self.group:
            sa.ke = KeyExchange(self.group, sa.ctx.random)
        if not sa.ni:
            sa.ni = sa.ctx.random(NONCE_SIZE)
        if self.cookie is not None:
            msg.payloads.append(NotifyPayload(NotifyType.COOKIE, self.cookie))  # must be first
        msg.payloads.append(SaPayload(to_wire(sa.conn.proposals, b"", self.group)))
        msg.payloads.append(KePayload(self.group, sa.ke.public_bytes()))
        msg.payloads.append(NoncePayload(sa.ni))
        if _wants_intermediate(sa.conn.proposals):
            msg.payloads.append(NotifyPayload(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
        if sa.conn.ppk_id is not None:
            msg.payloads.append(NotifyPayload(NotifyType.USE_PPK))
        self._add_notifies(msg, True)

    def _add_notifies(self, msg: Message, initiator: bool) -> None:
        """The notifies of the other modules, in this order on the wire."""
        sa = self.sa
        add_natd(sa, msg)
        announce_frag(sa, msg, initiator)
        announce_hashes(sa, msg, initiator)

    def _note_notifies(self, msg: Message) -> None:
        sa = self.sa
        note_nat(sa, msg)
        note_frag(sa, msg)
        note_hashes(sa, msg)

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg, now)
            return
        sa = self.sa
        assert sa.conn is not None
        cookie = msg.notify(NotifyType.COOKIE)
        if cookie is not None:
            self.cookie = cookie.data
            raise RestartExchange
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = int.from_bytes(invalid_ke.data[:2], "big") if len(invalid_ke.data) >= 2 else 0
            if wanted not in self._our_groups() or wanted == self.group:
                raise TaskFailed("invalid_ke_payload", f"peer wants group {group_name(wanted)}")
            self.group = wanted
            raise RestartExchange
        for n in msg.all(NotifyPayload):
            if n.notify_type <= ERROR_NOTIFY_MAX:
                if n.notify_type == NotifyType.NO_PROPOSAL_CHOSEN:
                    log.warning(
                        "%s: the peer accepts none of our IKE proposals (NO_PROPOSAL_CHOSEN);"
                        " we offered %s",
                        self.sa.tag(),
                        configured(self.sa.conn.proposals if self.sa.conn else ()),
                    )
                raise TaskFailed(
                    "peer_error", f"IKE_SA_INIT answered with notify {notify_name(n.notify_type)}"
                )
        sa_payload = msg.first(SaPayload)
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        if sa_payload is None or ke is None or nonce is None:
            raise TaskFailed("invalid_syntax", "IKE_SA_INIT response lacks SA, KE or Nonce")
        chosen = check_reply(sa.conn.proposals, sa_payload.proposals, ProtocolId.IKE)
        if chosen is None or chosen.prf_id is None:
            raise TaskFailed("no_proposal_chosen", "responder chose what we did not offer")
        if ke.group != chosen.group or sa.ke is None or ke.group != sa.ke.group:
            raise TaskFailed("invalid_ke_payload", f"responder KE group {group_name(ke.group)}")
        try:
            shared = sa.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise TaskFailed("invalid_ke_payload", str(e)) from e
        sa.ppk_peer = sa.conn.ppk_id is not None and msg.notify(NotifyType.USE_PPK) is not None
        if sa.conn.ppk_required and not sa.ppk_peer:
            log.error("%s: ppk_required, but the peer does not support PPK (RFC 8784)", sa.tag())
            raise TaskFailed("ppk_required", "no USE_PPK from the peer")
        sa.intermediate = msg.notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) is not None
        if chosen.additional and not sa.intermediate:
            raise TaskFailed(
                "no_proposal_chosen", "additional key exchanges without IKE_INTERMEDIATE support"
            )
        sa.chosen = chosen
        sa.nr = nonce.data
        sa.spi_r = msg.spi_r
        sa.derive_keys(shared)
        sa.ke = None  # the private key is done with
        sa.addke_todo = chosen.additional
        if sa.addke_todo:
            # before IKE_AUTH and anything else queued (RFC 9370 §2.2.2)
            sa.tasks.queued = (IkeIntermediate(sa, True), *sa.tasks.queued)
        self._note_notifies(msg)
        float_for_auth(sa)  # (the exchange is over: IKE_SA_INIT has this one task)

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message, now: float) -> None:
        sa = self.sa
        assert sa.conn is not None
        sa_payload = msg.first(SaPayload)
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        if sa_payload is None or ke is None or nonce is None:
            raise RespondError(NotifyType.INVALID_SYNTAX)
        chosen = self._choose(sa_payload.proposals, ke.group, now)
        if chosen is None or chosen.prf_id is None:
            # anyone can send one (IKEv1 has the same line and reason)
            if sa.ctx.log_limit.wanted(log, WARNING, "no_proposal_chosen", now, sa.unproven):
                log.warning(
                    "%s: no acceptable IKE proposal: the peer offered %s; %s has %s",
                    sa.tag(),
                    offered(sa_payload.proposals),
                    sa.conn.name,
                    configured(sa.conn.proposals),
                )
            raise RespondError(NotifyType.NO_PROPOSAL_CHOSEN, detail="no acceptable IKE proposal")
        # USE_PPK back when we hold any PPK: which one is known only in IKE_AUTH
        sa.ppk_peer = sa.ctx.config.has_ppk and msg.notify(_USE_PPK) is not None
        sa.intermediate = msg.notify(_INTERMEDIATE_EXCHANGE_SUPPORTED) is not None
        if chosen.additional and not sa.intermediate:
            raise RespondError(
                NotifyType.NO_PROPOSAL_CHOSEN,
                detail="additional key exchanges, but no INTERMEDIATE_EXCHANGE_SUPPORTED",
            )
        if ke.group != chosen.group:
            raise RespondError(
                NotifyType.INVALID_KE_PAYLOAD,
                chosen.group.to_bytes(2, "big"),
                detail=f"KE group {group_name(ke.group)}, we want {group_name(chosen.group)}",
            )
        sa.ke = KeyExchange(chosen.group, sa.ctx.random, responder=True)
        try:
            shared = sa.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise RespondError(NotifyType.INVALID_SYNTAX, detail=str(e)) from e
        sa.chosen = chosen
        sa.ni = nonce.data
        sa.nr = sa.ctx.random(NONCE_SIZE)
        sa.derive_keys(shared)
        sa.addke_todo = chosen.additional
        self._note_notifies(msg)

    def _choose(self, offer: Sequence[Proposal], group: int, now: float) -> Chosen | None:
        """The IKE proposal of the first connection (config order) whose proposals accept
        the offer: strongSwan's "trying alternative config", over each distinct proposal
        list once. IKE_AUTH then picks among the connections that accept it."""
        sa = self.sa
        assert sa.conn is not None
        if sa.candidates is None:
            return select(sa.conn.proposals, offer, _IKE, group)
        for proposals, conn in sa.candidates.proposal_sets():
            chosen = select(proposals, offer, _IKE, group)
            if chosen is not None and chosen.prf_id is not None:
                if conn is not sa.conn and sa.ctx.log_limit.wanted(
                    log, INFO, "alternative_config", now, sa.unproven
                ):
                    log.info("%s: trying alternative config %s", sa.tag(), conn.name)
                sa.set_conn(conn)
                sa.offer = tuple(offer)
                return chosen
        return None

    def _build_r(self, msg: Message) -> None:
        sa = self.sa
        assert sa.chosen is not None and sa.ke is not None
        reply = Proposal(sa.chosen.number, _IKE, b"", sa.chosen.transforms())
        msg.payloads.append(SaPayload((reply,)))
        msg.payloads.append(KePayload(sa.chosen.group, sa.ke.public_bytes()))
        sa.ke = None  # the private key is done with (kept, it was 3 objects per held SA)
        msg.payloads.append(NoncePayload(sa.nr))
        if sa.intermediate:
            msg.payloads.append(NotifyPayload(_INTERMEDIATE_EXCHANGE_SUPPORTED))
        if sa.ppk_peer:
            msg.payloads.append(NotifyPayload(_USE_PPK))
        self._add_notifies(msg, False)


def _wants_intermediate(proposals: Sequence[ProposalSpec]) -> bool:
    """Whether we offer an additional key exchange (RFC 9370), which needs IKE_INTERMEDIATE."""
    return any(a.id for spec in proposals for t in ADDKE_TYPES for a in spec.of(t))
