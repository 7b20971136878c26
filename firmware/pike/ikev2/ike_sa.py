"""An IKE SA: identity of the exchange, its keys, its children and its task manager."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from pike.crypto.kdf import IkeKeys, derive_ike_keys, rekey_skeyseed, skeyseed
from pike.crypto.ke import KeyExchange
from pike.crypto.prf import Prf
from pike.crypto.sizes import encr_key_size, integ_key_size
from pike.crypto.sk import SkCipher, sk_pair
from pike.ikev2.log import log
from pike.policy.config import ConnectionConfig, Identity
from pike.sa import child_lifecycle
from pike.sa.actions import Address, IkeRef, SendDatagram
from pike.sa.child_sa import ChildSa
from pike.sa.chosen import Chosen
from pike.sa.conn_index import Candidates
from pike.sa.context import ConnCounters, Context, Selectors
from pike.sa.state import IkeState, ike_transition, sa_tag, unproven
from pike.wire.codec import encode_message
from pike.wire.constants import ExchangeType
from pike.wire.fragments import encode_fragments
from pike.wire.payloads import Message, Payload, Proposal

if TYPE_CHECKING:
    from cryptography import x509

    from pike.ikev2.task_manager import TaskManager
    from pike.ikev2.tasks.base import Task
    from pike.sa.chain_check import ChainWait

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_ESTABLISHED = IkeState.ESTABLISHED

_IKE_SA_INIT = ExchangeType.IKE_SA_INIT  # per message: Enum lookups are slow on 3.11


@functools.cache
def _task_manager() -> type[TaskManager]:
    """The task manager's class, imported when the first IKE SA is made (not at start),
    once: an import statement costs ~0.5 µs each time it runs."""
    from pike.ikev2.task_manager import TaskManager

    return TaskManager


@dataclass
class Ikev2Context(Context):
    """The shared context with the IKEv2 engine's hooks: what its tasks ask of the engine."""

    # Set by the engine: registers an IKE SA created by a task (IKE rekey successor).
    adopt: Callable[[IkeSa], None] = field(default=lambda sa: None, repr=False)
    # Set by the engine: start reauthenticating an IKE SA (reauth_time reached).
    reauth: Callable[[IkeSa, float], None] = field(default=lambda sa, now: None, repr=False)
    # Set by the engine: the installed child (config name, selectors) on another IKE SA
    # of the same connection and peer, if any (a peer's reauthentication).
    overlapping: Callable[[IkeSa, str, Selectors, Selectors], ChildSa | None] = field(
        default=lambda sa, name, lts, rts: None, repr=False
    )
    # Set by the engine: whether a child's policies must outlive it (shared or trapped).
    keeps_policies: Callable[[ChildSa], bool] = field(default=lambda c: False, repr=False)
    # Set by the engine: the fixed reqid of a trapped child config, else None.
    trap_reqid: Callable[[str, str], int | None] = field(default=lambda c, n: None, repr=False)
    # Set by the engine: called as an IKE SA ends, before its children go.
    before_fail: Callable[[IkeSa, str], None] = field(default=lambda sa, r: None, repr=False)
    # Set by the engine: an IKE SA changed in a way its timers or tables may depend on
    # (its state); the engine looks at it again after this step (not at every SA).
    touched: Callable[[IkeSa], None] = field(default=lambda sa: None, repr=False)
    # Set by the engine: the peer deletes this CHILD_SA (close_action), before it goes.
    child_closed: Callable[[IkeSa, ChildSa], None] = field(default=lambda sa, c: None, repr=False)
    # Set by the engine: the peer refused our UPDATE_SA_ADDRESSES; try another path.
    path_refused: Callable[[IkeSa, float], None] = field(default=lambda sa, now: None, repr=False)
    # Set by the runtime (Ikev2Engine.paths_changed): our addresses, which MOBIKE announces
    # as ADDITIONAL_IP4/6_ADDRESS besides the one an IKE SA uses.
    local_addresses: tuple[str, ...] = ()


@dataclass(eq=False, slots=True)
class Seldom:
    """An IKE SA's state for what most SAs never do (reauthentication, restarts, RFC 9370
    follow-ups, MOBIKE path changes, fragments, a certificate chain, its end): apart, so
    that each of a hub's 10 000 SAs does not store and carry it (made on first use)."""

    # The peer's validated certificate path (end entity first): a refreshed CRL that
    # revokes one of them ends the SA (pike.daemon.revocation).
    peer_path: tuple[x509.Certificate, ...] = ()
    delete_reason: str = "terminated"
    reauth_at: float | None = None  # reauth_time: a new IKE SA from scratch (make-before-break)
    # Reauthentication: the new IKE SA knows the one it replaces (deleted once the new
    # children are in), the old one knows its replacement while that is under way.
    replaces: IkeSa | None = None
    replaced_by: IkeSa | None = None
    addke_done: tuple[int, ...] = ()  # RFC 9370: the additional key exchanges done
    # Responder: CREATE_CHILD_SA tasks waiting for their IKE_FOLLOWUP_KE, by link (RFC 9370);
    # None until the first (an empty dict per SA is one more object the collector scans)
    followups: dict[bytes, Task] | None = None
    # (local, peer) addresses the peer refused to move to, until our addresses or routes
    # change again (RFC 4555 §3.5: try another pair, not the same one in a loop).
    refused_paths: frozenset[tuple[str, str]] = frozenset()
    # Initiator: which attempt of keyingtries this is (0 = the first), and the child the
    # initiation asked for, so that a retry asks for the same.
    keyingtry: int = 0
    initiate_child: str | None = None
    # The children that were up when this IKE SA failed (dpd_action=restart brings them back).
    lost_children: tuple[str, ...] = ()
    # Fragments of an incoming message by (message id, is_response): total, chunks.
    fragments: dict[tuple[int, bool], tuple[int, int, dict[int, bytes]]] | None = None
    # An IKE_AUTH message whose CERT chain is being checked off the loop (chain_wait).
    chain: ChainWait | None = None


_DEFAULTS = Seldom()  # what an SA without its own reads (never written)
_T = TypeVar("_T")


class _Seldom(Generic[_T]):
    """An ``IkeSa`` attribute kept in its ``Seldom``: the default until set, and setting
    it makes the ``Seldom``."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, sa: None, owner: type) -> _Seldom[_T]: ...
    @overload
    def __get__(self, sa: IkeSa, owner: type) -> _T: ...
    def __get__(self, sa: IkeSa | None, owner: type) -> _T | _Seldom[_T]:
        if sa is None:
            return self
        value: _T = getattr(sa.seldom or _DEFAULTS, self.name)
        return value

    def __set__(self, sa: IkeSa, value: _T) -> None:
        seldom = sa.seldom
        if seldom is None:
            if value == getattr(_DEFAULTS, self.name):
                return  # the default: nothing to keep (an IKE rekey copies them over)
            seldom = sa.seldom = Seldom()
        setattr(seldom, self.name, value)


@dataclass(eq=False, slots=True, weakref_slot=True)  # slots: a hub holds 10 000
class IkeSa:
    ctx: Ikev2Context
    unique_id: int
    initiator: bool
    spi_i: bytes
    local: Address
    remote: Address
    conn: ConnectionConfig | None
    spi_r: bytes = bytes(8)
    state: IkeState = IkeState.CREATED
    ni: bytes = b""
    nr: bytes = b""
    ke: KeyExchange | None = None
    chosen: Chosen | None = None
    prf: Prf | None = None
    keys: IkeKeys | None = field(default=None, repr=False)
    cipher_out: SkCipher | None = field(default=None, repr=False)
    cipher_in: SkCipher | None = field(default=None, repr=False)
    # the IKE_SA_INIT messages as sent (AUTH signs them; the responder also tells a
    # retransmitted request by them)
    init_request: bytes = b""
    init_response: bytes = b""
    nat_local: bool = False  # we are behind a NAT
    nat_remote: bool = False  # the peer is behind a NAT (or faked it, like kernel-libipsec)
    my_id: Identity | None = None
    peer_id: Identity | None = None
    children: list[ChildSa] = field(default_factory=list)
    established_at: float | None = None
    created_at: float = 0.0
    # Responder: connections whose addresses fit; IKE_SA_INIT picks the IKE proposal
    # from them, IKE_AUTH one connection by identity (among those accepting that proposal).
    candidates: Candidates | None = None
    offer: tuple[Proposal, ...] = ()  # the initiator's IKE proposals (responder)
    rekey_at: float | None = None
    last_inbound: float = 0.0  # last authenticated message from the peer (DPD)
    dpd_outstanding: bool = False
    scheduled: bool = False  # rekey timer set once established
    keepalive_at: float | None = None
    frag_peer: bool = False  # both sides announced RFC 7383 fragmentation
    intermediate: bool = False  # both sides announced IKE_INTERMEDIATE (RFC 9242)
    # RFC 9370: the additional key exchanges still to run after IKE_SA_INIT (methods, in
    # order); IntAuth_iN and IntAuth_rN of the IKE_INTERMEDIATE exchanges. (Tuples, not
    # lists: a hub holds 10 000 SAs, and every list is one more object for the cyclic
    # collector to scan.)
    addke_todo: tuple[int, ...] = ()
    int_auth_i: bytes = field(default=b"", repr=False)
    int_auth_r: bytes = field(default=b"", repr=False)
    ppk_peer: bool = False  # both announced USE_PPK in IKE_SA_INIT (RFC 8784)
    ppk_used: bool = False  # IKE_AUTH mixed a post-quantum preshared key into the keys
    # MOBIKE (RFC 4555): both sides announced it; the peer's other addresses it told us of.
    mobike: bool = False
    peer_addrs: tuple[str, ...] = ()
    # Whether we initiated the first IKE SA of this chain (None: this one). An IKE rekey
    # the peer starts makes it the new SA's initiator, but RFC 4555 keeps the right to
    # move the SA with the original initiator.
    original_initiator: bool | None = None
    # Our address list as last announced to the peer (notify type, data), so that a
    # change of our addresses alone is told in an INFORMATIONAL (RFC 4555 §3.6).
    announced: tuple[tuple[int, bytes], ...] = ()
    # The (local, remote) path of the request being answered: MOBIKE answers a request
    # where it came from without moving the IKE SA (only UPDATE_SA_ADDRESSES moves it).
    request_path: tuple[Address, Address] | None = None
    reply_path: tuple[Address, Address] | None = None
    # What only some SAs need (``Seldom``), made on first use; read and set through the
    # attributes below the fields, or ``seldom`` itself where every step asks.
    seldom: Seldom | None = field(default=None, repr=False)

    _tag: tuple[tuple[str, bytes], str] | None = field(default=None, repr=False)

    tasks: TaskManager = field(init=False, repr=False)
    # The connection's name (logs, counters, tables ask a dozen times a handshake): set
    # with ``conn``, which is therefore assigned only through ``set_conn``.
    name: str = field(init=False)
    # That connection's counters (``ctx.counters.conn(name)``), looked up on first use
    # after ``set_conn``: every message counts there.
    counters: ConnCounters | None = field(default=None, init=False, repr=False)

    # In ``seldom`` (class attributes, not fields: the dataclass stores none of them).
    peer_path = _Seldom[tuple["x509.Certificate", ...]]()
    delete_reason = _Seldom[str]()
    reauth_at = _Seldom[float | None]()
    replaces = _Seldom["IkeSa | None"]()
    replaced_by = _Seldom["IkeSa | None"]()
    addke_done = _Seldom[tuple[int, ...]]()
    followups = _Seldom["dict[bytes, Task] | None"]()
    refused_paths = _Seldom[frozenset[tuple[str, str]]]()
    keyingtry = _Seldom[int]()
    initiate_child = _Seldom[str | None]()
    lost_children = _Seldom[tuple[str, ...]]()
    fragments = _Seldom["dict[tuple[int, bool], tuple[int, int, dict[int, bytes]]] | None"]()
    chain = _Seldom["ChainWait | None"]()

    def __post_init__(self) -> None:
        self.tasks = _task_manager()(self)
        self.name = self.conn.name if self.conn is not None else "(unknown)"

    # -- identity and logging ------------------------------------------------------------
    def set_conn(self, conn: ConnectionConfig | None) -> None:
        """The connection this SA belongs to (and ``name`` with it)."""
        if conn is self.conn:
            return  # (IKE_SA_INIT and IKE_AUTH confirm the one the SA began with)
        self.conn = conn
        self.name = conn.name if conn is not None else "(unknown)"
        self.counters = None

    def conn_counters(self) -> ConnCounters:
        """The counters of the SA's connection (``ctx.counters.conn(name)``)."""
        c = self.counters
        if c is None:
            c = self.counters = self.ctx.counters.conn(self.name)
        return c

    @property
    def my_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    def ref(self) -> IkeRef:
        """What the updown script is told of this IKE SA (authenticated identities)."""
        mine, peer = self.my_id, self.peer_id
        return IkeRef(self.unique_id, str(mine) if mine else "", str(peer) if peer else "")

    def roams(self) -> bool:
        """We are the original initiator: MOBIKE lets only that side move the IKE SA."""
        return self.initiator if self.original_initiator is None else self.original_initiator

    def tag(self) -> str:
        # cached: every log line and state change asks, and it changes only with these
        # keyed by the name, not the connection: strings and bytes only, so the collector
        # stops tracking the cache after one pass (a hub holds 10 000 of them)
        key = (self.name, self.spi_r)
        if self._tag is None or self._tag[0] != key:
            self._tag = (key, sa_tag(self.name, self.unique_id, self.spi_i, self.spi_r))
        return self._tag[1]

    @property
    def unproven(self) -> bool:
        return unproven(self.initiator, self.established_at)

    def set_state(self, new: IkeState, now: float | None = None) -> None:
        """With ``now``, an unproven SA logs through the rate limit."""
        limit = None
        if now is not None and not self.initiator and self.established_at is None:  # unproven
            limit = (self.ctx.log_limit, now)
        self.state = ike_transition(self.tag, "IKE_SA", self.state, new, log, limit)
        self.ctx.touched(self)

    @property
    def natt(self) -> bool:
        return self.nat_local or self.nat_remote or bool(self.conn and self.conn.encap)

    def float_ports(self) -> None:
        """Move to the NAT-T port once a NAT is detected (RFC 7296 §2.23)."""
        natt = self.ctx.config.daemon.natt_port
        if self.local[1] != natt:
            self.local = (self.local[0], natt)
        if self.remote[1] == self.ctx.config.daemon.ike_port:
            self.remote = (self.remote[0], natt)

    def schedule(self, now: float) -> None:
        """IKE rekey at rekey_time and reauthentication at reauth_time, each minus a
        jitter (strongSwan's default rand_time, see ike_jitter). A reauth time inherited
        from a rekeyed predecessor stays: reauthentication survives an IKE rekey."""
        self.last_inbound = now
        conn = self.conn
        if conn is None:
            return
        span, random = ike_jitter(conn), self.ctx.random
        if conn.rekey_time:
            self.rekey_at = now + max(conn.rekey_time - _draw(random, span), 1)
        if conn.reauth_time and self.reauth_at is None:
            self.reauth_at = now + max(conn.reauth_time - _draw(random, span), 1)

    def dpd_due(self) -> float | None:
        """When a liveness check is due: dpd_delay after the last sign of life."""
        conn = self.conn
        if conn is None or not conn.dpd_delay or self.state != _ESTABLISHED:
            return None
        if self.dpd_outstanding:
            return None
        return self.last_inbound + conn.dpd_delay

    # -- keys ----------------------------------------------------------------------------
    def derive_keys(self, shared: bytes, rekey_of: IkeSa | None = None, extra: bytes = b"") -> None:
        """SKEYSEED and SK_* after IKE_SA_INIT (RFC 7296 §2.14), or for the successor of
        ``rekey_of`` (§2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), old PRF;
        RFC 9370 §2.2.4: the additional exchanges' secrets ``extra`` follow)."""
        assert self.chosen is not None and self.chosen.prf_id is not None
        prf = Prf.of(self.chosen.prf_id)
        if rekey_of is None:
            seed = skeyseed(prf, self.ni, self.nr, shared)
        else:
            assert rekey_of.prf is not None and rekey_of.keys is not None
            old_d = rekey_of.keys.sk_d
            seed = rekey_skeyseed(rekey_of.prf, old_d, shared, self.ni, self.nr, extra)
        self._set_keys(prf, seed)

    def fold_key(self, shared: bytes) -> None:
        """An additional key exchange is done (RFC 9370 §2.2.2): SKEYSEED(n) =
        prf(SK_d(n-1), SK(n) | Ni | Nr), all SK_* derived anew from it with the SA's PRF."""
        assert self.prf is not None and self.keys is not None
        self._set_keys(self.prf, rekey_skeyseed(self.prf, self.keys.sk_d, shared, self.ni, self.nr))

    def add_int_auth(self, data: bytes, from_initiator: bool) -> None:
        """Chain one IKE_INTERMEDIATE message into IntAuth (RFC 9242 §3.1): IntAuth_xN =
        prf(SK_px, IntAuth_x(N-1) | A | P) with the keys that protected the message."""
        assert self.prf is not None and self.keys is not None
        if from_initiator:
            self.int_auth_i = self.prf.prf(self.keys.sk_pi, self.int_auth_i + data)
        else:
            self.int_auth_r = self.prf.prf(self.keys.sk_pr, self.int_auth_r + data)

    def apply_ppk(self, ppk: bytes) -> None:
        """RFC 8784 §3: SK_d' = prf+(PPK, SK_d), SK_pi' and SK_pr' alike, each as long as
        before; AUTH is made with SK_pi'/SK_pr' and children and rekeys come from SK_d'."""
        assert self.prf is not None and self.keys is not None
        k, prf = self.keys, self.prf
        self.keys = replace(
            k,
            sk_d=prf.plus(ppk, k.sk_d, len(k.sk_d)),
            sk_pi=prf.plus(ppk, k.sk_pi, len(k.sk_pi)),
            sk_pr=prf.plus(ppk, k.sk_pr, len(k.sk_pr)),
        )

    def int_auth(self, auth_mid: int) -> bytes:
        """What AUTH covers of the IKE_INTERMEDIATE exchanges (RFC 9242 §3.3.2):
        IntAuth_iN | IntAuth_rN | the IKE_AUTH request's message ID; empty without them."""
        if not self.int_auth_i:
            return b""
        return self.int_auth_i + self.int_auth_r + auth_mid.to_bytes(4, "big")

    def _set_keys(self, prf: Prf, seed: bytes) -> None:
        c = self.chosen
        assert c is not None
        encr, keylen, integ, random = c.encr_id, c.encr_key_length, c.integ_id, self.ctx.random
        ekey, ikey = encr_key_size(encr, keylen), integ_key_size(integ)
        keys = derive_ike_keys(prf, seed, self.ni, self.nr, self.spi_i, self.spi_r, ekey, ikey)
        self.prf, self.keys = prf, keys
        # the initiator sends with SK_ei/SK_ai, the responder with SK_er/SK_ar
        mine, theirs = (keys.sk_er, keys.sk_ar), (keys.sk_ei, keys.sk_ai)
        if self.initiator:
            mine, theirs = theirs, mine
        self.cipher_out, self.cipher_in = sk_pair(encr, keylen, integ, mine, theirs, random)

    # -- messages ------------------------------------------------------------------------
    def new_message(self, exchange: int, message_id: int, response: bool) -> Message:
        return Message(
            spi_i=self.spi_i,
            spi_r=self.spi_r,
            exchange=exchange,
            message_id=message_id,
            is_initiator=self.initiator,
            is_response=response,
            encrypted=exchange != _IKE_SA_INIT,
        )

    def encode(self, msg: Message) -> bytes:
        return encode_message(msg, self.cipher_out if msg.encrypted else None)

    def encode_datagrams(self, msg: Message) -> tuple[bytes, ...]:
        """The datagrams for ``msg``: one, or RFC 7383 fragments when both sides support
        them and the message would exceed fragment_size (IKE_SA_INIT is never split)."""
        if not msg.encrypted:
            return (encode_message(msg, None),)
        data = encode_message(msg, self.cipher_out)
        if not self.frag_peer or self.cipher_out is None:
            return (data,)
        # The UDP/IP headers (and the non-ESP marker on 4500) count against the limit.
        limit = self.ctx.config.daemon.fragment_size - (40 if ":" in self.remote[0] else 20) - 8
        if self.remote[1] != 500:
            limit -= 4
        if len(data) <= limit:
            return (data,)
        return tuple(encode_fragments(msg, self.cipher_out, limit))

    def await_followup(self, link: bytes, task: Task) -> None:
        """``task`` continues with the IKE_FOLLOWUP_KE that names ``link`` (RFC 9370)."""
        if self.followups is None:
            self.followups = {}
        self.followups[link] = task

    def send(self, data: bytes, response: bool = False) -> None:
        if response and self.reply_path is not None:
            self.ctx.emit(SendDatagram(data, *self.reply_path))
            return
        self.ctx.emit(SendDatagram(data, self.local, self.remote))

    def payloads_text(self, payloads: list[Payload]) -> str:
        from pike.ikev2.describe import describe_payloads

        return describe_payloads(payloads)

    # -- teardown ------------------------------------------------------------------------
    def release(self) -> None:
        """Destroyed and forgotten by the engine: cut what refers back to this SA (its
        task manager and tasks; RFC 9370 follow-ups; a parked IKE_AUTH; the replacement
        of a reauthentication, which still names this one until it settles), so that
        reference counting alone frees it."""
        self.tasks.release()
        seldom = self.seldom
        if seldom is not None:
            seldom.followups = seldom.chain = seldom.replaced_by = None

    def remove_child(self, child: ChildSa, reason: str, keep_policies: bool = False) -> None:
        """Forget a CHILD_SA; its SAs and policies leave the kernel if they were there.

        Policies stay when another live CHILD_SA uses the same ones (a rekey successor, a
        new SA after INITIAL_CONTACT) or when they fall back to a trap."""
        keep_policies = keep_policies or self.ctx.keeps_policies(child)
        child_lifecycle.remove(
            self.ctx, self.tag(), self.name, child, reason, keep_policies, self.ref()
        )
        if child in self.children:
            self.children.remove(child)

    def fail(self, reason: str, now: float, quiet: bool = False) -> None:
        """End this IKE SA without further messages (its children go with it)."""
        from pike.sa.actions import IkeSaDeleted

        if self.state == IkeState.DESTROYED:
            return
        self.delete_reason = reason
        self.ctx.before_fail(self, reason)
        self.lost_children = tuple(
            dict.fromkeys(c.name for c in self.children if c.installed_at is not None)
        )
        for child in list(self.children):
            self.remove_child(child, reason)
        for task in self.tasks.active:
            task.abandoned()
        if not quiet or self.established_at is not None:
            if self.unproven:  # a flood's (e.g. all of them at shutdown)
                self.ctx.log_limit.log(
                    log, logging.INFO, "half_open_ended", now,
                    "%s: IKE_SA ended: %s", self.tag(), reason,
                )  # fmt: skip
            else:
                log.info("%s: IKE_SA ended: %s", self.tag(), reason)
            spis = (self.spi_i, self.spi_r) if self.established_at is not None else None
            self.ctx.emit(IkeSaDeleted(self.name, self.unique_id, reason, spis))
        self.set_state(IkeState.DESTROYED, now)


def _draw(random: Callable[[int], bytes], span: int) -> int:
    """A jitter of 0 to ``span`` seconds."""
    return int.from_bytes(random(4), "big") % (span + 1) if span else 0


def ike_jitter(conn: ConnectionConfig) -> int:
    """strongSwan's default IKE rand_time: over_time (10 % of the longer of rekey_time and
    reauth_time), but at most half of the shorter one that is set."""
    rekey, reauth = conn.rekey_time, conn.reauth_time
    if rekey and reauth:
        return min(max(rekey, reauth) // 10, min(rekey, reauth) // 2)
    one = rekey or reauth  # the only one set (or none: 0)
    return min(one // 10, one // 2)
