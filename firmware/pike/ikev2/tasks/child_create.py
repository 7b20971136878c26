"""Create a CHILD_SA inside IKE_AUTH (RFC 7296 §1.2, §2.9 narrowing, §1.3.1 later).

The responder narrows the initiator's selectors to its own, picks an ESP proposal and
installs; an unacceptable child is answered with TS_UNACCEPTABLE or NO_PROPOSAL_CHOSEN
while the IKE SA stays up. Without ESP in the kernel, the responder answers
NO_PROPOSAL_CHOSEN as strongSwan does when its SAD install fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pike.crypto.errors import KeyExchangeError
from pike.crypto.kdf import derive_child_keys
from pike.crypto.ke import KeyExchange
from pike.crypto.proposal import ProposalSpec, group_name
from pike.crypto.sizes import encr_key_size, integ_key_size
from pike.ikev2.child_proposal import child_specs, choose_esp
from pike.ikev2.describe import configured, offered
from pike.ikev2.followup_ke import Followup, FollowupError
from pike.ikev2.log import log
from pike.ikev2.narrowing import (
    ChildMatch,
    dynamic,
    match_child,
    match_offer,
    ts_from_wire,
    tsi_payload,
    tsr_payload,
)
from pike.ikev2.negotiate import check_reply, groups_of, only_choice, to_wire
from pike.ikev2.tasks.base import RespondError, RestartExchange, Task
from pike.ikev2.tasks.followup_steps import answer, offer, take_answer, take_request
from pike.policy.config import ChildConfig
from pike.policy.ipsec import Lifetime, SaSpec, UdpEncap
from pike.policy.ts import TrafficSelector
from pike.sa import child_lifecycle
from pike.sa.actions import ChildSaFailed, InstallInboundSa, RemoveInboundSa
from pike.sa.child_sa import ChildSa
from pike.sa.chosen import Chosen
from pike.sa.context import NONCE_SIZE
from pike.sa.state import ChildState, IkeState
from pike.wire.constants import (
    ERROR_NOTIFY_MAX,
    ExchangeType,
    NotifyType,
    ProtocolId,
    notify_name,
)
from pike.wire.payloads import (
    KePayload,
    Message,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    TsiPayload,
    TsrPayload,
)

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_IKE_FOLLOWUP_KE = ExchangeType.IKE_FOLLOWUP_KE
_USE_TRANSPORT_MODE = NotifyType.USE_TRANSPORT_MODE
_ESP = ProtocolId.ESP
_REKEY_SA = NotifyType.REKEY_SA


_IKE_AUTH = ExchangeType.IKE_AUTH  # asked per message: Enum lookups are slow on 3.11


class ChildCreate(Task):
    """Create (or, with ``rekey``, replace) a CHILD_SA.

    In IKE_AUTH it rides with the authentication and uses the IKE SA's nonces; in
    CREATE_CHILD_SA it carries its own nonces and, with PFS, a KE payload (RFC 7296 §1.3):
    ``{ [N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr }``.
    """

    sa: IkeSa

    name = "child_create"

    # The exchange's state, each None or empty until set (defaults of the class, not
    # stored by __init__: every IKE_AUTH makes one of these tasks).
    child: ChildSa | None = None
    error: int | None = None  # responder in IKE_AUTH: the notify that refused it
    _chosen: Chosen | None = None
    group: int | None = None  # PFS group (CREATE_CHILD_SA only)
    ke: KeyExchange | None = None
    ni = b""  # this exchange's nonces (CREATE_CHILD_SA only)
    nr = b""
    shared: bytes | None = None
    # Responder of a new child: the same child on an older IKE SA with this peer (the
    # peer reauthenticates, make-before-break), replaced once that IKE SA goes.
    prior: ChildSa | None = None
    ahead: SaSpec | None = None  # our inbound SA, installed before the answer
    # RFC 9370: the additional key exchanges that follow in IKE_FOLLOWUP_KE
    followup: Followup | None = None

    def __init__(
        self,
        sa: IkeSa,
        initiator: bool,
        config: ChildConfig | None = None,
        *,
        exchange: int = ExchangeType.IKE_AUTH,
        rekey: ChildSa | None = None,
        reqid: int | None = None,
        expect: Chosen | None = None,
    ) -> None:
        super().__init__(sa, initiator)
        self.reqid = reqid  # reauthentication: the replaced child's, so policies stay put
        # Reauthentication: what the peer chose for the replaced child, its likely choice.
        self.expect = expect
        self.config = config if config is not None or rekey is None else rekey.config
        self.rekey = rekey  # the CHILD_SA this one replaces
        self._exchange = exchange
        # In IKE_AUTH (its nonces, no KE) rather than CREATE_CHILD_SA; fixed at birth (the
        # exchange moves on only from CREATE_CHILD_SA to IKE_FOLLOWUP_KE).
        self.in_auth = exchange == _IKE_AUTH

    def done(self) -> bool:
        return self.followup is None or self.followup.finished

    @property
    def exchange(self) -> int:
        return self._exchange

    def _specs(self, cfg: ChildConfig) -> tuple[ProposalSpec, ...]:
        return child_specs(cfg.esp_proposals, self.in_auth)

    def _reqid(self, cfg: ChildConfig) -> int:
        # A trapped child keeps its trap's reqid, so its policies are the trap's ones.
        trapped = self.sa.ctx.trap_reqid(self.sa.name, cfg.name)
        return trapped if trapped is not None else self.sa.ctx.reqid()

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg, now)
            return
        if self.followup is not None:
            self.followup.build_i(msg)
            return
        sa = self.sa
        cfg = self.config
        assert cfg is not None
        old = self.rekey
        spi = sa.ctx.child_spi(sa.remote[0], sa.local[0])
        reqid = old.reqid if old is not None else self.reqid or self._reqid(cfg)
        child = ChildSa(cfg, sa.ctx.unique_id(), reqid, True, spi, mode=cfg.mode)
        if old is not None:
            # Same selectors and reqid: the policies stay, only the SAs change.
            child.local_ts, child.remote_ts = old.local_ts, old.remote_ts
        else:
            child.local_ts = dynamic(cfg.local_ts, sa.local[0])
            child.remote_ts = dynamic(cfg.remote_ts, sa.remote[0])
        self.child = child
        specs = self._specs(cfg)
        if not self.in_auth:
            if self.group is None:
                groups = groups_of(specs)
                self.group = groups[0] if groups else 0
            if old is not None:
                spi_bytes = old.spi_in.to_bytes(4, "big")
                msg.payloads.append(
                    NotifyPayload(NotifyType.REKEY_SA, b"", ProtocolId.ESP, spi_bytes)
                )
        props = to_wire(specs, spi.to_bytes(4, "big"), self.group or None)
        msg.payloads.append(SaPayload(props))
        if not self.in_auth:
            self.ni = sa.ctx.random(NONCE_SIZE)
            msg.payloads.append(NoncePayload(self.ni))
            if self.group:
                self.ke = KeyExchange(self.group, sa.ctx.random)
                msg.payloads.append(KePayload(self.group, self.ke.public_bytes()))
        msg.payloads.append(tsi_payload(child.local_ts))
        msg.payloads.append(tsr_payload(child.remote_ts))
        if cfg.mode == "transport":
            msg.payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        if self.in_auth and self.reqid is not None and self.ahead is None:
            self._install_ahead(child, specs)

    def _install_ahead(self, child: ChildSa, specs: Sequence[ProposalSpec]) -> None:
        """Reauthentication: our new inbound SA goes into the kernel before IKE_AUTH goes
        out, so what the peer sends on its new SA right after answering is not dropped
        (see InstallInboundSa). Only where the answer cannot change it: a single algorithm
        combination offered (keys come from the IKE SA's nonces), tunnel mode (the SA has
        no selectors to narrow). Its lifetime outlasts every retransmission of IKE_AUTH."""
        sa = self.sa
        chosen = only_choice(specs, ProtocolId.ESP)
        if chosen is None and self.expect is not None:
            # the peer chose these for the child being replaced and will again, unless
            # its configuration changed (then the guess is replaced once the answer is in)
            guess = Proposal(1, ProtocolId.ESP, bytes(4), self.expect.transforms())
            chosen = check_reply(specs, (guess,), ProtocolId.ESP)
        if chosen is None or child.mode != "tunnel" or not sa.ctx.caps.esp:
            return
        self._keyed(child, chosen)
        assert child.inbound is not None
        span = int(sa.ctx.config.daemon.retransmit_span()) + 30
        self.ahead = replace(child.inbound, lifetime=Lifetime(hard_seconds=span))
        sa.ctx.emit(InstallInboundSa(sa.name, child.name, child.unique_id, self.ahead))

    def abandoned(self) -> None:
        self._drop_ahead()

    def _drop_ahead(self) -> None:
        """The exchange failed: the inbound SA installed ahead goes (its lifetime would
        end it too)."""
        if self.ahead is not None and self.child is not None:
            child = self.child
            self.sa.ctx.emit(RemoveInboundSa(self.sa.name, child.name, child.unique_id, self.ahead))
            self.ahead = None

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg)
            return
        sa, child = self.sa, self.child
        assert child is not None and self.config is not None
        if self.followup is not None:
            self._followup_i(msg, child, now)
            return
        if sa.state not in (IkeState.ESTABLISHED, IkeState.REKEYING):
            self._drop_ahead()
            return  # IKE_AUTH failed; the IKE SA goes and the child with it
        invalid_ke = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None and not self.in_auth:
            wanted = int.from_bytes(invalid_ke.data[:2], "big") if len(invalid_ke.data) >= 2 else 0
            if wanted in groups_of(self.config.esp_proposals) and wanted != self.group:
                log.info("%s: peer wants PFS group %s, retrying", sa.tag(), group_name(wanted))
                self.group = wanted
                raise RestartExchange
        for n in msg.all(NotifyPayload):
            if n.notify_type <= ERROR_NOTIFY_MAX:
                log.warning(
                    "%s: the peer refused CHILD_SA %s (%s); we asked for local_ts %s,"
                    " remote_ts %s, ESP %s",
                    sa.tag(),
                    self.config.name,
                    notify_name(n.notify_type),
                    _fmt(self.config.local_ts),
                    _fmt(self.config.remote_ts),
                    configured(self._specs(self.config)),
                )
                self._failed(f"peer refused CHILD_SA with notify {notify_name(n.notify_type)}")
                return
        sa_payload, tsi, tsr = msg.first(SaPayload), msg.first(TsiPayload), msg.first(TsrPayload)
        if sa_payload is None or tsi is None or tsr is None:
            self._failed("response lacks SA, TSi or TSr")
            return
        chosen = check_reply(self._specs(self.config), sa_payload.proposals, ProtocolId.ESP)
        if chosen is None or len(chosen.spi) != 4:
            self._failed("responder chose an ESP proposal we did not offer")
            return
        local = tuple(ts_from_wire(w) for w in tsi.selectors)
        remote = tuple(ts_from_wire(w) for w in tsr.selectors)
        # The responder may only narrow (RFC 7296 §2.9).
        if not _within(local, child.local_ts) or not _within(remote, child.remote_ts):
            self._failed("responder widened the traffic selectors")
            return
        if not self.in_auth:
            nonce = msg.first(NoncePayload)
            if nonce is None:
                self._failed("response lacks a nonce")
                return
            self.nr = nonce.data
            if chosen.group:
                ke = msg.first(KePayload)
                if self.ke is None or ke is None or ke.group != chosen.group:
                    self._failed("response lacks the KE payload of the chosen group")
                    return
                try:
                    self.shared = self.ke.shared_secret(ke.data)
                except KeyExchangeError as e:
                    self._failed(f"invalid KE payload: {e}")
                    return
        child.local_ts, child.remote_ts = local, remote
        transport = msg.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        child.mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        if chosen.additional and not self.in_auth:
            self._chosen = chosen
            try:
                self.followup = Followup.after_answer(chosen.additional, sa.ctx.random, msg)
            except FollowupError as e:
                self._failed(str(e))
                return
            self._exchange = ExchangeType.IKE_FOLLOWUP_KE  # keys once those are done
            return
        self._established(child, chosen, now)

    def _followup_i(self, msg: Message, child: ChildSa, now: float) -> None:
        followup = self.followup
        assert followup is not None and self._chosen is not None
        why = take_answer(followup, msg)
        if why is not None:
            self.followup = None
            self._failed(why)
            return
        if followup.finished:
            self._log_followups()
            self._established(child, self._chosen, now)

    def _followup_refused(self) -> None:
        if self.rekey is not None and self.rekey.replaced_by_peer is self.child:
            self.rekey.replaced_by_peer = None

    def _log_followups(self) -> None:
        assert self.followup is not None and self.child is not None
        log.info(
            "%s: CHILD_SA %s: %d additional key exchange(s) done in IKE_FOLLOWUP_KE",
            self.sa.tag(),
            self.child.name,
            len(self.followup.done),
        )

    def completed(self, now: float) -> None:
        if not self.initiator or self.rekey is None or self.child is None:
            return
        if self.child.state != ChildState.INSTALLED:
            return
        from pike.ikev2.tasks.child_delete import ChildDelete

        old = self.rekey
        peer_new = old.replaced_by_peer
        if peer_new is not None and self._lost_collision(peer_new):
            # Both sides rekeyed at once; the pair with the lowest nonce is redundant
            # (RFC 7296 §2.8.1) and the side that created it deletes it: ours.
            log.info(
                "%s: rekey collision lost, deleting our CHILD_SA %08x",
                self.sa.tag(),
                self.child.spi_in,
            )
            self.sa.tasks.queue(ChildDelete(self.sa, True, self.child, rekeyed=True))
            return
        if peer_new is not None:
            peer_new.outbound_deferred = False  # redundant: the peer deletes it, never used
        self.sa.tasks.queue(ChildDelete(self.sa, True, old, rekeyed=True))

    def _lost_collision(self, peer_new: ChildSa) -> bool:
        ours = min(self.ni, self.nr)
        theirs = min(peer_new.nonces)
        return ours < theirs

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message) -> None:
        """strongSwan's order: narrow the selectors, select the proposal, then (nonces and
        PFS in CREATE_CHILD_SA) the CHILD_SA to install once the answer is built."""
        sa = self.sa
        if sa.conn is None:
            return
        if msg.exchange == _IKE_FOLLOWUP_KE:
            assert self.followup is not None
            take_request(self.followup, msg, self._followup_refused)
            return
        sa_payload, tsi, tsr = msg.first(SaPayload), msg.first(TsiPayload), msg.first(TsrPayload)
        if sa_payload is None or tsi is None or tsr is None:
            if not self.in_auth:
                raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False)
            return  # childless IKE_AUTH (RFC 6023)
        old = self._rekeyed(msg)
        local, remote = sa.local[0], sa.remote[0]
        if old is None:  # the connection's children, the same tuple each time: remembered
            candidates = sa.conn.children
            match = match_offer(candidates, tsi.selectors, tsr.selectors, local, remote)
        else:
            candidates = (old.config,)
            theirs_i = list(map(ts_from_wire, tsi.selectors))
            theirs_r = list(map(ts_from_wire, tsr.selectors))
            match = match_child(candidates, theirs_i, theirs_r, local, remote)
        if match is None:
            theirs_i = list(map(ts_from_wire, tsi.selectors))
            theirs_r = list(map(ts_from_wire, tsr.selectors))
            log.warning(
                "%s: no child config matches the peer's traffic selectors TSi %s TSr %s;"
                " we have %s",
                sa.tag(),
                _fmt(theirs_i),
                _fmt(theirs_r),
                "; ".join(
                    f"{c.name}: local_ts {_fmt(c.local_ts)}, remote_ts {_fmt(c.remote_ts)}"
                    for c in candidates
                )
                or "no children",
            )
            self._refuse(NotifyType.TS_UNACCEPTABLE)
            return
        cfg = match.config
        ke = msg.first(KePayload)
        chosen = choose_esp(self._specs(cfg), sa_payload.proposals, ke.group if ke else None)
        if chosen is None:
            log.warning(
                "%s: no acceptable ESP proposal for %s: the peer offered %s; we have %s",
                sa.tag(),
                cfg.name,
                offered(sa_payload.proposals),
                configured(self._specs(cfg)),
            )
            self._refuse(NotifyType.NO_PROPOSAL_CHOSEN)
            return
        if not self.in_auth:
            self._nonces_and_pfs(msg, chosen, ke)
        if not sa.ctx.caps.esp and child_lifecycle.refuse_without_esp(
            sa.ctx, sa.tag(), sa.name, cfg.name
        ):  # (the tag only for that line)
            self._refuse(NotifyType.NO_PROPOSAL_CHOSEN)
            return
        transport = msg.notify(_USE_TRANSPORT_MODE) is not None
        self._new_child_r(match, chosen, old, transport)
        if chosen.additional:
            self.followup = Followup(chosen.additional, sa.ctx.random)

    def _rekeyed(self, msg: Message) -> ChildSa | None:
        """The CHILD_SA a CREATE_CHILD_SA request's REKEY_SA names (None: a new one)."""
        if self.in_auth:
            return None
        rekey = msg.notify(_REKEY_SA)
        if rekey is None:
            return None
        value = int.from_bytes(rekey.spi, "big") if len(rekey.spi) == 4 else -1
        old = next((c for c in self.sa.children if c.spi_out == value), None)
        if old is None or old.state not in (ChildState.INSTALLED, ChildState.REKEYING):
            raise RespondError(
                NotifyType.CHILD_SA_NOT_FOUND,
                fatal=False,
                detail=f"rekey of unknown CHILD_SA {value:08x}",
            )
        return old

    def _nonces_and_pfs(self, msg: Message, chosen: Chosen, ke: KePayload | None) -> None:
        """CREATE_CHILD_SA: this exchange's nonces and, with PFS, the shared secret."""
        nonce = msg.first(NoncePayload)
        if nonce is None:
            raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False)
        self.ni, self.nr = nonce.data, self.sa.ctx.random(NONCE_SIZE)
        if not chosen.group:
            return
        if ke is None or ke.group != chosen.group:
            theirs = group_name(ke.group) if ke else "none"
            raise RespondError(
                NotifyType.INVALID_KE_PAYLOAD,
                chosen.group.to_bytes(2, "big"),
                fatal=False,
                detail=f"PFS group {theirs}, we want {group_name(chosen.group)}",
            )
        self.ke = KeyExchange(chosen.group, self.sa.ctx.random, responder=True)
        try:
            self.shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as e:
            raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False, detail=str(e)) from e

    def _new_child_r(
        self, match: ChildMatch, chosen: Chosen, old: ChildSa | None, transport: bool
    ) -> None:
        """The CHILD_SA the answer creates: our inbound SPI and its reqid (the replaced
        child's, an overlapping prior's, a trap's or a new one)."""
        sa, cfg = self.sa, match.config
        spi = sa.ctx.child_spi(sa.remote[0], sa.local[0])
        if old is None:
            self.prior = sa.ctx.overlapping(sa, cfg.name, match.local, match.remote)
        if old is not None:
            reqid = old.reqid
        else:
            # The prior's reqid keeps the kernel's policy templates valid for both.
            reqid = self.prior.reqid if self.prior is not None else self._reqid(cfg)
        child = ChildSa(cfg, sa.ctx.unique_id(), reqid, False, spi)
        child.local_ts, child.remote_ts = match.local, match.remote
        child.mode = "transport" if transport and cfg.mode == "transport" else "tunnel"
        self.child = child
        self._chosen = chosen
        if old is not None:
            self.rekey = old

    def _refuse(self, notify: int) -> None:
        if self.in_auth:
            self.error = notify  # IKE_AUTH still answers with IDr and AUTH
            return
        raise RespondError(notify, fatal=False)

    def _build_r(self, msg: Message, now: float) -> None:
        if self.error is not None:
            msg.payloads.append(NotifyPayload(self.error))
            return
        child = self.child
        if child is None:
            return
        chosen = self._chosen
        assert chosen is not None
        followup = self.followup
        if msg.exchange == _IKE_FOLLOWUP_KE:
            assert followup is not None
            if not answer(followup, msg, self.sa, self):
                return
            self._log_followups()
            self._install_r(child, chosen, now)
            return
        reply = Proposal(chosen.number, _ESP, child.spi_in.to_bytes(4, "big"), chosen.transforms())
        msg.payloads.append(SaPayload((reply,)))
        if not self.in_auth:
            msg.payloads.append(NoncePayload(self.nr))
            if self.ke is not None:
                msg.payloads.append(KePayload(self.ke.group, self.ke.public_bytes()))
        msg.payloads.append(tsi_payload(child.remote_ts))
        msg.payloads.append(tsr_payload(child.local_ts))
        if child.mode == "transport":
            msg.payloads.append(NotifyPayload(_USE_TRANSPORT_MODE))
        if followup is not None:
            # keys and install once the additional exchanges are done (RFC 9370 §2.2.4)
            offer(followup, msg, self.sa, self)
            if self.rekey is not None:
                # known now, so that our own crossing rekey sees the collision (§2.8.1)
                child.nonces = (self.ni, self.nr)
                self.rekey.replaced_by_peer = child
            return
        self._install_r(child, chosen, now)

    def _install_r(self, child: ChildSa, chosen: Chosen, now: float) -> None:
        # Install before the response leaves, so the peer's first ESP packet finds the SA.
        self._established(child, chosen, now)
        old = self.rekey
        if old is not None and child.state == ChildState.INSTALLED:
            # The initiator deletes the old one; until then both inbound SAs decrypt.
            old.replaced_by_peer = child
            if old.state == ChildState.INSTALLED:
                old.set_state(ChildState.REKEYED, self.sa.name)

    # -- both ----------------------------------------------------------------------------
    def _keyed(self, child: ChildSa, chosen: Chosen) -> None:
        """``child``'s keys (RFC 7296 §2.17) and kernel specs for ``chosen``."""
        sa = self.sa
        assert sa.prf is not None and sa.keys is not None
        child.chosen = chosen
        child.spi_out = int.from_bytes(chosen.spi, "big")
        ekey = encr_key_size(chosen.encr_id, chosen.encr_key_length)
        ikey = integ_key_size(chosen.integ_id)
        if self.in_auth:
            ni, nr = sa.ni, sa.nr
        else:
            ni, nr = (self.ni, self.nr)
        child.nonces = (ni, nr)
        extra = self.followup.secret if self.followup is not None else b""
        child.keys = derive_child_keys(
            sa.prf, sa.keys.sk_d, ni, nr, self.shared, ekey, ikey, extra=extra
        )
        encap = out_encap = None
        if sa.natt:
            encap, out_encap = (
                UdpEncap(sa.remote[1], sa.local[1]),
                UdpEncap(sa.local[1], sa.remote[1]),
            )
        child.build_kernel_specs(sa.local[0], sa.remote[0], encap, out_encap, sa.ctx.random)

    def _established(self, child: ChildSa, chosen: Chosen, now: float) -> None:
        sa = self.sa
        guessed = child.chosen
        if self.ahead is not None and guessed is not None and _algs(guessed) != _algs(chosen):
            log.info("%s: peer chose other algorithms than for the SA installed ahead", sa.tag())
            self._drop_ahead()  # wrong keys: the install below adds the right SA anew
        self._keyed(child, chosen)
        self.ahead = None  # the install below updates it in place: same SPI, same keys
        sa.children.append(child)
        tag, name = sa.tag(), sa.name
        if child_lifecycle.kernel_refuses(sa.ctx, tag, name, child):
            from pike.ikev2.tasks.child_delete import ChildDelete

            sa.tasks.queue(ChildDelete(sa, True, child))
            return
        assert child.inbound is not None and child.outbound is not None
        # As rekey responder, send on the old SA until the initiator deletes it: the
        # initiator installs its new inbound SA only once our response is in.
        # A reauthenticating peer, too, installs its inbound SA only once our answer is in.
        prior = self.prior
        child.outbound_deferred = not self.initiator and (self.rekey or prior) is not None
        if prior is not None and prior.replaced_by_peer is None:
            prior.replaced_by_peer = child
        child_lifecycle.install(
            sa.ctx, tag, name, child, now, rekey=self.rekey is not None, ike=sa.ref()
        )

    def _failed(self, why: str) -> None:
        sa = self.sa
        assert self.config is not None
        self._drop_ahead()
        log.info("%s: CHILD_SA %s failed: %s", sa.tag(), self.config.name, why)
        if self.rekey is not None and self.rekey.state == ChildState.REKEYING:
            self.rekey.set_state(ChildState.INSTALLED, sa.name)  # keep using the old one
        sa.ctx.emit(ChildSaFailed(sa.name, self.config.name, why))


def _algs(c: Chosen) -> tuple[int, int | None, int, bool]:
    """What decides an ESP SA's algorithms and key sizes."""
    return (c.encr_id, c.encr_key_length, c.integ_id, c.esn)


def _within(got: Sequence[TrafficSelector], offered: Sequence[TrafficSelector]) -> bool:
    return bool(got) and all(any(o.contains(g) for o in offered) for g in got)


def _fmt(ts: Sequence[TrafficSelector]) -> str:
    return " ".join(str(t) for t in ts)
