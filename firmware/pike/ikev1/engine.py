"""The sans-I/O IKEv1 engine: datagrams and time in, actions out, like ``Ikev2Engine``.

It serves every ``version = 1`` connection: finds the ISAKMP SA a datagram belongs to by
its cookies (or makes one as Main Mode responder), drops exact duplicates after answering
them again (``flight``), opens encrypted bodies with the SA's IV chain and hands the
message to Main Mode, Quick Mode or the Informational handling. The actions, SA views and
counters are the IKEv2 engine's, so the runtime, ``pikectl`` and the metrics see IKEv1
SAs like IKEv2 ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping

from cryptography import x509

from pike.ikev1 import aggressive_mode, informational, main_mode, quick_mode
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, log
from pike.ikev1.liveness import due as dpd_due
from pike.ikev1.quick_state import QuickMode
from pike.ikev1.responder import phase1_request
from pike.ikev1.sa_table import SaTable
from pike.ikev1.status import sa_info
from pike.ikev1.timers import next_deadline, on_timer
from pike.ikev1.traps import Traps
from pike.policy.addrs import any_of
from pike.policy.config import Config, ConnectionConfig
from pike.policy.ipsec import KernelCaps, SaSpec
from pike.sa import child_lifecycle, liveness
from pike.sa.actions import (
    Action,
    Address,
    CheckChain,
    ChildSaFailed,
    IkeSaInfo,
    MessageDropped,
)
from pike.sa.admission import check_size
from pike.sa.chain_check import ChainWait, anchors_of, offloadable, trust_key
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context, IdKey
from pike.sa.credentials import CredentialStore
from pike.sa.ports import SpiSource
from pike.sa.resolving import Resolving, is_name
from pike.sa.restarts import Pending, Restart, closed_by_peer, restart
from pike.sa.revocation import RevokedCheck
from pike.sa.state import ChildState, IkeState
from pike.wire.errors import MalformedMessage
from pike.wire.isakmp import decode_v1, decrypt_v1
from pike.wire.isakmp_constants import (
    ExchangeV1,
    NotifyV1,
    ProtocolV1,
)
from pike.wire.isakmp_payloads import (
    V1Cert,
    V1Delete,
    V1Message,
)
from pike.wire.payloads import CertPayload

MAIN, QUICK, INFO = ExchangeV1.MAIN, ExchangeV1.QUICK, ExchangeV1.INFORMATIONAL
AGGR = ExchangeV1.AGGRESSIVE
PHASE1 = (MAIN, AGGR)
MAX_QUEUED = 4  # Quick Modes kept while AM3 is outstanding


class Ikev1Engine:
    def __init__(
        self,
        config: Config,
        *,
        random: Callable[[int], bytes],
        kernel_caps: KernelCaps,
        spis: SpiSource | None = None,
        credentials: CredentialStore | None = None,
        ctx: Context | None = None,
    ) -> None:
        # Beside an IKEv2 engine the context is shared: one action queue, one set of
        # counters, unique ids and reqids that never collide (``pike.daemon.engines``).
        store = credentials or CredentialStore()
        self.ctx = ctx or Context(config, random, kernel_caps, spis, store)
        if ctx is None:  # else the owner of the shared context asks both engines
            self.ctx.has_contact = self.has_contact
        self.table = SaTable(self.ctx.admission)
        self.traps = Traps(self.ctx)  # on-demand tunnels: (conn, child) -> reqid
        self._reopen: list[tuple[str, str]] = []  # close_action = start: (conn, child)
        self.retries = Pending()  # keyingtries waiting for their backoff
        self.resolving = Resolving(self.ctx)  # initiations waiting for a DNS name
        self._chains: dict[int, IsakmpSa] = {}  # CheckChain refs not answered yet

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def sas(self) -> Mapping[bytes, IsakmpSa]:
        """The ISAKMP SAs by our cookie (to read: ``table`` owns them)."""
        return self.table.sas

    # -- API -------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        for conn in self.config.connections.values():
            if conn.version != 1:
                continue
            self.traps.install_configured(conn)
            for child in conn.children:
                if child.start_action == "start":  # the others wait for phase 1
                    self.initiate(conn.name, now, child.name)

    def initiate(
        self,
        conn_name: str,
        now: float,
        child: str | None = None,
        *,
        remote: str | None = None,
        keyingtry: int = 0,
    ) -> None:
        """Bring a connection (and ``child``, else its first child) up; ``remote``: the
        address a DNS name in ``remote_addrs`` resolved to (else it waits for
        ``resolved``)."""
        conn = self.config.connections[conn_name]
        if conn.version != 1:
            raise KeyError(f"{conn_name} is not an IKEv1 connection")
        cfg = conn.child(child) if child else (conn.children[0] if conn.children else None)
        if child is not None and cfg is None:
            raise KeyError(f"{conn_name} has no child {child}")
        for sa in self.table.sas.values():
            if sa.conn is not conn or sa.state not in (IkeState.CONNECTING, IkeState.ESTABLISHED):
                continue
            if cfg is None or any(c.name == cfg.name for c in sa.live_children()):
                log.info("%s: already up or connecting", sa.tag())
                return
            if sa.state == IkeState.ESTABLISHED:
                self.start_quick_mode(sa, cfg.name, now)
            else:
                self.table.want(sa, cfg.name)
            return
        children = [cfg.name] if cfg else []
        self._new_initiator(conn, children, now, remote=remote, keyingtry=keyingtry)

    def _new_initiator(
        self,
        conn: ConnectionConfig,
        children: list[str],
        now: float,
        *,
        remote: str | None = None,
        keyingtry: int = 0,
    ) -> IsakmpSa | None:
        """A new ISAKMP SA as initiator, or None while a DNS name is being resolved."""
        hub = self.ctx.hubs.active(conn)  # the first of remote_addrs, or the one moved to
        if hub is None:
            raise KeyError(f"{conn.name} has no remote address to initiate to")
        remote = remote or hub
        if is_name(remote):
            self.resolving.ask(conn, tuple(children), keyingtry)
            return None
        local_ip = conn.local_addrs[0] if conn.local_addrs else any_of(remote)
        sa = IsakmpSa(
            self.ctx,
            self.ctx.unique_id(),
            True,
            self.ctx.ike_spi(),
            (local_ip, self.config.daemon.ike_port),
            (remote, conn.remote_port),
            conn,
            now,
        )
        sa.keyingtry = keyingtry
        self.table.add(sa, wanted=children)
        sa.set_state(IkeState.CONNECTING)
        mode = "Aggressive" if conn.aggressive else "Main"
        log.info("%s: initiating %s Mode to %s", sa.tag(), mode, remote)
        try:
            if conn.aggressive:
                aggressive_mode.start(sa, now)
            else:
                main_mode.start(sa, now)
        except PeerError as e:
            sa.fail(str(e), now, self.remove_child)
        return sa

    def rebind(self, config: Config, kept: list[str], now: float) -> None:
        """After a reload (the shared context holds ``config``): SAs of unchanged
        connections follow the new objects; changed or new ones start if they should."""
        for sa in self.table.sas.values():
            if sa.conn is not None and sa.conn.name in kept:
                sa.conn = config.connections[sa.conn.name]
            self.table.touch(sa)  # its timers follow the new values
        self.traps.forget([k[0] for k in self.traps.reqids if k[0] not in kept])
        for conn in config.connections.values():
            if conn.version == 1 and conn.name not in kept:
                self.traps.install_configured(conn)
                for child in conn.children:
                    if child.start_action == "start":
                        self.initiate(conn.name, now, child.name)

    def start_quick_mode(
        self, sa: IsakmpSa, child: str, now: float, rekey: ChildSa | None = None
    ) -> None:
        """Start a Quick Mode for ``child`` (a new pair, or ``rekey``'s successor)."""
        assert sa.conn is not None
        self.table.touch(sa)
        cfg = sa.conn.child(child)
        if cfg is None:
            return
        try:
            qm = quick_mode.start(sa, cfg, now, rekey, self.traps.reqid(sa.name, child))
        except PeerError as e:
            log.error("%s: %s", sa.tag(), e)
            self.ctx.emit(ChildSaFailed(sa.name, child, e.reason))
            return
        sa.quick.add(qm)

    def terminate(self, conn_name: str, now: float, force: bool = False) -> None:
        """IKEv1's Deletes are one-shot (nothing waits for an answer), so ``force`` changes
        nothing: the SAs go at once either way."""
        # by name: after a reload the connection may be gone from the config
        self.retries.forget(conn_name)
        self.resolving.forget(conn_name)
        for sa in self.table.all():
            if sa.conn is not None and sa.conn.name == conn_name:
                self.delete_sa(sa, "terminated", now)

    def peer_paths(self) -> list[tuple[str, tuple[x509.Certificate, ...]]]:
        """(connection, validated peer path) of each ISAKMP SA authenticated by certificate."""
        return [(sa.name, sa.peer_path) for sa in self.table.all() if sa.peer_path]

    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]:
        """Delete the ISAKMP SAs (and their IPsec SAs) whose peer path ``revoked``
        condemns; one line per SA for the log."""
        out = []
        for sa in self.table.all():
            why = revoked(sa.peer_path) if sa.peer_path else None
            if why is not None:
                out.append(f"{sa.tag()}: {why}")
                self.delete_sa(sa, "revoked", now)
        return out

    def terminate_child(self, conn_name: str, child: str, now: float) -> None:
        """Delete the IPsec SAs named ``child`` of a connection with the peer (the ISAKMP
        SA stays). KeyError: no such child, or none of it is up."""
        conn = self.config.connections[conn_name]
        if conn.child(child) is None:
            raise KeyError(f"{conn_name} has no child {child}")
        found = False
        for sa in self.table.all():
            if sa.conn is not conn or sa.state != IkeState.ESTABLISHED:
                continue
            for c in list(sa.children):
                if c.name == child and c.state in (ChildState.INSTALLED, ChildState.FAILED):
                    self.delete_child(sa, c, "terminated", now)
                    found = True
        if not found:
            raise KeyError(f"{conn_name}.{child}: no CHILD_SA up")

    def resolved(self, conn_name: str, addresses: tuple[str, ...], now: float) -> None:
        """The answer to ``ResolveRequest``: the initiations that waited go on to the
        first address; none (the lookup failed) counts as a failed attempt."""
        conn = self.config.connections.get(conn_name)
        self.resolving.resolved(conn_name, conn, addresses, now, self.retries, self.initiate)
        self._sweep(now)

    def rekey(self, conn_name: str, now: float, child: str | None = None) -> None:
        conn = self.config.connections[conn_name]
        for sa in self.table.sas.values():
            if sa.conn is not conn or sa.state != IkeState.ESTABLISHED:
                continue
            if child is None:
                self.reauth(sa, now)
                return
            for c in sa.live_children():
                if c.name == child:
                    self.rekey_child(sa, c, now)
                    return
        raise KeyError(f"{conn_name}: nothing established to rekey")

    def acquire(self, reqid: int, now: float) -> None:
        """The kernel saw traffic for a trap policy (XFRM ACQUIRE): negotiate it."""
        found = self.traps.find(reqid)
        if found is not None:
            conn, child = found
            log.info("%s.%s: acquire for reqid %d", conn, child, reqid)
            self.initiate(conn, now, child)

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        for sa in self.table.with_spi(spi):
            for child in sa.children:
                if spi not in (child.spi_in, child.spi_out):
                    continue
                if (
                    hard
                    and sa.state == IkeState.ESTABLISHED
                    and child_lifecycle.hard_expired_early(sa.tag(), child, now)
                ):
                    if child.state == ChildState.INSTALLED:
                        self.rekey_child(sa, child, now)
                elif hard:
                    self.delete_child(sa, child, "expired", now)
                elif child.state == ChildState.INSTALLED:
                    self.rekey_child(sa, child, now)
                return

    def esp_wanted(self, now: float) -> list[SaSpec]:
        """As ``Ikev2Engine.esp_wanted``: the inbound SAs the DPD decisions due need
        (only the SAs due at ``now`` in the timer heap are looked at)."""
        self.table.retime(next_deadline)
        out: list[SaSpec] = []
        for sa in self.table.timers.due(now):
            due = dpd_due(sa)
            if due is not None and now >= due:
                out += liveness.esp_wanted(sa.children)
        return out

    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None:
        for sa in self.table.with_spi(spi):
            if liveness.esp_seen(sa.children, spi, packets, last_use, now):
                return

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        """The kernel refused IPsec SA ``unique_id`` (inbound SPI ``spi``): it is deleted.
        Its ISAKMP SA is found by the SPI (a hub does not walk its SAs per refusal)."""
        sas = self.table.with_spi(spi) if spi is not None else list(self.table.sas.values())
        for sa in sas:
            for child in sa.children:
                if child.unique_id == unique_id:
                    log.error("%s: CHILD_SA %s install failed: %s", sa.tag(), child.name, reason)
                    child.installed_at = None
                    self.delete_child(sa, child, "install_failed", now)
                    return

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None:
        """The answer to a ``SignRequest`` of ours (``signature_auth``): the phase-1
        message it completes goes out, or, without a signature, the SA fails closed
        (``pike.sa.signing``, which also ignores, logs and counts a late answer)."""
        pending = self.ctx.signatures.take(ref, 1)
        sa = pending.sa if pending is not None else None
        # the SA that asked, if the table still holds it and it still waits (no walk
        # through a hub's SAs per signature)
        if (
            pending is not None
            and isinstance(sa, IsakmpSa)
            and self.table.sas.get(sa.our_spi) is sa
            and sa.signing is pending
        ):
            self.table.touch(sa)
            sa.signing = None
            try:
                self.ctx.signatures.settle(pending, result, now)
            except PeerError as e:  # refused (logged by settle)
                sa.fail(e.reason, now, self.remove_child)
            else:
                if sa.state == IkeState.ESTABLISHED:
                    self._established(sa, now)
        self._sweep(now)

    def next_action(self) -> Action | None:
        return self.ctx.actions.popleft() if self.ctx.actions else None

    def get_timer(self) -> float | None:
        self.table.retime(next_deadline)
        # the log limit's too: a flood's last summary is written when its second is over
        times = [
            t
            for t in (
                self.table.timers.next(),
                self.retries.deadline(),
                self.ctx.log_limit.deadline(),
            )
            if t is not None
        ]
        return min(times) if times else None

    def list_sas(self) -> list[IkeSaInfo]:
        return [sa_info(sa) for sa in self.table.sas.values() if sa.state != IkeState.DESTROYED]

    def handle_timer(self, now: float) -> None:
        self.table.retime(next_deadline)
        for sa in self.table.timers.pop_due(now):
            self.table.touch(sa)
            if sa.state != IkeState.DESTROYED:
                on_timer(self, sa, now)
        for again in self.retries.due(now):
            self._dial(again, now)
        self.ctx.log_limit.flush(now)
        self._sweep(now)

    # -- what timers and peers set off ------------------------------------------------------
    def rekey_child(self, sa: IsakmpSa, child: ChildSa, now: float) -> None:
        child.set_state(ChildState.REKEYING, sa.name)
        self.start_quick_mode(sa, child.name, now, child)

    def reauth(self, sa: IsakmpSa, now: float) -> None:
        """IKEv1 has no phase-1 rekey: a new ISAKMP SA with its own Quick Modes replaces
        this one, which goes once they are installed (strongSwan's reauth for IKEv1)."""
        assert sa.conn is not None
        log.info("%s: reauthenticating", sa.tag())
        # as responder too (pikectl rekey), when the connection names the peer's address
        children = [c.name for c in sa.live_children()]
        new = self._new_initiator(sa.conn, children, now, remote=sa.remote[0])
        if new is not None:
            new.replaces = sa

    def lost(self, sa: IsakmpSa, now: float) -> None:
        """The peer stopped answering: the SA goes; then ``dpd_action`` (an established
        SA) or ``keyingtries`` (one still connecting) say what comes next."""
        conn = sa.conn
        wanted = self.table.wanted(sa)
        were_up = list(dict.fromkeys(c.name for c in sa.live_children()))
        if conn is not None and sa.established_at is not None and conn.dpd_action == "trap":
            for child in sa.live_children():
                # back to on-demand: the next packet brings the tunnel up again
                self.traps.install(conn, child.name, child.reqid, child)
        sa.fail("retransmit_timeout", now, self.remove_child)
        again = restart(self.ctx, sa, were_up, wanted)
        if again is not None:
            self._again(again, now)

    def _again(self, again: Restart, now: float) -> None:
        log.info("%s", again.note)
        if again.at > now:
            self.retries.add(again)
        else:
            self._dial(again, now)

    def _dial(self, again: Restart, now: float) -> None:
        conn = self.config.connections.get(again.conn)
        with contextlib.suppress(KeyError):  # no address to initiate to (a %any responder)
            if conn is None:
                return
            children = list(again.children) or [c.name for c in conn.children][:1]
            self._new_initiator(conn, children, now, keyingtry=again.keyingtry)

    def closed_by_peer(self, sa: IsakmpSa, children: list[ChildSa], whole: bool) -> None:
        """The peer deletes ``children`` (``whole``: with their ISAKMP SA): close_action.
        With the ISAKMP SA go our Quick Modes under way (a close_action = start that
        met the peer's Delete of the ISAKMP SA, as strongSwan sends it after the ESP ones)."""
        conn = sa.conn
        if conn is None:
            return
        for child in children:
            # its successor (a rekey, a reauthentication) is a child of the same
            # connection; walked only if close_action asks (a hub deletes often)
            others = (
                c
                for s in self.table.sas.values()
                if s.conn is not None and s.conn.name == conn.name and not (whole and s is sa)
                for c in s.children
            )
            if closed_by_peer(conn, child, others, self.traps, whole):
                self._reopen.append((conn.name, child.name))
        if whole:
            for qm in sa.quick:
                if qm.initiator and qm.rekey_of is None and qm.cfg.close_action == "start":
                    self._reopen.append((conn.name, qm.cfg.name))

    def delete_child(self, sa: IsakmpSa, child: ChildSa, reason: str, now: float) -> None:
        self.table.touch(sa)
        if sa.state == IkeState.ESTABLISHED and child.state != ChildState.DELETED:
            spi = child.spi_in.to_bytes(4, "big")
            informational.send(sa, [V1Delete(ProtocolV1.ESP, (spi,))])
        self.remove_child(child, reason, sa)

    def delete_sa(self, sa: IsakmpSa, reason: str, now: float) -> None:
        if sa.state == IkeState.ESTABLISHED:
            for child in list(sa.children):
                self.delete_child(sa, child, reason, now)
            informational.send(sa, [V1Delete(ProtocolV1.ISAKMP, (sa.spi_i + sa.spi_r,))])
        sa.fail(reason, now, self.remove_child)
        self._sweep(now)

    def remove_child(self, child: ChildSa, reason: str, sa: IsakmpSa | None = None) -> None:
        owner = sa or self.table.owner(child)
        tag, name = (owner.tag(), owner.name) if owner else ("-", "-")
        keep = self._shared_policies(child)
        ref = owner.ref() if owner else None
        child_lifecycle.remove(self.ctx, tag, name, child, reason, keep, ref)
        if owner is not None and child in owner.children:
            owner.children.remove(child)

    def _shared_policies(self, child: ChildSa) -> bool:
        return self.traps.keeps_policies(child)

    # -- datagrams -----------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        try:
            self._receive(data, src, dst, now)
        except MalformedMessage as e:
            self._drop(e.reason, src, str(e), now)
        except PeerError as e:
            self._drop(e.reason, src, str(e), now)
        self._sweep(now)
        reopen, self._reopen = self._reopen, []
        for conn, name in dict.fromkeys(reopen):
            with contextlib.suppress(KeyError):  # removed by a reload, or nothing to dial
                self.initiate(conn, now, name)

    def _drop(self, reason: str, src: Address, detail: str, now: float) -> None:
        self.ctx.counters.drop(reason)
        self.ctx.log_limit.log(
            log, logging.INFO, reason, now, "dropped IKEv1 message from %s[%d]: %s", *src, detail
        )
        self.ctx.emit(MessageDropped(reason, src))

    def _receive(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        check_size(self.config.daemon, data)
        msg = decode_v1(data)
        if msg.exchange in PHASE1 and msg.spi_r == bytes(8):
            sa = self.table.half_open((msg.spi_i, src[0], src[1]))
            if sa is None:
                phase1_request(self, msg, data, src, dst, now)
                return
        else:
            sa = self.table.find(msg)
            if sa is not None:
                self.table.answered(sa)
        if sa is None or sa.state == IkeState.DESTROYED:
            raise PeerError("unknown_spi", f"no ISAKMP_SA for cookies {msg.spi_i.hex()}")
        self.table.touch(sa)
        if msg.exchange == QUICK and sa.state == IkeState.CONNECTING and sa.p1.peer_id_b:
            # Aggressive Mode responder still waiting for AM3: the IV of a Quick Mode
            # derives from AM3's last block, so it can only be opened after AM3.
            if sa.hold_early(data, src, dst, MAX_QUEUED):
                log.info("%s: Quick Mode before AM3: queued", sa.tag())
            return
        mid = msg.message_id
        fl = sa.flights.get(mid)
        if fl is not None and fl.last_rx == data:
            if fl.answer is not None:
                log.debug("%s: retransmitting our answer to M-ID %08x", sa.tag(), mid)
                sa.send(fl.answer)
                return
            raise PeerError("duplicate", "a message we already took")
        if fl is not None and fl.done:
            raise PeerError("unexpected_message", f"M-ID {mid:08x} is complete")
        if msg.encrypted:
            cipher = sa.cipher
            if cipher is None:
                raise PeerError("unexpected_message", "encrypted before keys exist")
            try:
                msg = decrypt_v1(msg, lambda ct: cipher.decrypt(mid, ct, commit=False))
            except MalformedMessage:
                if not sa.initiator and sa.state == IkeState.CONNECTING:
                    sa.auth_suspect = "its phase-1 message does not decrypt: wrong PSK?"
                raise
            sa.uncommitted = (mid, data[28:])
            sa.arrived_on = (src, dst)
        elif msg.exchange not in PHASE1:
            informational.cleartext(self, sa, msg, now)
            return
        if self._await_chain(sa, msg, data, src, dst, now):
            sa.uncommitted = None  # decrypted again when fed again
            return
        self.count_in(sa, msg)
        saved = dataclasses.replace(fl) if fl is not None else None
        sa.flight(mid).received(data)
        try:
            self._dispatch(sa, msg, src, dst, now)
        except (PeerError, MalformedMessage) as e:
            if isinstance(e, PeerError) and e.reason == "auth_failed" and not sa.initiator:
                sa.auth_suspect = str(e).removeprefix("auth_failed: ")
            # Not taken: the exchange stays where it was (a forged or garbled message must
            # not move its IV chain or its flight).
            sa.uncommitted = None
            sa.restore_flight(mid, saved)
            raise
        sa.uncommitted = None
        sa.last_inbound = now

    def _await_chain(
        self, sa: IsakmpSa, msg: V1Message, data: bytes, src: Address, dst: Address, now: float
    ) -> bool:
        """Park a phase-1 message that authenticates the peer with certificates while its
        chain is checked off the loop (piked): True when it waits, or is a copy of the one
        waiting. Once answered, ``chain_checked`` feeds the same datagram again."""
        wait = sa.chain
        if wait is not None and wait.data == data:
            if wait.result is None:
                log.debug("%s: message again, its certificates are being checked", sa.tag())
                return True
            return False  # fed again with the answer
        if not self.ctx.offload_chains or not _verifies_peer(sa, msg):
            return False
        payloads = [CertPayload(c.encoding, c.data) for c in msg.all(V1Cert)]
        if not offloadable(payloads):
            return False
        conns = [sa.conn] if sa.conn is not None else []
        if not sa.initiator and sa.candidates is not None:
            # the peer's ID may pick another (signature_auth); one per distinct CA set
            conns += sa.candidates.distinct(trust_key)
        anchors = anchors_of(self.ctx.credentials, conns)
        if not anchors:
            return False
        certs = tuple(p.data for p in payloads)
        ref = self.ctx.sign_ref()
        sa.chain = ChainWait(ref, msg.message_id, False, None, data, src, dst, certs, anchors)
        self._chains[ref] = sa
        self.ctx.emit(CheckChain(ref, sa.name, certs, anchors, self.ctx.credentials.wall(now)))
        return True

    def chain_checked(self, ref: int, result: tuple[int, ...] | Exception, now: float) -> None:
        """The answer to a ``CheckChain`` of ours: the parked datagram is taken again,
        now with the verdict (``signature_auth.verify_peer``)."""
        sa = self._chains.pop(ref, None)
        if sa is None:
            return  # not ours (IKEv2's), or answered already
        wait = sa.chain
        if wait is None or wait.ref != ref or sa.state == IkeState.DESTROYED:
            log.debug("certificate check %d answered for an ISAKMP_SA that is gone", ref)
            self._sweep(now)
            return
        wait.result = result
        try:
            self.receive_datagram(wait.data, wait.src, wait.dst, now)
        finally:
            if sa.chain is wait:
                sa.chain = None

    def count_in(self, sa: IsakmpSa, msg: V1Message) -> None:
        c = self.ctx.counters.conn(sa.name).messages_in
        try:
            key = ExchangeV1(msg.exchange).name
        except ValueError:
            key = str(msg.exchange)
        c[key] = c.get(key, 0) + 1

    def _dispatch(
        self, sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float
    ) -> None:
        if msg.exchange == MAIN:
            self._main(sa, msg, src, dst, now)
        elif msg.exchange == AGGR:
            self._aggressive(sa, msg, src, dst, now)
        elif msg.exchange == QUICK:
            self._quick_mode(sa, msg, now)
        elif msg.exchange == INFO:
            informational.receive(self, sa, msg, now)
        else:
            raise PeerError("unsupported_exchange", f"exchange {msg.exchange}")

    def _main(self, sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float) -> None:
        step = sa.p1.step
        if msg.message_id != 0:
            raise PeerError("invalid_message_id", "Main Mode with a message ID")
        if sa.initiator and step == 1:
            main_mode.initiator_mm2(sa, msg, now)
        elif sa.initiator and step == 3:
            main_mode.initiator_mm4(sa, msg, src, dst, now)
        elif sa.initiator and step == 5:
            if not msg.encrypted:
                raise PeerError("unprotected", "MM6 in the clear")
            main_mode.initiator_mm6(sa, msg, now)
            self._established(sa, now)
        elif not sa.initiator and step == 2:
            main_mode.responder_mm3(sa, msg, src, dst, now)
        elif not sa.initiator and step == 4:
            if not msg.encrypted:
                raise PeerError("unprotected", "MM5 in the clear")
            main_mode.responder_mm5(sa, msg, now)
            self.table.authenticated(sa)
            if msg.notify(NotifyV1.INITIAL_CONTACT) is not None:
                self._initial_contact(sa, now)
            if sa.state == IkeState.ESTABLISHED:  # else once our signature is made
                self._established(sa, now)
        else:
            raise PeerError("unexpected_message", f"Main Mode message after step {step}")

    def _aggressive(
        self, sa: IsakmpSa, msg: V1Message, src: Address, dst: Address, now: float
    ) -> None:
        step = sa.p1.step
        if msg.message_id != 0:
            raise PeerError("invalid_message_id", "Aggressive Mode with a message ID")
        if sa.initiator and step == 1 and sa.conn is not None and sa.conn.aggressive:
            aggressive_mode.initiator_am2(sa, msg, src, dst, now)
            if sa.state == IkeState.ESTABLISHED:  # else once our signature is made
                self._established(sa, now)
        elif not sa.initiator and step == 2:
            aggressive_mode.responder_am3(sa, msg, src, dst, now)
            self.table.authenticated(sa)
            for data, qsrc, qdst in sa.take_early():
                self.receive_datagram(data, qsrc, qdst, now)
        else:
            raise PeerError("unexpected_message", f"Aggressive Mode message after step {step}")

    def has_contact(self, mine: IdKey, peer: IdKey) -> bool:
        """An ISAKMP SA of ours with these identities is up (no INITIAL-CONTACT then)."""
        return any(
            sa.state == IkeState.ESTABLISHED
            and sa.my_id is not None
            and sa.peer_id is not None
            and (sa.my_id.id_type, sa.my_id.data) == mine
            and (sa.peer_id.id_type, sa.peer_id.data) == peer
            for sa in self.table.established_with(peer)
        )

    def _initial_contact(self, sa: IsakmpSa, now: float) -> None:
        """RFC 2407 §4.6.3.3: the peer has no other SA with us (it restarted): what we
        still hold for the same identity is stale; removed without messages."""
        if sa.peer_id is None:
            return
        for other in self.table.established_with((sa.peer_id.id_type, sa.peer_id.data)):
            if (
                other is not sa
                and other.conn is sa.conn
                and other.peer_id == sa.peer_id
                and other.remote[0] == sa.remote[0]
                and other.state == IkeState.ESTABLISHED
            ):
                log.info("%s: INITIAL-CONTACT: replacing %s", sa.tag(), other.tag())
                other.fail("initial_contact", now, self.remove_child)

    def _established(self, sa: IsakmpSa, now: float) -> None:
        for child in self.table.take_wanted(sa):
            self.start_quick_mode(sa, child, now)

    def _quick_mode(self, sa: IsakmpSa, msg: V1Message, now: float) -> None:
        if sa.state != IkeState.ESTABLISHED:
            raise PeerError("unexpected_message", "Quick Mode before phase 1 is done")
        qm = sa.quick.get(msg.message_id)
        child: ChildSa | None
        if qm is None:
            qm = quick_mode.responder_qm1(sa, msg, now)
            qm.reqid = self.traps.reqid(sa.name, qm.cfg.name) or self._reqid_of(sa, qm)
            sa.quick.add(qm)
            return
        if qm.initiator and qm.step == 1:
            child = quick_mode.initiator_qm2(sa, qm, msg, now)
        elif not qm.initiator and qm.step == 2:
            child = quick_mode.responder_qm3(sa, qm, msg, now)
        else:
            raise PeerError("unexpected_message", "Quick Mode message out of order")
        sa.quick.done(qm)
        if child is not None:
            self._installed(sa, qm, child, now)

    @staticmethod
    def _reqid_of(sa: IsakmpSa, qm: QuickMode) -> int | None:
        """The peer's rekey of a child is just a new Quick Mode for the same selectors
        (IKEv1 names no SA it replaces): the new pair takes the old one's reqid, so the
        policies stay the same."""
        for child in sa.live_children():
            same = (child.local_ts, child.remote_ts) == ((qm.local_ts,), (qm.remote_ts,))
            if child.name == qm.cfg.name and same:
                return child.reqid
        return None

    def _installed(self, sa: IsakmpSa, qm: QuickMode, child: ChildSa, now: float) -> None:
        old = qm.rekey_of
        if old is not None and old.state != ChildState.DELETED:
            # make before break: the successor is in, the old pair goes (RFC 2409 §5.5 has
            # no rekey; strongSwan deletes the old SAs right away)
            self.delete_child(sa, old, "rekeyed", now)
        previous = sa.replaces
        pending = self.table.wanted(sa) or len(sa.quick) > 0
        if previous is not None and previous.state == IkeState.ESTABLISHED and not pending:
            self.ctx.counters.conn(sa.name).ike_rekeys += 1
            self.delete_sa(previous, "reauthenticated", now)

    def _sweep(self, now: float) -> None:
        """Forget destroyed SAs; an initiation that failed otherwise than by silence (that
        went through ``lost``) may start again (keyingtries = 0)."""
        for sa, wanted in self.table.sweep(next_deadline):
            if sa.delete_reason != "retransmit_timeout":
                again = restart(self.ctx, sa, [], wanted)
                if again is not None:
                    self._again(again, now)


__all__ = ["Ikev1Engine"]


def _verifies_peer(sa: IsakmpSa, msg: V1Message) -> bool:
    """Whether ``msg`` is the phase-1 message whose certificates authenticate the peer
    now (MM5, MM6, AM2, AM3): only those are worth a chain check."""
    step = sa.p1.step
    if msg.exchange == MAIN:
        return step == (5 if sa.initiator else 4)
    if msg.exchange == AGGR:
        return step == (1 if sa.initiator else 2)
    return False
