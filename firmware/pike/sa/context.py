"""What every IKE and ISAKMP SA of both engines shares: config, randomness, kernel facts,
the action queue, counters, unique ids and reqids."""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pike.policy.addrs import parse_ip
from pike.policy.config import Config
from pike.policy.ipsec import REQID_BASE, REQID_COUNT, KernelCaps
from pike.policy.ts import TrafficSelector
from pike.sa.actions import Action
from pike.sa.admission import Admission
from pike.sa.credentials import CredentialStore
from pike.sa.hubs import Hubs
from pike.sa.log_limit import LogLimit
from pike.sa.policy_users import PolicyUsers
from pike.sa.ports import RandomSpis, SpiSource
from pike.sa.signing import SIGN_TIMEOUT as SIGN_TIMEOUT  # with the other timings
from pike.sa.signing import Signatures

Random = Callable[[int], bytes]
Selectors = tuple[TrafficSelector, ...]
IdKey = tuple[int, bytes]  # an identity as (ID type, data): the same numbers in both versions

# Tunables (not RFC values).
NONCE_SIZE = 32  # strongSwan's nonce length
HALF_OPEN_TIMEOUT = 30.0  # strongSwan's half_open_timeout: responder drops unfinished SAs
DELETE_TIMEOUT = 5.0  # grace for a DELETING SA whose peer does not answer


@dataclass
class ConnCounters:
    """What happened on one connection (metrics labels are connection names)."""

    ike_rekeys: int = 0
    child_rekeys: int = 0
    dpd_probes: int = 0
    dpd_failures: int = 0
    keepalives: int = 0
    retransmits: int = 0
    path_changes: int = 0  # MOBIKE: the IKE SA and its CHILD_SAs moved to new addresses
    late_signatures: int = 0  # our signatures answered after the exchange gave up
    messages_in: dict[str, int] = field(default_factory=dict)  # by exchange name
    messages_out: dict[str, int] = field(default_factory=dict)


@dataclass
class Counters:
    """Counts the daemon exports; keys are stable labels, never SPIs."""

    dropped: dict[str, int] = field(default_factory=dict)  # by reason
    per_conn: dict[str, ConnCounters] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def conn(self, name: str) -> ConnCounters:
        c = self.per_conn.get(name)
        if c is None:
            c = self.per_conn[name] = ConnCounters()
        return c

    def total(self, what: str) -> int:
        return sum(int(getattr(c, what)) for c in self.per_conn.values())

    # Totals over all connections (older callers and tests).
    @property
    def retransmits(self) -> int:
        return self.total("retransmits")

    @property
    def dpd_probes(self) -> int:
        return self.total("dpd_probes")

    @property
    def keepalives(self) -> int:
        return self.total("keepalives")


@dataclass
class Context:
    config: Config
    random: Random
    caps: KernelCaps
    # Inbound SPIs (pike.sa.ports): the kernel's in the daemon, else from ``random``.
    spis: SpiSource | None = None
    # Our certificates and signers, the CAs we trust: the daemon's (or a fresh one).
    credentials: CredentialStore = field(default_factory=CredentialStore)
    actions: deque[Action] = field(default_factory=deque)
    counters: Counters = field(default_factory=Counters)
    admission: Admission = field(default_factory=Admission)  # half-open SAs, both versions
    hubs: Hubs = field(default_factory=Hubs)  # the active one of several remote_addrs
    # lines a peer sets off once a message, before it is authenticated (pike.sa.log_limit)
    log_limit: LogLimit = field(default_factory=LogLimit)
    # the installed CHILD_SAs of both versions by the kernel policies they use
    policy_users: PolicyUsers = field(default_factory=PolicyUsers)
    # Set by the engines: an IKE or ISAKMP SA with these identities (ours, the peer's) is
    # up, of either version. Then no INITIAL_CONTACT: the peer would drop that SA
    # (strongSwan's rule).
    has_contact: Callable[[IdKey, IdKey], bool] = field(
        default=lambda mine, peer: False, repr=False
    )
    # A new unique id of an SA (IKE, ISAKMP, CHILD_SA, IPsec SA) per call: a counter's
    # ``__next__`` itself (asked twice a handshake; no Python frame).
    unique_id: Callable[[], int] = field(init=False, repr=False, compare=False)
    _next_reqid: int = 0
    # The runtime checks peers' CERT chains off its event loop (``CheckChain``, answered
    # by ``chain_checked``); in-memory engines check them inline.
    offload_chains: bool = False
    _next_sign: int = 0
    # Our signatures the exchanges of both versions wait for (pike.sa.signing).
    signatures: Signatures = field(init=False, repr=False)
    # Queue an action for the runtime: ``actions.append`` itself (a handshake emits a
    # dozen; no Python frame around the append).
    emit: Callable[[Action], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.spis is None:
            self.spis = RandomSpis(self.random)
        self.emit = self.actions.append
        self.unique_id = itertools.count(1).__next__
        self.signatures = Signatures(self.emit, self._late_signature)

    def _late_signature(self, conn: str) -> None:
        self.counters.conn(conn).late_signatures += 1

    def sign_ref(self) -> int:
        """A new SignRequest reference (unique for the engine's life)."""
        self._next_sign += 1
        return self._next_sign

    def reqid(self) -> int:
        """A new reqid from piked's range (``pike.policy.ipsec.REQID_BASE``)."""
        self._next_reqid += 1
        return REQID_BASE + (self._next_reqid - 1) % REQID_COUNT

    def ike_spi(self) -> bytes:
        while True:
            spi = self.random(8)
            if spi != bytes(8):
                return spi

    def child_spi(self, src: str, dst: str) -> int:
        """An inbound ESP SPI from the context's ``SpiSource``."""
        assert self.spis is not None  # __post_init__
        return self.spis.child_spi(parse_ip(src), parse_ip(dst))


def system_random(n: int) -> bytes:
    return os.urandom(n)
