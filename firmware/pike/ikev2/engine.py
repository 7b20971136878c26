"""The sans-I/O IKEv2 engine: datagrams and time in, actions out (docs/architecture.md).

One engine serves every IKEv2 connection of the daemon (strongSwan's ike_sa_manager):
it finds the IKE SA a datagram belongs to, or creates one as responder, and hands the
message to that SA's task manager. It never touches a socket, a clock or the kernel.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from ipaddress import ip_address
from typing import TYPE_CHECKING

from pike.ikev2 import chain_wait, reauth
from pike.ikev2.ike_sa import IkeSa, Ikev2Context
from pike.ikev2.log import log
from pike.ikev2.reassembly import collect_fragment
from pike.ikev2.responder import InitResponder, notify_data, responder_tasks
from pike.ikev2.status import sa_info
from pike.ikev2.tasks.child_create import ChildCreate
from pike.ikev2.tasks.child_delete import ChildDelete
from pike.ikev2.tasks.ike_auth import IkeAuth
from pike.ikev2.tasks.ike_delete import IkeDelete
from pike.ikev2.tasks.ike_init import IkeInit
from pike.ikev2.tasks.ike_mobike import MobikeUpdate, list_changed
from pike.ikev2.tasks.ike_rekey import IkeRekey
from pike.ikev2.timers import arm, next_deadline, on_timer, rekey_child
from pike.policy.addrs import any_of
from pike.policy.config import Config, ConnectionConfig, Identity
from pike.policy.ipsec import KernelCaps, SaSpec, UdpEncap
from pike.policy.ts import IPAddress
from pike.sa import child_lifecycle, liveness
from pike.sa.actions import (
    Action,
    Address,
    CheckChain,
    DeleteChildSa,
    IkeSaInfo,
    MessageDropped,
)
from pike.sa.admission import check_size
from pike.sa.child_sa import ChildSa
from pike.sa.context import IdKey, Selectors
from pike.sa.credentials import CredentialStore
from pike.sa.ports import SpiSource
from pike.sa.resolving import Resolving, is_name
from pike.sa.restarts import Pending, Restart, closed_by_peer, restart
from pike.sa.revocation import RevokedCheck
from pike.sa.spi_index import SpiIndex
from pike.sa.state import ChildState, IkeState, RekeyRefused
from pike.sa.timer_queue import TimerQueue, is_set
from pike.sa.traps import Traps
from pike.wire.codec import decode_message, decrypt_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.errors import MalformedMessage
from pike.wire.header import decode_header
from pike.wire.payloads import Message, NotifyPayload, SkfPayload, SkPayload
from pike.wire.rules import check_payloads

if TYPE_CHECKING:
    from cryptography import x509

# Looked up for every datagram: an Enum member lookup goes through EnumType.__getattr__
# on Python 3.11 (~0.3 µs), a module global does not.
_IKE_SA_INIT, _IKE_AUTH = ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH
_INITIAL_CONTACT = NotifyType.INITIAL_CONTACT
_DESTROYED, _ESTABLISHED = IkeState.DESTROYED, IkeState.ESTABLISHED
_CONNECTING = IkeState.CONNECTING


class Ikev2Engine:
    def __init__(
        self,
        config: Config,
        *,
        random: Callable[[int], bytes],
        kernel_caps: KernelCaps,
        spis: SpiSource | None = None,
        credentials: CredentialStore | None = None,
    ) -> None:
        self.ctx = Ikev2Context(config, random, kernel_caps, spis, credentials or CredentialStore())
        self.sas: dict[bytes, IkeSa] = {}  # by our SPI
        self._chains: dict[int, IkeSa] = {}  # CheckChain refs not answered yet
        self._responder = InitResponder(self.ctx, self.sas, random)
        self.half_open = self._responder.half_open
        self.traps = Traps(self.ctx)
        self.ctx.adopt = self._adopt
        self.ctx.reauth = self._reauth
        self.ctx.overlapping = self._overlapping
        self.ctx.keeps_policies = self.traps.keeps_policies
        self.ctx.trap_reqid = self.traps.reqid
        self.ctx.before_fail = self._before_fail
        self.ctx.child_closed = self._child_closed
        self.ctx.has_contact = self.has_contact
        self.ctx.touched = self._touch
        self.ctx.path_refused = self._path_refused
        self._reopen: list[tuple[str, str]] = []  # close_action = start: (conn, child)
        self.retries = Pending()  # keyingtries waiting for their backoff
        self.resolving = Resolving(self.ctx)  # initiations waiting for a DNS name
        # What keeps a step's cost flat with 10 000 SAs: one heap of each SA's next
        # deadline, the SAs a step touched (only they are looked at again by _sweep),
        # and the SAs by connection and peer identity (INITIAL_CONTACT, overlapping
        # children, initiate/rekey/terminate), all kept up to date by _sweep.
        self._timers: TimerQueue[IkeSa] = TimerQueue()
        self._dirty: dict[IkeSa, None] = {}  # an ordered set
        self._by_conn: dict[str, dict[IkeSa, None]] = {}
        # by (connection, peer's ID type, ID data): only SAs whose peer is known (every
        # lookup names one); strings, ints and bytes hash in C, an Identity in Python
        self._by_peer: dict[tuple[str, int, bytes], dict[IkeSa, None]] = {}
        self._keys: dict[IkeSa, tuple[str, Identity | None]] = {}
        # the SAs by the peer's identity alone (has_contact, per IKE_AUTH we initiate)
        self._by_peer_id: dict[IdKey, dict[IkeSa, None]] = {}
        # CHILD_SA SPIs (ours and the peer's) -> their IKE SA, for the kernel's expiries
        self._by_spi: SpiIndex[IkeSa] = SpiIndex()
        # the source address the routing table gives toward a peer (paths_changed)
        self._sources: dict[str, str | None] = {}

    @property
    def config(self) -> Config:
        return self.ctx.config

    # -- API -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        for conn in self.config.connections.values():
            if conn.version != 2:
                continue
            self.traps.install_configured(conn)
            for child in conn.children:
                if child.start_action == "start":  # the first in IKE_AUTH, the others after
                    self.initiate(conn.name, now, child.name)

    def acquire(self, reqid: int, now: float) -> None:
        """The kernel saw traffic for a trap policy (XFRM ACQUIRE): negotiate it."""
        trap = self.traps.find(reqid)
        if trap is None:
            log.debug("acquire for unknown reqid %d ignored", reqid)
            return
        conn, child = trap
        log.info("%s.%s: acquire for reqid %d", conn, child, reqid)
        self.initiate(conn, now, child)

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        """The kernel's soft (rekey now) or hard (gone) lifetime of a CHILD_SA ran out,
        in time, bytes or packets."""
        for sa in self._with_spi(spi):
            for child in sa.children:
                if spi not in (child.spi_in, child.spi_out):
                    continue
                if (
                    hard
                    and sa.state == IkeState.ESTABLISHED
                    and child_lifecycle.hard_expired_early(sa.tag(), child, now)
                ):
                    if child.state == ChildState.INSTALLED:
                        rekey_child(sa, child)
                elif hard:
                    log.info(
                        "%s: CHILD_SA %s{%d} hard expired", sa.tag(), child.name, child.unique_id
                    )
                    sa.tasks.queue(ChildDelete(sa, True, child))
                elif child.state == ChildState.INSTALLED and sa.state == IkeState.ESTABLISHED:
                    log.info(
                        "%s: CHILD_SA %s{%d} soft expired", sa.tag(), child.name, child.unique_id
                    )
                    rekey_child(sa, child)
                sa.tasks.initiate(now)
                self._touch(sa)
                self._sweep(now)
                return

    def _with_spi(self, spi: int) -> Iterator[IkeSa]:
        """The IKE SA whose CHILD_SA has ``spi`` first (indexed by _settle), then, should
        the index be behind, every IKE SA."""
        hit = self._by_spi.get(spi)
        if hit is not None:
            yield hit
        yield from list(self.sas.values())

    def esp_wanted(self, now: float) -> list[SaSpec]:
        """The inbound SAs whose kernel counters the DPD decisions due at ``now`` need;
        the runtime reports each with ``esp_seen`` before ``handle_timer(now)``. Only the
        SAs due at ``now`` in the timer heap are looked at."""
        self._retime()
        out: list[SaSpec] = []
        for sa in self._timers.due(now):
            due = sa.dpd_due()
            if due is not None and now >= due:
                out += liveness.esp_wanted(sa.children)
        return out

    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None:
        """The kernel's counters of our inbound SA ``spi``: its packets and last use (on
        the engine's clock, None if never used)."""
        for sa in self._with_spi(spi):
            if liveness.esp_seen(sa.children, spi, packets, last_use, now):
                return

    def initiate(
        self,
        conn_name: str,
        now: float,
        child: str | None = None,
        *,
        keyingtry: int = 0,
        remote: str | None = None,
    ) -> None:
        """Bring a connection (and ``child``, else its first child) up. ``keyingtry``: how
        many attempts of ``keyingtries`` went before this one (the engine's retries);
        ``remote``: the address a DNS name in ``remote_addrs`` resolved to (else the
        initiation waits for ``resolved``)."""
        conn = self.config.connections[conn_name]
        if conn.version != 2:
            raise KeyError(f"{conn_name} is not an IKEv2 connection")
        child_cfg = conn.child(child) if child else (conn.children[0] if conn.children else None)
        if child is not None and child_cfg is None:
            raise KeyError(f"{conn_name} has no child {child}")
        for sa in self._of_conn(conn):
            if sa.state not in (IkeState.CONNECTING, IkeState.ESTABLISHED):
                continue
            wanted = (
                child_cfg is not None
                and not self._has_child(sa, child_cfg.name)
                and not _child_queued(sa, child_cfg.name)
            )
            if wanted and child_cfg is not None and (sa.initiator or sa.established_at):
                # Another pair of subnets to the same peer: CREATE_CHILD_SA (§1.3.1), at
                # once, or right after IKE_AUTH while our IKE SA is still connecting.
                sa.tasks.queue(
                    ChildCreate(sa, True, child_cfg, exchange=ExchangeType.CREATE_CHILD_SA)
                )
                sa.tasks.initiate(now)
                self._touch(sa)
                return
            log.info("%s: already up or connecting", sa.tag())
            return
        hub = self.ctx.hubs.active(conn)  # the first of remote_addrs, or the one moved to
        if hub is None:
            raise KeyError(f"{conn_name} has no remote address to initiate to")
        remote = remote or hub
        if is_name(remote):
            self.resolving.ask(conn, (child,) if child else (), keyingtry)
            return
        local_ip = (
            conn.local_addrs[0] if conn.local_addrs else self._sources.get(remote) or any_of(remote)
        )
        sa = IkeSa(
            self.ctx,
            self.ctx.unique_id(),
            True,
            self.ctx.ike_spi(),
            (local_ip, self.config.daemon.ike_port),
            (remote, conn.remote_port),
            conn,
            created_at=now,
        )
        sa.keyingtry, sa.initiate_child = keyingtry, child  # (kept only when set)
        self.sas[sa.spi_i] = sa
        sa.set_state(IkeState.CONNECTING)
        self._index(sa)
        log.info("%s: initiating IKE_SA to %s", sa.tag(), sa.remote[0])
        sa.tasks.queue(IkeInit(sa, True))
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
            self.retries.forget(name)
            self.resolving.forget(name)
            self.ctx.hubs.forget(name)
        self.ctx.config = config
        for sa in self.sas.values():
            if sa.conn is not None and sa.conn.name in kept:
                sa.set_conn(config.connections[sa.conn.name])  # equal value, new object
            self._touch(sa)
        self.traps.forget(removed + changed)
        for name in changed + added:
            conn = config.connections[name]
            if conn.version != 2:
                continue
            self.traps.install_configured(conn)
            for child in conn.children:
                if child.start_action == "start":
                    self.initiate(name, now, child.name)
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
        mine = self._of_conn(conn)
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
                rekey_child(sa, c)
        sa.tasks.initiate(now)
        self._touch(sa)

    @staticmethod
    def _has_child(sa: IkeSa, name: str) -> bool:
        live = (ChildState.INSTALLED, ChildState.REKEYING, ChildState.CREATED)
        return any(c.name == name and c.state in live for c in sa.children)

    def terminate(self, conn_name: str, now: float, force: bool = False) -> None:
        """Delete a connection's IKE SAs with the peer. ``force`` (swanctl's --force): the
        SAs go now, without waiting for answers or retransmitting (a Delete goes out once
        when no other exchange holds the window), so a stuck SA is cleared at once."""
        conn = self.config.connections[conn_name]
        self.retries.forget(conn_name)
        self.resolving.forget(conn_name)
        for sa in self._of_conn(conn):
            self._touch(sa)
            if sa.state in (IkeState.ESTABLISHED, IkeState.REKEYING, IkeState.REKEYED):
                sa.tasks.queue(IkeDelete(sa, True))
                sa.tasks.initiate(now)
                if force:
                    sa.fail("terminated", now)
            elif sa.state != IkeState.DELETING or force:
                sa.fail("terminated", now)
        self._sweep(now)

    def peer_paths(self) -> list[tuple[str, tuple[x509.Certificate, ...]]]:
        """(connection, validated peer path) of each IKE SA authenticated by certificate."""
        return [
            (sa.name, sa.peer_path)
            for sas in self._by_conn.values()
            for sa in sas
            if sa.peer_path and sa.state != IkeState.DESTROYED
        ]

    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]:
        """Delete the IKE SAs whose peer path ``revoked`` condemns (a refreshed CRL);
        one line per SA for the log."""
        out = []
        for sas in list(self._by_conn.values()):
            for sa in list(sas):
                why = revoked(sa.peer_path) if sa.peer_path else None
                if why is None or sa.state == IkeState.DESTROYED:
                    continue
                out.append(f"{sa.tag()}: {why}")
                self._touch(sa)
                if sa.state in (IkeState.ESTABLISHED, IkeState.REKEYING, IkeState.REKEYED):
                    sa.tasks.queue(IkeDelete(sa, True))
                    sa.tasks.initiate(now)
                sa.fail("revoked", now)
        self._sweep(now)
        return out

    def terminate_child(self, conn_name: str, child: str, now: float) -> None:
        """Delete the CHILD_SAs named ``child`` of a connection with the peer (the IKE SA
        stays). KeyError: no such child, or none of it is up."""
        conn = self.config.connections[conn_name]
        if conn.child(child) is None:
            raise KeyError(f"{conn_name} has no child {child}")
        found = False
        for sa in self.sas.values():
            if sa.conn is not conn or sa.state != IkeState.ESTABLISHED:
                continue
            for c in sa.children:
                if c.name == child and c.state in (ChildState.INSTALLED, ChildState.FAILED):
                    sa.tasks.queue(ChildDelete(sa, True, c))
                    found = True
            sa.tasks.initiate(now)
        if not found:
            raise KeyError(f"{conn_name}.{child}: no CHILD_SA up")

    def resolved(self, conn_name: str, addresses: tuple[str, ...], now: float) -> None:
        """The answer to ``ResolveRequest``: the initiations that waited go on to the
        first address; none (the lookup failed) counts as a failed attempt."""
        conn = self.config.connections.get(conn_name)
        self.resolving.resolved(conn_name, conn, addresses, now, self.retries, self.initiate)
        self._sweep(now)

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        """The kernel refused CHILD_SA ``unique_id`` (inbound SPI ``spi``): it is deleted.
        Its IKE SA is found by the SPI (a hub does not walk its SAs per refusal)."""
        for sa in self._with_spi(spi) if spi is not None else list(self.sas.values()):
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
                    self._touch(sa)
                    self._sweep(now)
                    return

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None:
        """The answer to ``SignRequest`` ``ref``: the signature, or the error that makes
        that IKE SA fail closed (``pike.sa.signing``, which also ignores, logs and counts
        an answer that comes too late)."""
        pending = self.ctx.signatures.take(ref, 2)
        sa = pending.sa if pending is not None else None
        # the SA that asked, if this engine still holds it and it still waits (a hub
        # signing for thousands of SAs does not look through them)
        if (
            pending is not None
            and isinstance(sa, IkeSa)
            and self.sas.get(sa.my_spi) is sa
            and sa.tasks.pending is pending
        ):
            self._touch(sa)
            answered = sa.tasks.sign_done(pending, result, now)
            if answered is not None:
                self._after_request(sa, answered, now)
        self._sweep(now)

    def next_action(self) -> Action | None:
        return self.ctx.actions.popleft() if self.ctx.actions else None

    def get_timer(self) -> float | None:
        if self._dirty:
            self._retime()
        # the log limit's too: a flood's last summary is written when its second is over
        times = (self._timers.next(), self.retries.deadline(), self.ctx.log_limit.deadline())
        return min(filter(is_set, times), default=None)

    def handle_timer(self, now: float) -> None:
        self._retime()
        for sa in self._timers.pop_due(now):
            self._touch(sa)
            if sa.state != IkeState.DESTROYED:
                on_timer(self.ctx, sa, now)
        for again in self.retries.due(now):
            self._restart(again, now)
        self.ctx.log_limit.flush(now)
        self._sweep(now)

    def _retime(self) -> None:
        """The heap entries of the SAs touched since the last step (API calls do not
        sweep; a timer asked for after one must see what it started)."""
        for sa in self._dirty:
            self._timers.set(sa, None if sa.state == IkeState.DESTROYED else next_deadline(sa))

    # -- datagrams -----------------------------------------------------------------------
    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        try:
            self._receive(data, src, dst, now)
        except MalformedMessage as e:
            self._drop(e.reason, src, str(e), now)
        self._sweep(now)

    def _receive(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        check_size(self.ctx.config.daemon, data)
        hdr = decode_header(data)
        if hdr.exchange == _IKE_SA_INIT and not hdr.is_response:
            self._responder.request(hdr, data, src, dst, now)
            return
        # The I flag tells who created the SA: if the sender did, our SPI is the responder's.
        our_spi = hdr.spi_r if hdr.is_initiator else hdr.spi_i
        sa = self.sas.get(our_spi)
        if sa is None or sa.state is _DESTROYED:
            self._drop("unknown_spi", src, f"no IKE_SA with SPI {our_spi.hex()}", now)
            return
        self._touch(sa)
        if (hdr.exchange == _IKE_SA_INIT) != (sa.cipher_in is None):
            self._drop("unexpected_exchange", src, f"exchange {hdr.exchange} in this state", now)
            return
        msg = decode_message(data, hdr)
        skf, sk = msg.first(SkfPayload), msg.first(SkPayload)
        if (skf is not None or sk is not None) and sa.cipher_in is None:
            # An IKE_SA_INIT (response) carrying SK or SKF: there are no keys to open it.
            raise MalformedMessage("unexpected_payload", "SK/SKF before the IKE SA has keys")
        if skf is not None:
            assert sa.cipher_in is not None  # sealed, and checked just above
            whole = collect_fragment(sa, data, msg)
            if whole is None:
                return  # more fragments to come
            msg = whole
            check_payloads(msg.exchange, msg.is_response, msg.payloads, True)
        elif sk is None:
            if msg.exchange != _IKE_SA_INIT:
                # Only IKE_SA_INIT travels in clear; anything else unprotected is ignored.
                raise MalformedMessage("unprotected", f"exchange {msg.exchange} without SK")
        else:
            assert sa.cipher_in is not None  # sealed, and checked just above
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
        if self._await_chain(sa, msg, data, src, dst, now):
            return
        self._dispatch(sa, msg, data, src, dst, now)

    def _await_chain(
        self, sa: IkeSa, msg: Message, data: bytes, src: Address, dst: Address, now: float
    ) -> bool:
        """Park an IKE_AUTH message whose CERT chain is checked off the loop (piked):
        True when it waits (or is a copy of the one waiting)."""
        wait = sa.seldom.chain if sa.seldom is not None else None
        if wait is not None and (wait.message_id, wait.response) == (
            msg.message_id,
            msg.is_response,
        ):
            log.debug(
                "%s: message %d again, its certificates are being checked", sa.tag(), msg.message_id
            )
            return True
        found = chain_wait.wanted(sa, msg)
        if found is None:
            return False
        certs, anchors = found
        ref = self.ctx.sign_ref()
        sa.chain = chain_wait.ChainWait(
            ref, msg.message_id, msg.is_response, msg, data, src, dst, certs, anchors
        )
        self._chains[ref] = sa
        when = self.ctx.credentials.wall(now)
        self.ctx.emit(CheckChain(ref, sa.name, certs, anchors, when))
        return True

    def chain_checked(self, ref: int, result: tuple[int, ...] | Exception, now: float) -> None:
        """The answer to ``CheckChain`` ``ref``: the message that waited goes on, with the
        verdict for ``IkeAuth._verify``. An answer for an SA that is gone is dropped."""
        sa = self._chains.pop(ref, None)
        if sa is None:
            return  # not ours (IKEv1's)
        wait = sa.chain
        if wait is None or wait.ref != ref or sa.state == IkeState.DESTROYED:
            log.debug("certificate check %d answered for an IKE_SA that is gone: dropped", ref)
            self._sweep(now)
            return
        self._touch(sa)
        wait.result = result
        assert wait.msg is not None  # IKEv2 parks the decrypted message
        try:
            self._dispatch(sa, wait.msg, wait.data, wait.src, wait.dst, now)
        except MalformedMessage as e:
            self._drop(e.reason, wait.src, str(e), now)
        finally:
            sa.chain = None
        self._sweep(now)

    def _dispatch(
        self, sa: IkeSa, msg: Message, data: bytes, src: Address, dst: Address, now: float
    ) -> None:
        """An authenticated message, to the SA's task manager."""
        if msg.is_response:
            sa.tasks.on_response(msg, data, now)
            return
        sa.request_path, sa.reply_path = (dst, src), None
        if (src, dst) == (sa.remote, sa.local):
            pass  # the usual case: from where the IKE SA is
        elif not (
            msg.encrypted
            and msg.message_id == sa.tasks.mid_in
            and sa.tasks.held is None  # else a copy of the request our signature holds
        ):
            pass  # not a new authenticated request: no reason to move
        elif sa.mobike and not sa.nat_remote:
            # MOBIKE: only UPDATE_SA_ADDRESSES moves the IKE SA (RFC 4555 §3.5); a new
            # request from elsewhere is answered where it came from. A peer behind a NAT
            # still moves with its mapping (below), as strongSwan lets it.
            sa.reply_path = (dst, src)
        else:
            # Authenticated new request (not a retransmission or a replay, RFC 7296 §2.23)
            # from a new address/port: NAT float or mapping change. Before IKE_AUTH anyone
            # who sent an IKE_SA_INIT has the keys: that SA's line is rate-limited.
            if log.isEnabledFor(logging.INFO) and self.ctx.log_limit.wanted(
                log, logging.INFO, "peer_moved", now, sa.unproven
            ):
                log.info("%s: peer moved from %s[%d] to %s[%d]", sa.tag(), *sa.remote, *src)
            sa.remote, sa.local = src, dst
            self._move_children(sa)
        sa.tasks.on_request(msg, data, responder_tasks(sa, msg), now)
        self._after_request(sa, msg, now)

    # -- MOBIKE (RFC 4555) -----------------------------------------------------------------
    def mobike_peers(self) -> set[str]:
        """The peer addresses whose route the runtime looks up for ``paths_changed``: those
        of the IKE SAs we initiated with MOBIKE (their current and additional addresses)."""
        peers = {
            addr
            for sa in self.sas.values()
            if sa.mobike and sa.roams() and sa.state == IkeState.ESTABLISHED
            for addr in (sa.remote[0], *sa.peer_addrs)
        }
        # and the remote addresses of connections without local_addrs (every hub: a
        # failover to the second starts from the uplink that routes there): initiate
        # starts from the source the route gives (else the unspecified address)
        for conn in self.config.connections.values():
            if conn.version == 2 and not conn.local_addrs:
                peers.update(addr for addr in conn.remote_addrs if _host_address(addr))
        return peers

    def paths_changed(
        self, addresses: tuple[str, ...], sources: Mapping[str, str | None], now: float
    ) -> None:
        """Our addresses or routes changed: ``addresses`` are the local ones now,
        ``sources`` the source address the routing table picks toward each of
        ``mobike_peers()`` (None: no route). An IKE SA we initiated with MOBIKE whose path
        changed moves with UPDATE_SA_ADDRESSES; one without any path waits for the next."""
        self.ctx.local_addresses = tuple(addresses)
        self._sources = dict(sources)
        for sa in list(self.sas.values()):
            if not (sa.mobike and sa.state == IkeState.ESTABLISHED):
                continue
            if sa.roams():
                sa.refused_paths = frozenset()  # a new situation: a path refused before may do now
                path = self._pick_path(sa)
                if path is None:
                    log.info("%s: no route to the peer, keeping %s for now", sa.tag(), sa.local[0])
                    continue
                if path != (sa.local[0], sa.remote[0]):
                    self._roam(sa, path[0], path[1], now)  # the update carries our list
                    continue
            if list_changed(sa) and not any(
                isinstance(t, MobikeUpdate) for t in (*sa.tasks.active, *sa.tasks.queued)
            ):
                sa.tasks.queue(MobikeUpdate(sa, True, addresses_only=True))
                sa.tasks.initiate(now)
                self._touch(sa)
        self._sweep(now)

    def _pick_path(self, sa: IkeSa) -> tuple[str, str] | None:
        """The (local, peer) pair to use: the first of the peer's addresses with a route,
        from the source the route gives, not one the peer refused."""
        return next(
            (
                (src, peer)
                for peer in (sa.remote[0], *sa.peer_addrs)
                if (src := self._sources.get(peer)) and (src, peer) not in sa.refused_paths
            ),
            None,
        )

    def _path_refused(self, sa: IkeSa, now: float) -> None:
        """The peer refused the path it was asked to move to (the IKE SA is back on the
        one its CHILD_SAs use): try another pair of addresses if there is one."""
        path = self._pick_path(sa)
        if path is None or path == (sa.local[0], sa.remote[0]):
            log.info("%s: no other path, staying on %s...%s", sa.tag(), sa.local[0], sa.remote[0])
            return
        # called while the refusal is processed: the task manager starts it after that
        self._roam(sa, path[0], path[1], now, start=False)

    def _roam(self, sa: IkeSa, local: str, peer: str, now: float, start: bool = True) -> None:
        old = (sa.local, sa.remote)
        log.info("%s: new path %s...%s (was %s...%s)", sa.tag(), local, peer, old[0][0], old[1][0])
        sa.local = (local, sa.local[1])
        sa.remote = (peer, sa.remote[1])
        tasks = sa.tasks
        if tasks.active and not any(isinstance(t, MobikeUpdate) for t in tasks.active):
            tasks.resend(now)  # an exchange under way goes on over the new path
        if not any(isinstance(t, MobikeUpdate) for t in tasks.queued):
            tasks.queue(MobikeUpdate(sa, True, old))
        if start:
            tasks.initiate(now)
        self._touch(sa)

    def _after_request(self, sa: IkeSa, msg: Message, now: float) -> None:
        """What follows an answered request (now, or once our signature was in)."""
        if (
            msg.exchange == _IKE_AUTH
            and sa.state is _ESTABLISHED
            and msg.notify(_INITIAL_CONTACT) is not None
        ):
            self._initial_contact(sa, now)

    def has_contact(self, mine: IdKey, peer: IdKey) -> bool:
        """An IKE SA of ours with these identities is up (no INITIAL_CONTACT then)."""
        return any(
            sa.state in (IkeState.ESTABLISHED, IkeState.REKEYING)
            and sa.my_id is not None
            and sa.peer_id is not None
            and (sa.my_id.id_type, sa.my_id.data) == mine
            and (sa.peer_id.id_type, sa.peer_id.data) == peer
            for sa in self._by_peer_id.get(peer, ())
        )

    def _initial_contact(self, sa: IkeSa, now: float) -> None:
        """The peer rebooted: its older IKE SAs with us are gone on its side (§2.4)."""
        assert sa.conn is not None
        if sa.peer_id is None:
            return  # (an established SA's peer is known)
        peer = sa.peer_id
        for other in list(self._by_peer.get((sa.conn.name, peer.id_type, peer.data), ())):
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
            ref = sa.ref()
            self.ctx.emit(
                DeleteChildSa(
                    sa.name, child.name, child.unique_id, old_in, old_out, old_pol, True, ref
                )
            )
            self.ctx.emit(child.install(sa.name, ref))

    def _error_response(self, sa: IkeSa, exchange: int, mid: int, e: MalformedMessage) -> None:
        if mid != sa.tasks.mid_in or sa.cipher_out is None:
            return
        resp = sa.new_message(exchange, mid, response=True)
        resp.payloads.append(NotifyPayload(e.notify or NotifyType.INVALID_SYNTAX, notify_data(e)))
        data = sa.encode(resp)
        sa.tasks.mid_in += 1
        sa.tasks.cached_response = (mid, (data,))
        sa.send(data, response=True)

    def _drop(self, reason: str, src: Address, detail: str, now: float) -> None:
        self.ctx.log_limit.log(
            log, logging.INFO, reason, now, "dropped datagram from %s[%d]: %s", *src, detail
        )
        self.ctx.counters.drop(reason)
        self.ctx.emit(MessageDropped(reason, src))

    def _adopt(self, sa: IkeSa) -> None:
        self.sas[sa.my_spi] = sa
        sa.tasks.sa = sa  # (weakly until now: see IkeRekey._spawn)
        self._touch(sa)

    def _overlapping(self, sa: IkeSa, name: str, lts: Selectors, rts: Selectors) -> ChildSa | None:
        assert sa.conn is not None
        if sa.peer_id is None:
            return None  # only established SAs have children to overlap, and a known peer
        peer = sa.peer_id
        for other in self._by_peer.get((sa.conn.name, peer.id_type, peer.data), ()):
            if other is sa or other.conn is not sa.conn or other.peer_id != sa.peer_id:
                continue
            if other.state not in (IkeState.ESTABLISHED, IkeState.REKEYING):
                continue
            for c in other.children:
                same = (c.name, c.local_ts, c.remote_ts) == (name, lts, rts)
                if same and c.state == ChildState.INSTALLED and c.installed_at is not None:
                    return c
        return None

    def _before_fail(self, sa: IkeSa, reason: str) -> None:
        self.traps.before_fail(sa, reason)
        if reason == "peer_deleted":
            for child in sa.children:
                self._closed(sa, child, whole=True)

    def _child_closed(self, sa: IkeSa, child: ChildSa) -> None:
        self._closed(sa, child, whole=False)

    def _closed(self, sa: IkeSa, child: ChildSa, *, whole: bool) -> None:
        """The peer deletes ``child`` (``whole``: with its IKE SA): close_action."""
        conn = sa.conn
        if conn is None:
            return
        # A successor (rekey, reauthentication) is a child of the same connection: only
        # its SAs are looked at, and only if close_action asks (a hub deletes often).
        same = self._by_conn.get(conn.name, ())
        others = (c for s in same if not (whole and s is sa) for c in s.children)
        if closed_by_peer(conn, child, others, self.traps, whole):
            self._reopen.append((conn.name, child.name))

    def _reauth(self, old: IkeSa, now: float) -> None:
        new = reauth.start(self.ctx, old, now)
        if new is not None:
            self.sas[new.spi_i] = new
            self._touch(new)
        self._touch(old)

    def _sweep(self, now: float) -> None:
        """After every step: forget destroyed IKE SAs, arm the timers of newly
        established ones, and initiate again what dpd_action/keyingtries ask for."""
        dirty = self._dirty
        if dirty:
            ended: list[IkeSa] = []
            for _ in range(8):  # settling may touch more (the old SA of a reauth); bounded
                batch = tuple(dirty)
                dirty.clear()
                for sa in batch:
                    self._settle(sa, now, ended)
                if not dirty:
                    break
            if ended:
                self._restarts(ended, now)
                for sa in ended:
                    sa.release()  # (after _restarts, which reads what it was doing)
        if self._reopen:
            reopen, self._reopen = self._reopen, []
            for conn, name in dict.fromkeys(reopen):
                with contextlib.suppress(KeyError):  # removed by a reload, or nothing to dial
                    self.initiate(conn, now, name)

    def _restarts(self, ended: list[IkeSa], now: float) -> None:
        """What dpd_action/keyingtries ask for of the IKE SAs that ended in this step."""
        agains = [
            r for sa in ended if (r := restart(self.ctx, sa, sa.lost_children, _asked_for(sa)))
        ]
        for again in sorted(agains, key=lambda r: r.keyingtry > 0):  # peers found dead first
            log.info("%s", again.note)
            if again.at > now:
                self.retries.add(again)
            else:
                self._restart(again, now)

    def _restart(self, again: Restart, now: float) -> None:
        with contextlib.suppress(KeyError):  # removed by a reload, or nothing to dial
            for child in again.children or (None,):
                self.initiate(again.conn, now, child, keyingtry=again.keyingtry)

    def _settle(self, sa: IkeSa, now: float, ended: list[IkeSa]) -> None:
        """After a step that touched ``sa``: its reauthentication, its place in the
        tables, its timer."""
        seldom = sa.seldom  # (a reauthentication's SAs have theirs)
        if seldom is not None and (seldom.replaces is not None or seldom.replaced_by is not None):
            for new in (sa, sa.replaced_by):
                if new is not None and new.replaces is not None:
                    old = new.replaces
                    reauth.settle(new, now)
                    if new.replaces is None:  # settled: the old one is deleted or carries on
                        self._touch(old)
        state = sa.state
        if state is _DESTROYED:
            if self.sas.get(sa.my_spi) is sa:
                del self.sas[sa.my_spi]
                ended.append(sa)
            self._timers.discard(sa)
            self._unindex(sa)
            self._by_spi.forget(sa)
            self._responder.forget(sa)
            self._dirty.pop(sa, None)
            return
        if state is not _CONNECTING:
            if state is _ESTABLISHED and not sa.scheduled:
                arm(self.ctx, sa, now)
            self._responder.forget(sa)
        self._index(sa)
        self._by_spi.refresh(sa, sa.children)
        self._timers.set(sa, next_deadline(sa))

    def _touch(self, sa: IkeSa) -> None:
        self._dirty[sa] = None

    def _index(self, sa: IkeSa) -> None:
        """``sa`` by its connection and peer (known once authenticated) as they are now."""
        name, peer = sa.name, sa.peer_id
        old = self._keys.get(sa)
        if old is not None and old[0] == name and old[1] is peer:
            return  # (after most steps: compared without Identity.__eq__)
        if old is None or old[0] != name or old[1] is not None:
            if old is not None:
                self._unindex(sa)
            self._by_conn.setdefault(name, {})[sa] = None
        # (else the same connection, its peer now known: by connection it stays)
        self._keys[sa] = (name, peer)
        if peer is not None:  # a half-open SA's peer is not known yet
            self._by_peer.setdefault((name, peer.id_type, peer.data), {})[sa] = None
            self._by_peer_id.setdefault((peer.id_type, peer.data), {})[sa] = None

    def _unindex(self, sa: IkeSa) -> None:
        key = self._keys.pop(sa, None)
        if key is None:
            return
        name, peer = key
        same_conn = self._by_conn[name]
        del same_conn[sa]
        if not same_conn:
            del self._by_conn[name]
        if peer is None:
            return  # not indexed by peer
        peer_key = (name, peer.id_type, peer.data)
        id_key = (peer.id_type, peer.data)
        same_peer, same_id = self._by_peer[peer_key], self._by_peer_id[id_key]
        del same_peer[sa], same_id[sa]
        if not same_peer:
            del self._by_peer[peer_key]
        if not same_id:
            del self._by_peer_id[id_key]

    def _of_conn(self, conn: ConnectionConfig) -> list[IkeSa]:
        """The live IKE SAs of ``conn`` (this very config object), oldest first."""
        return [
            sa
            for sa in self._by_conn.get(conn.name, ())
            if sa.conn is conn and sa.state != IkeState.DESTROYED
        ]

    # -- status --------------------------------------------------------------------------
    def list_sas(self) -> list[IkeSaInfo]:
        return [sa_info(sa) for sa in self.sas.values()]


def _child_queued(sa: IkeSa, name: str) -> bool:
    """A CHILD_SA of that name is already asked for on ``sa`` (in IKE_AUTH or after)."""
    return any(
        isinstance(t, ChildCreate) and t.config is not None and t.config.name == name
        for t in (*sa.tasks.active, *sa.tasks.queued)
    )


def _asked_for(sa: IkeSa) -> tuple[str, ...]:
    """The children an unanswered initiation asked for, so that a retry asks again."""
    names = [sa.initiate_child] if sa.initiate_child else []
    for t in (*sa.tasks.active, *sa.tasks.queued):
        if isinstance(t, ChildCreate) and t.config is not None and t.config.name not in names:
            names.append(t.config.name)
    return tuple(names)


def _secrets_for(config: Config, conn: ConnectionConfig) -> bytes | None:
    """The PSK a connection would use: a changed key is a changed connection."""
    local = conn.local.id.text if conn.local.id else (conn.local_addrs or ("",))[0]
    remote = conn.remote.id.text if conn.remote.id else (conn.remote_addrs or ("",))[0]
    return config.psk_for(local, remote)


def _host_address(text: str) -> bool:
    """One IP address to route to (not %any, a subnet, a name or the unspecified one)."""
    try:
        return not ip_address(text).is_unspecified
    except ValueError:
        return False


__all__ = ["IPAddress", "Ikev2Engine"]
