"""The sans-I/O IKEv2 engine: datagrams and time in, actions out (DESIGN.md).

One engine serves every IKEv2 connection of the daemon (strongSwan's ike_sa_manager):
it finds the IKE SA a datagram belongs to, or creates one as responder, and hands the
message to that SA's task manager. It never touches a socket, a clock or the kernel.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable

from pike.ikev2.actions import (
    Action,
    Address,
    DeleteChildSa,
    IkeSaInfo,
    InstallChildSa,
    InstallTrap,
    MessageDropped,
    SendDatagram,
    SendKeepalive,
)
from pike.ikev2.child_sa import ChildSa, trap_policies
from pike.ikev2.context import COOKIE_THRESHOLD, HALF_OPEN_TIMEOUT, Context, SpiAlloc
from pike.ikev2.cookies import CookieJar
from pike.ikev2.ike_sa import IkeSa
from pike.ikev2.state import ChildState, IkeState, RekeyRefused, log
from pike.ikev2.status import sa_info
from pike.ikev2.tasks.base import Task
from pike.ikev2.tasks.child_create import ChildCreate
from pike.ikev2.tasks.child_delete import ChildDelete
from pike.ikev2.tasks.ike_auth import IkeAuth
from pike.ikev2.tasks.ike_delete import IkeDelete, Informational
from pike.ikev2.tasks.ike_frag import IkeFrag
from pike.ikev2.tasks.ike_hash_algs import IkeHashAlgs
from pike.ikev2.tasks.ike_init import IkeInit
from pike.ikev2.tasks.ike_natd import IkeNatd
from pike.ikev2.tasks.ike_rekey import IkeRekey
from pike.policy.config import Config, ConnectionConfig
from pike.policy.ipsec import KernelCaps, UdpEncap
from pike.policy.ts import IPAddress
from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.constants import ExchangeType, NotifyType, ProtocolId
from pike.wire.errors import MalformedMessage
from pike.wire.fragments import open_fragment, reassemble
from pike.wire.header import Header, decode_header
from pike.wire.payloads import (
    DeletePayload,
    Message,
    NotifyPayload,
    SaPayload,
    SkfPayload,
    SkPayload,
)
from pike.wire.rules import check_payloads

MAX_FRAGMENTS = 64  # bounds the reassembly state a peer can make us hold


class Ikev2Engine:
    def __init__(
        self,
        config: Config,
        *,
        random: Callable[[int], bytes],
        kernel_caps: KernelCaps,
        spi_alloc: SpiAlloc | None = None,
    ) -> None:
        self.ctx = Context(config, random, kernel_caps, spi_alloc)
        self.sas: dict[bytes, IkeSa] = {}  # by our SPI
        self.half_open: dict[tuple[bytes, str, int], IkeSa] = {}
        self._cookies = CookieJar(random(32))
        self.ctx.adopt = self._adopt
        self.ctx.keeps_policies = self._keeps_policies
        self.ctx.trap_reqid = lambda conn, child: self.traps.get((conn, child))
        self.ctx.before_fail = self._before_fail
        self.traps: dict[tuple[str, str], int] = {}  # (conn, child) -> reqid

    @property
    def config(self) -> Config:
        return self.ctx.config

    # -- API -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        for conn in self.config.connections.values():
            if conn.version != 2:
                continue
            for child in conn.children:
                if child.start_action == "trap":
                    self._install_trap(conn, child.name, self.ctx.reqid(), None)
            for child in conn.children:
                if child.start_action == "start":
                    self.initiate(conn.name, now, child.name)
                    break

    # -- on-demand tunnels ---------------------------------------------------------------
    def _install_trap(
        self, conn: ConnectionConfig, child_name: str, reqid: int, child: ChildSa | None
    ) -> None:
        cfg = conn.child(child_name)
        if cfg is None or not conn.remote_addrs:
            return
        if child is not None:
            policies = child.policies
        else:
            local = conn.local_addrs[0] if conn.local_addrs else _any_of(conn.remote_addrs[0])
            policies = trap_policies(cfg, reqid, local, conn.remote_addrs[0])
        self.traps[(conn.name, child_name)] = reqid
        log.info("%s.%s: trap installed (reqid %d)", conn.name, child_name, reqid)
        self.ctx.emit(InstallTrap(conn.name, child_name, reqid, policies))

    def acquire(self, reqid: int, now: float) -> None:
        """The kernel saw traffic for a trap policy (XFRM ACQUIRE): negotiate it."""
        for (conn, child), r in self.traps.items():
            if r == reqid:
                log.info("%s.%s: acquire for reqid %d", conn, child, reqid)
                self.initiate(conn, now, child)
                return
        log.debug("acquire for unknown reqid %d ignored", reqid)

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        """The kernel's soft (rekey now) or hard (gone) lifetime of a CHILD_SA ran out,
        in time, bytes or packets."""
        for sa in self.sas.values():
            for child in sa.children:
                if spi not in (child.spi_in, child.spi_out):
                    continue
                if hard:
                    log.info(
                        "%s: CHILD_SA %s{%d} hard expired", sa.tag(), child.name, child.unique_id
                    )
                    sa.tasks.queue(ChildDelete(sa, True, child))
                elif child.state == ChildState.INSTALLED and sa.state == IkeState.ESTABLISHED:
                    log.info(
                        "%s: CHILD_SA %s{%d} soft expired", sa.tag(), child.name, child.unique_id
                    )
                    self._rekey_child(sa, child)
                sa.tasks.initiate(now)
                return

    def _keeps_policies(self, child: ChildSa) -> bool:
        if any(r == child.reqid for r in self.traps.values()):
            return True
        live = (ChildState.INSTALLED, ChildState.REKEYING, ChildState.REKEYED)
        mine = {(p.src_ts, p.dst_ts, p.direction) for p in child.policies}
        for sa in self.sas.values():
            for other in sa.children:
                if other is child or other.state not in live or other.installed_at is None:
                    continue
                if mine & {(p.src_ts, p.dst_ts, p.direction) for p in other.policies}:
                    return True
        return False

    def _before_fail(self, sa: IkeSa, reason: str) -> None:
        conn = sa.conn
        if conn is None or reason != "retransmit_timeout" or conn.dpd_action != "trap":
            return
        for child in sa.children:
            if child.state in (ChildState.INSTALLED, ChildState.REKEYING):
                # Back to on-demand: the next packet brings the tunnel up again.
                self._install_trap(conn, child.name, child.reqid, child)

    def initiate(
        self, conn_name: str, now: float, child: str | None = None, *, keyingtry: int = 0
    ) -> None:
        """Bring a connection (and ``child``, else its first child) up. ``keyingtry``: how
        many attempts of ``keyingtries`` went before this one (the engine's retries)."""
        conn = self.config.connections[conn_name]
        if conn.version != 2:
            raise KeyError(f"{conn_name} is not an IKEv2 connection")
        child_cfg = conn.child(child) if child else (conn.children[0] if conn.children else None)
        if child is not None and child_cfg is None:
            raise KeyError(f"{conn_name} has no child {child}")
        for sa in self.sas.values():
            if sa.conn is not conn or sa.state not in (IkeState.CONNECTING, IkeState.ESTABLISHED):
                continue
            wanted = child_cfg is not None and not self._has_child(sa, child_cfg.name)
            if wanted and sa.state == IkeState.ESTABLISHED:
                # Another pair of subnets to the same peer: CREATE_CHILD_SA (§1.3.1).
                sa.tasks.queue(
                    ChildCreate(sa, True, child_cfg, exchange=ExchangeType.CREATE_CHILD_SA)
                )
                sa.tasks.initiate(now)
                return
            log.info("%s: already up or connecting", sa.tag())
            return
        if not conn.remote_addrs or conn.remote_addrs[0] in ("%any", "0.0.0.0", "::"):
            raise KeyError(f"{conn_name} has no remote address to initiate to")
        local_ip = conn.local_addrs[0] if conn.local_addrs else _any_of(conn.remote_addrs[0])
        sa = IkeSa(
            self.ctx,
            self.ctx.unique_id(),
            True,
            self.ctx.ike_spi(),
            (local_ip, self.config.daemon.ike_port),
            (conn.remote_addrs[0], conn.remote_port),
            conn,
            created_at=now,
            keyingtry=keyingtry,
            initiate_child=child,
        )
        self.sas[sa.spi_i] = sa
        sa.set_state(IkeState.CONNECTING)
        log.info("%s: initiating IKE_SA to %s", sa.tag(), sa.remote[0])
        sa.tasks.queue(IkeInit(sa, True))
        sa.tasks.queue(IkeNatd(sa, True))
        sa.tasks.queue(IkeFrag(sa, True))
        sa.tasks.queue(IkeHashAlgs(sa, True))
        sa.tasks.queue(IkeAuth(sa, True))
        if child_cfg is not None:
            sa.tasks.queue(ChildCreate(sa, True, child_cfg))
        sa.tasks.initiate(now)

    def reload(self, config: Config, now: float) -> dict[str, list[str]]:
        """Apply a new config: unchanged connections keep their SAs untouched, changed or
        removed ones are torn down, and changed or new ones with start_action=start come
        up again. Returns the names by what happened to them."""
        old = self.ctx.config
        kept, changed, removed, added = [], [], [], []
        for name, conn in old.connections.items():
            new = config.connections.get(name)
            if new is None:
                removed.append(name)
            elif new == conn and _secrets_for(old, conn) == _secrets_for(config, new):
                kept.append(name)
            else:
                changed.append(name)
        added = [n for n in config.connections if n not in old.connections]
        for name in removed + changed:
            self.terminate(name, now)
        self.ctx.config = config
        for sa in self.sas.values():
            if sa.conn is not None and sa.conn.name in kept:
                sa.conn = config.connections[sa.conn.name]  # equal value, new object
        for key in [k for k in self.traps if k[0] in removed + changed]:
            del self.traps[key]
        for name in changed + added:
            conn = config.connections[name]
            if conn.version != 2:
                continue
            for child in conn.children:
                if child.start_action == "trap":
                    self._install_trap(conn, child.name, self.ctx.reqid(), None)
            starts = [c.name for c in conn.children if c.start_action == "start"]
            if starts:
                self.initiate(name, now, starts[0])
        log.info(
            "reloaded: %d unchanged, %d changed, %d removed, %d added",
            len(kept),
            len(changed),
            len(removed),
            len(added),
        )
        return {"unchanged": kept, "changed": changed, "removed": removed, "added": added}

    def rekey(self, conn_name: str, now: float, child: str | None = None) -> None:
        """Rekey a CHILD_SA (``child`` given) or the IKE SA of a connection now.

        KeyError: no such child, or no IKE SA at all; RekeyRefused (one line for pikectl):
        the SA exists but is not in a state to rekey (being set up, already rekeying)."""
        conn = self.config.connections[conn_name]
        if child is not None and conn.child(child) is None:
            raise KeyError(f"{conn_name} has no child {child}")
        mine = [sa for sa in self.sas.values() if sa.conn is conn]
        sa = next((s for s in mine if s.state == IkeState.ESTABLISHED), None)
        if sa is None:
            busy = next((s for s in mine if s.state != IkeState.DESTROYED), None)
            if busy is None:
                raise KeyError(f"{conn_name} has no established IKE SA")
            raise RekeyRefused(f"{conn_name}: IKE_SA is {busy.state.value}, not ESTABLISHED")
        if child is None:
            if any(isinstance(t, IkeRekey) for t in sa.tasks.queued + sa.tasks.active):
                raise RekeyRefused(f"{conn_name}: an IKE_SA rekey is already under way")
            sa.tasks.queue(IkeRekey(sa, True))
        else:
            named = [c for c in sa.children if c.name == child]
            ready = [c for c in named if c.state == ChildState.INSTALLED]
            if not named:
                raise RekeyRefused(f"{conn_name}.{child}: no CHILD_SA to rekey (not up)")
            if not ready:
                states = ", ".join(sorted({c.state.value for c in named}))
                raise RekeyRefused(
                    f"{conn_name}.{child}: CHILD_SA is {states}, not INSTALLED: not rekeyed"
                )
            for c in ready:
                self._rekey_child(sa, c)
        sa.tasks.initiate(now)

    def _rekey_child(self, sa: IkeSa, child: ChildSa) -> None:
        child.set_state(ChildState.REKEYING, sa.name)
        sa.tasks.queue(ChildCreate(sa, True, exchange=ExchangeType.CREATE_CHILD_SA, rekey=child))

    @staticmethod
    def _has_child(sa: IkeSa, name: str) -> bool:
        live = (ChildState.INSTALLED, ChildState.REKEYING, ChildState.CREATED)
        return any(c.name == name and c.state in live for c in sa.children)

    def terminate(self, conn_name: str, now: float) -> None:
        conn = self.config.connections[conn_name]
        for sa in list(self.sas.values()):
            if sa.conn is not conn:
                continue
            if sa.state in (IkeState.ESTABLISHED, IkeState.REKEYING, IkeState.REKEYED):
                sa.tasks.queue(IkeDelete(sa, True))
                sa.tasks.initiate(now)
            elif sa.state != IkeState.DELETING:
                sa.fail("terminated", now)
        self._sweep(now)

    def child_install_failed(self, unique_id: int, reason: str, now: float) -> None:
        for sa in self.sas.values():
            for child in sa.children:
                if child.unique_id == unique_id:
                    log.error(
                        "%s: CHILD_SA %s{%d} install failed: %s",
                        sa.tag(),
                        child.name,
                        unique_id,
                        reason,
                    )
                    child.installed_at = None  # nothing of it is in the kernel
                    sa.tasks.queue(ChildDelete(sa, True, child))
                    sa.tasks.initiate(now)
                    return

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None:
        """The answer to ``SignRequest`` ``ref``: the signature, or the error that makes
        that IKE SA fail closed. An answer for an SA that is gone is dropped."""
        for sa in list(self.sas.values()):
            if sa.tasks.signing == ref:
                answered = sa.tasks.sign_done(ref, result, now)
                if answered is not None:
                    self._after_request(sa, answered, now)
                break
        else:
            log.debug("signature %d answered for an IKE_SA that is gone: dropped", ref)
        self._sweep(now)

    def next_action(self) -> Action | None:
        return self.ctx.actions.popleft() if self.ctx.actions else None

    def get_timer(self) -> float | None:
        best: float | None = None
        for sa in self.sas.values():
            for t in self._deadlines(sa):
                if t is not None and (best is None or t < best):
                    best = t
        return best

    def _deadlines(self, sa: IkeSa) -> list[float | None]:
        times = [
            sa.tasks.deadline,
            sa.tasks.sign_deadline,
            self._half_open_deadline(sa),
            sa.dpd_due(),
        ]
        if sa.state == IkeState.ESTABLISHED:
            times += [sa.rekey_at, sa.keepalive_at]
        times.extend(c.next_deadline() for c in sa.children)
        return times

    def handle_timer(self, now: float) -> None:
        for sa in list(self.sas.values()):
            sa.tasks.on_timer(now)
            deadline = self._half_open_deadline(sa)
            if deadline is not None and now >= deadline:
                log.info("%s: half-open IKE_SA timed out", sa.tag())
                sa.fail("half_open_timeout", now, quiet=True)
                continue
            if sa.state != IkeState.ESTABLISHED:
                continue
            self._child_timers(sa, now)
            if sa.rekey_at is not None and now >= sa.rekey_at:
                sa.rekey_at = None
                log.info("%s: IKE_SA rekey_time reached", sa.tag())
                sa.tasks.queue(IkeRekey(sa, True))
            due = sa.dpd_due()
            if due is not None and now >= due:
                self._liveness(sa, now)
            if sa.keepalive_at is not None and now >= sa.keepalive_at:
                self._keepalive(sa, now)
            sa.tasks.initiate(now)
        self._sweep(now)

    def _child_timers(self, sa: IkeSa, now: float) -> None:
        for child in list(sa.children):
            if child.expire_at is not None and now >= child.expire_at:
                if child.state in (ChildState.INSTALLED, ChildState.REKEYING, ChildState.REKEYED):
                    log.info(
                        "%s: CHILD_SA %s{%d} life_time over", sa.tag(), child.name, child.unique_id
                    )
                    child.expire_at = None
                    sa.tasks.queue(ChildDelete(sa, True, child))
            elif child.rekey_at is not None and now >= child.rekey_at:
                child.rekey_at = None
                if child.state == ChildState.INSTALLED:
                    log.info(
                        "%s: CHILD_SA %s{%d} rekey_time reached",
                        sa.tag(),
                        child.name,
                        child.unique_id,
                    )
                    self._rekey_child(sa, child)

    def _keepalive(self, sa: IkeSa, now: float) -> None:
        """Behind a NAT we keep its mapping open (RFC 3948 §2.3, strongSwan: 20 s)."""
        self.ctx.counters.conn(sa.name).keepalives += 1
        self.ctx.emit(SendKeepalive(sa.local, sa.remote))
        sa.keepalive_at = now + self.config.daemon.keepalive

    def _liveness(self, sa: IkeSa, now: float) -> None:
        """DPD: probe only when neither IKE nor ESP brought news within dpd_delay."""
        probe = self.ctx.esp_activity
        if probe is not None:
            for child in sa.children:
                if child.inbound is None or child.installed_at is None:
                    continue
                seen = probe(child.inbound)
                if seen is not None and seen > sa.last_inbound:
                    sa.last_inbound = min(seen, now)
        due = sa.dpd_due()
        if due is None or now < due:
            log.debug(
                "%s: ESP from the peer within dpd_delay, next DPD check at %.3f",
                sa.tag(),
                due or 0.0,
            )
            return
        log.info(
            "%s: no traffic for %ss, sending DPD", sa.tag(), sa.conn.dpd_delay if sa.conn else "?"
        )
        sa.dpd_outstanding = True
        self.ctx.counters.conn(sa.name).dpd_probes += 1
        sa.tasks.queue(Informational(sa, True))

    # -- datagrams -----------------------------------------------------------------------
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        try:
            self._receive(data, src, dst, now)
        except MalformedMessage as e:
            self._drop(e.reason, src, str(e))
        self._sweep(now)

    def _receive(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        hdr = decode_header(data)
        if hdr.exchange == ExchangeType.IKE_SA_INIT and not hdr.is_response:
            self._init_request(hdr, data, src, dst, now)
            return
        # The I flag tells who created the SA: if the sender did, our SPI is the responder's.
        our_spi = hdr.spi_r if hdr.is_initiator else hdr.spi_i
        sa = self.sas.get(our_spi)
        if sa is None or sa.state == IkeState.DESTROYED:
            self._drop("unknown_spi", src, f"no IKE_SA with SPI {our_spi.hex()}")
            return
        if (hdr.exchange == ExchangeType.IKE_SA_INIT) != (sa.cipher_in is None):
            self._drop("unexpected_exchange", src, f"exchange {hdr.exchange} in this state")
            return
        msg = decode_message(data)
        if msg.first(SkfPayload) is not None:
            assert sa.cipher_in is not None
            whole = self._fragment(sa, data, msg)
            if whole is None:
                return  # more fragments to come
            msg = whole
            check_payloads(msg.exchange, msg.is_response, msg.payloads, True)
        elif msg.first(SkPayload) is None:
            if msg.exchange != ExchangeType.IKE_SA_INIT:
                # Only IKE_SA_INIT travels in clear; anything else unprotected is ignored.
                raise MalformedMessage("unprotected", f"exchange {msg.exchange} without SK")
        else:
            assert sa.cipher_in is not None
            try:
                msg = decrypt_message(data, msg, sa.cipher_in)
                check_payloads(msg.exchange, msg.is_response, msg.payloads, True)
            except MalformedMessage as e:
                # Authentic but malformed: a request gets the notify (RFC 7296 §2.21.2).
                if e.reason != "integrity_check_failed" and not hdr.is_response:
                    self._error_response(sa, hdr.exchange, hdr.message_id, e)
                raise
        sa.last_inbound = now
        sa.dpd_outstanding = False
        if msg.is_response:
            sa.tasks.on_response(msg, data, now)
            return
        if (
            (src, dst) != (sa.remote, sa.local)
            and msg.encrypted
            and msg.message_id == sa.tasks.mid_in
            and sa.tasks.held is None  # else a copy of the request our signature holds
        ):
            # Authenticated new request (not a retransmission or a replay, RFC 7296 §2.23)
            # from a new address/port: NAT float or mapping change.
            log.info("%s: peer moved from %s[%d] to %s[%d]", sa.tag(), *sa.remote, *src)
            sa.remote, sa.local = src, dst
            self._move_children(sa)
        sa.tasks.on_request(msg, data, self._responder_tasks(sa, msg), now)
        self._after_request(sa, msg, now)

    def _after_request(self, sa: IkeSa, msg: Message, now: float) -> None:
        """What follows an answered request (now, or once our signature was in)."""
        if (
            msg.exchange == ExchangeType.IKE_AUTH
            and sa.state == IkeState.ESTABLISHED
            and msg.notify(NotifyType.INITIAL_CONTACT) is not None
        ):
            self._initial_contact(sa, now)

    def _fragment(self, sa: IkeSa, data: bytes, msg: Message) -> Message | None:
        """Collect RFC 7383 fragments; the whole message once the last one is in."""
        assert sa.cipher_in is not None
        skf, chunk = open_fragment(data, msg, sa.cipher_in)  # authenticated before kept
        total = skf.total_fragments
        if not 1 <= skf.fragment_number <= total <= MAX_FRAGMENTS:
            raise MalformedMessage("invalid_fragment", f"{skf.fragment_number}/{total}")
        key = (msg.message_id, msg.is_response)
        have_total, first, chunks = sa.fragments.get(key, (total, 0, {}))
        if have_total != total:
            # A retransmission with other fragment sizes: start over (RFC 7383 §2.6.2).
            first, chunks = 0, {}
        if skf.fragment_number == 1:
            first = skf.first_payload
        chunks.setdefault(skf.fragment_number, chunk)
        sa.fragments = {key: (total, first, chunks)}  # one message at a time (window 1)
        if len(chunks) < total:
            return None
        del sa.fragments[key]
        return reassemble(msg, first, [chunks[i] for i in range(1, total + 1)])

    def _initial_contact(self, sa: IkeSa, now: float) -> None:
        """The peer rebooted: its older IKE SAs with us are gone on its side (§2.4)."""
        for other in list(self.sas.values()):
            if (
                other is not sa
                and other.conn is sa.conn
                and other.peer_id == sa.peer_id
                and other.state in (IkeState.ESTABLISHED, IkeState.REKEYING)
            ):
                log.info("%s: INITIAL_CONTACT from the peer, removing %s", sa.tag(), other.tag())
                other.fail("initial_contact", now)

    def _move_children(self, sa: IkeSa) -> None:
        """New outer addresses or ports (NAT mapping change): SAs follow (RFC 7296 §2.23)."""
        for child in sa.children:
            if child.state != ChildState.INSTALLED or child.inbound is None:
                continue
            old_in, old_out, old_pol = child.inbound, child.outbound, child.policies
            assert old_out is not None
            encap = UdpEncap(sa.remote[1], sa.local[1]) if sa.natt else None
            out_encap = UdpEncap(sa.local[1], sa.remote[1]) if sa.natt else None
            child.build_kernel_specs(sa.local[0], sa.remote[0], encap, out_encap)
            assert child.inbound is not None and child.outbound is not None
            self.ctx.emit(
                DeleteChildSa(sa.name, child.name, child.unique_id, old_in, old_out, old_pol, True)
            )
            self.ctx.emit(
                InstallChildSa(
                    sa.name,
                    child.name,
                    child.unique_id,
                    child.inbound,
                    child.outbound,
                    child.policies,
                    child.outbound_deferred,
                )
            )

    def _init_request(
        self, hdr: Header, data: bytes, src: Address, dst: Address, now: float
    ) -> None:
        key = (hdr.spi_i, src[0], src[1])
        existing = self.half_open.get(key)
        if existing is not None and existing.state != IkeState.DESTROYED:
            # A retransmitted IKE_SA_INIT: the task manager re-sends its cached response.
            existing.tasks.on_request(decode_message(data), data, [], now)
            return
        try:
            msg = decode_message(data)
            check_payloads(msg.exchange, False, msg.payloads, False)
        except MalformedMessage as e:
            if e.notify is not None:
                req = Message(hdr.spi_i, bytes(8), hdr.exchange, hdr.message_id, True, False)
                self._stateless_notify(req, src, dst, e.notify, _notify_data(e))
            raise
        candidates = self._connections_for(dst[0], src[0])
        if not candidates:
            log.info("no IKEv2 connection for %s...%s, sending NO_PROPOSAL_CHOSEN", dst[0], src[0])
            self._stateless_notify(msg, src, dst, NotifyType.NO_PROPOSAL_CHOSEN)
            self.ctx.counters.drop("no_config")
            return
        if self._half_open_count() >= COOKIE_THRESHOLD and not self._cookies.valid(msg, src[0]):
            self._stateless_notify(
                msg, src, dst, NotifyType.COOKIE, self._cookies.make(msg, src[0])
            )
            return
        sa = IkeSa(
            self.ctx,
            self.ctx.unique_id(),
            False,
            hdr.spi_i,
            dst,
            src,
            candidates[0],
            spi_r=self.ctx.ike_spi(),
            created_at=now,
        )
        sa.candidates = candidates
        sa.set_state(IkeState.CONNECTING)
        self.sas[sa.spi_r] = sa
        self.half_open[key] = sa
        sa.tasks.on_request(
            msg,
            data,
            [IkeInit(sa, False), IkeNatd(sa, False), IkeFrag(sa, False), IkeHashAlgs(sa, False)],
            now,
        )

    def _responder_tasks(self, sa: IkeSa, msg: Message) -> list[Task]:
        if msg.exchange == ExchangeType.IKE_AUTH:
            return [IkeAuth(sa, False), ChildCreate(sa, False)]
        if msg.exchange == ExchangeType.INFORMATIONAL:
            deletes = msg.all(DeletePayload)
            tasks: list[Task] = []
            if any(d.protocol == ProtocolId.IKE for d in deletes):
                tasks.append(IkeDelete(sa, False))
            elif any(d.protocol == ProtocolId.ESP for d in deletes):
                tasks.append(ChildDelete(sa, False))
            else:
                tasks.append(Informational(sa, False))
            return tasks
        if msg.exchange == ExchangeType.CREATE_CHILD_SA:
            sa_payload = msg.first(SaPayload)
            if sa_payload is not None and any(
                p.protocol == ProtocolId.IKE for p in sa_payload.proposals
            ):
                return [IkeRekey(sa, False)]
            return [ChildCreate(sa, False, exchange=ExchangeType.CREATE_CHILD_SA)]
        return [_Refuse(sa, NotifyType.NO_ADDITIONAL_SAS)]

    # -- helpers -------------------------------------------------------------------------
    def _connections_for(self, local: str, remote: str) -> list[ConnectionConfig]:
        out = []
        for conn in self.config.connections.values():
            if conn.version != 2:
                continue
            if conn.local_addrs and not _addr_in(local, conn.local_addrs):
                continue
            if conn.remote_addrs and not _addr_in(remote, conn.remote_addrs):
                continue
            out.append(conn)
        return out

    def _half_open_count(self) -> int:
        return sum(1 for sa in self.half_open.values() if sa.state == IkeState.CONNECTING)

    def _half_open_deadline(self, sa: IkeSa) -> float | None:
        if sa.initiator or sa.state != IkeState.CONNECTING:
            return None
        return sa.created_at + HALF_OPEN_TIMEOUT

    def _stateless_notify(
        self, req: Message, src: Address, dst: Address, notify: int, data: bytes = b""
    ) -> None:
        resp = Message(req.spi_i, bytes(8), req.exchange, req.message_id, False, True)
        resp.payloads.append(NotifyPayload(notify, data))
        self.ctx.emit(SendDatagram(encode_message(resp), dst, src))

    def _error_response(self, sa: IkeSa, exchange: int, mid: int, e: MalformedMessage) -> None:
        if mid != sa.tasks.mid_in or sa.cipher_out is None:
            return
        resp = sa.new_message(exchange, mid, response=True)
        resp.payloads.append(NotifyPayload(e.notify or NotifyType.INVALID_SYNTAX, _notify_data(e)))
        data = sa.encode(resp)
        sa.tasks.mid_in += 1
        sa.tasks.cached_response = (mid, [data])
        sa.send(data)

    def _drop(self, reason: str, src: Address, detail: str) -> None:
        log.info("dropped datagram from %s[%d]: %s", src[0], src[1], detail)
        self.ctx.counters.drop(reason)
        self.ctx.emit(MessageDropped(reason, src))

    def _adopt(self, sa: IkeSa) -> None:
        self.sas[sa.my_spi] = sa

    def _sweep(self, now: float) -> None:
        restart: list[str] = []
        retry: list[IkeSa] = []
        for spi, sa in list(self.sas.items()):
            if sa.state == IkeState.DESTROYED:
                del self.sas[spi]
                conn = sa.conn
                if self._retries(sa):
                    retry.append(sa)
                dead = sa.established_at is not None and sa.delete_reason == "retransmit_timeout"
                if conn is not None and dead and sa.dpd_outstanding:
                    self.ctx.counters.conn(conn.name).dpd_failures += 1
                if conn is not None and dead and conn.dpd_action == "restart":
                    restart.append(conn.name)
            elif sa.state == IkeState.ESTABLISHED and not sa.scheduled:
                sa.scheduled = True
                sa.schedule(now)
                forced = sa.conn is not None and sa.conn.encap
                if (sa.nat_local or forced) and self.config.daemon.keepalive:
                    sa.keepalive_at = now + self.config.daemon.keepalive
        for key, sa in list(self.half_open.items()):
            if sa.state != IkeState.CONNECTING:
                del self.half_open[key]
        for name in restart:
            log.info("%s: peer is dead, dpd_action=restart: initiating again", name)
            with contextlib.suppress(KeyError):
                self.initiate(name, now)
        for sa in retry:
            assert sa.conn is not None
            tries = sa.conn.keyingtries
            log.info(
                "%s: peer not responding, trying again (%d/%s)",
                sa.tag(),
                sa.keyingtry + 2,
                tries or "forever",
            )
            with contextlib.suppress(KeyError):
                self.initiate(sa.conn.name, now, sa.initiate_child, keyingtry=sa.keyingtry + 1)

    def _retries(self, sa: IkeSa) -> bool:
        """keyingtries (strongSwan's meaning): an initiation whose retransmissions all went
        unanswered starts again, up to keyingtries attempts in all (0: until it works).
        Errors the peer answered (NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED...) are final.
        The retransmission sequence (retransmit_timeout x base^n) spaces the attempts."""
        conn = sa.conn
        if (
            conn is None
            or not sa.initiator
            or sa.established_at is not None
            or sa.delete_reason != "retransmit_timeout"
            or self.config.connections.get(conn.name) != conn  # removed or changed meanwhile
        ):
            return False
        return conn.keyingtries == 0 or sa.keyingtry + 1 < conn.keyingtries

    # -- status --------------------------------------------------------------------------
    def list_sas(self) -> list[IkeSaInfo]:
        return [sa_info(sa) for sa in self.sas.values()]


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


def _notify_data(e: MalformedMessage) -> bytes:
    """UNSUPPORTED_CRITICAL_PAYLOAD names the payload type in one octet (RFC 7296 §3.10.1)."""
    if e.notify == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD and e.detail.isdigit():
        return bytes((int(e.detail) & 0xFF,))
    return b""


def _secrets_for(config: Config, conn: ConnectionConfig) -> bytes | None:
    """The PSK a connection would use: a changed key is a changed connection."""
    local = conn.local.id.text if conn.local.id else (conn.local_addrs or ("",))[0]
    remote = conn.remote.id.text if conn.remote.id else (conn.remote_addrs or ("",))[0]
    return config.psk_for(local, remote)


def _addr_in(addr: str, configured: tuple[str, ...]) -> bool:
    if "%any" in configured:
        return True
    ip = ipaddress.ip_address(addr)
    for c in configured:
        try:
            if ip in ipaddress.ip_network(c, strict=False):
                return True
        except ValueError:
            continue
    return False


def _any_of(remote: str) -> str:
    return "0.0.0.0" if ipaddress.ip_address(remote).version == 4 else "::"


__all__ = ["IPAddress", "Ikev2Engine"]
