"""One ISAKMP SA (IKEv1 phase 1): Main Mode with pre-shared keys, both roles, and what the
SA's later exchanges (Quick Mode, Informational) need of it: keys, IV chains, flights.

Main Mode (RFC 2409 §5, with NAT-T per RFC 3947 §3-4):
    MM1  HDR, SA, VID...                      -->
                                              <--  MM2  HDR, SA, VID...
    MM3  HDR, KE, Ni, NAT-D, NAT-D            -->
                                              <--  MM4  HDR, KE, Nr, NAT-D, NAT-D
    MM5  HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]  -->   (on 4500 when a NAT is seen)
                                              <--  MM6  HDR*, IDir, HASH_R
With pre-shared keys the responder must pick the key before it can read IDii, so the
connection (and its PSK) is found by the peer's address, as the seed article explains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pike.sa.chain_check import ChainWait

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from pike.crypto.errors import CryptoError
from pike.crypto.ke import KeyExchange
from pike.crypto.prf import Prf
from pike.ikev1.cipher import Ikev1Cipher
from pike.ikev1.flight import Flight
from pike.ikev1.keys import (
    Phase1Keys,
    auth_prf,
    derive_phase1,
    hash_i,
    hash_r,
    informational_hash,
    natd_hash,
    phase1_prf,
    skeyid_psk,
    skeyid_signature,
)
from pike.ikev1.proposals import Phase1Choice
from pike.ikev1.quick_state import QuickMode, QuickModes
from pike.policy.config import ConnectionConfig
from pike.sa.actions import Address, IkeRef, IkeSaDeleted, SendDatagram
from pike.sa.certs import peer_identity
from pike.sa.child_sa import ChildSa
from pike.sa.conn_index import Candidates
from pike.sa.context import Context
from pike.sa.signing import PendingSignature
from pike.sa.state import ChildState, IkeState, ike_transition, sa_tag, unproven
from pike.wire.isakmp import encode_chain, encode_v1
from pike.wire.isakmp_constants import (
    VID_DPD,
    VID_NATT_DRAFT_02,
    VID_NATT_DRAFT_02N,
    VID_NATT_DRAFT_03,
    VID_RFC3947,
    ExchangeV1,
    FlagV1,
    IdV1,
)
from pike.wire.isakmp_payloads import V1Hash, V1Id, V1Message, V1Payload, V1VendorId

log = logging.getLogger("pike.ikev1")

NATT_DRAFTS = (VID_NATT_DRAFT_02, VID_NATT_DRAFT_02N, VID_NATT_DRAFT_03)


class PeerError(Exception):
    """The peer's message cannot be taken: ``reason`` is the drop counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Phase1State:
    """What Main Mode accumulates until the keys exist."""

    step: int = 0  # the last Main Mode message number handled
    offers: list[Phase1Choice] = field(default_factory=list)
    sai_b: bytes = b""  # the initiator's SA body as sent (RFC 2409 §5)
    ke: KeyExchange | None = None
    g_xi: bytes = b""
    g_xr: bytes = b""
    ni: bytes = b""
    nr: bytes = b""
    peer_id_b: bytes = b""  # Aggressive Mode responder: IDii_b of AM1, for HASH_I in AM3
    # Aggressive Mode responder: Quick Mode datagrams that overtook AM3 (strongSwan sends
    # QM1 right behind it), handled once AM3 is in
    queued: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = field(default_factory=list)


def _untracked(sa: IsakmpSa) -> None:
    """Before the table holds the SA (its ``add`` touches it anyway)."""


class IsakmpSa:
    def __init__(
        self,
        ctx: Context,
        unique_id: int,
        initiator: bool,
        spi_i: bytes,
        local: Address,
        remote: Address,
        conn: ConnectionConfig | None,
        created_at: float,
    ) -> None:
        self.ctx = ctx
        self.unique_id = unique_id
        self.initiator = initiator
        self.spi_i = spi_i
        self.spi_r = bytes(8)
        self.local = local
        self.remote = remote
        self.conn = conn
        self.created_at = created_at
        self.state = IkeState.CREATED
        self.p1 = Phase1State()
        self.choice: Phase1Choice | None = None
        self.prf: Prf | None = None
        self.keys: Phase1Keys | None = None
        self.cipher: Ikev1Cipher | None = None
        self.my_id: V1Id | None = None
        self.peer_id: V1Id | None = None
        self.peer_path: tuple[x509.Certificate, ...] = ()  # validated, end entity first
        self.natt = False  # the peer announced RFC 3947 (or a draft)
        self.natt_draft = False
        self.dpd_peer = False  # the peer announced RFC 3706
        self.nat_local = False
        self.nat_remote = False
        self.flights: dict[int, Flight] = {}
        self.quick = QuickModes()  # under way on this SA
        self.children: list[ChildSa] = []
        self.established_at: float | None = None
        self.last_inbound = created_at
        self.dpd_seq = int.from_bytes(ctx.random(4), "big") & 0x7FFFFFFF
        self.dpd_outstanding = False
        self.dpd_deadline: float | None = None
        self.dpd_tries = 0
        self.keepalive_at: float | None = None
        self.reauth_at: float | None = None
        self.delete_reason = ""
        # A decrypted message whose IV chaining waits for its HASH to check out.
        self.uncommitted: tuple[int, bytes] | None = None
        self.arrived_on: tuple[Address, Address] = (remote, local)  # of the message handled
        self.replaces: IsakmpSa | None = None  # the SA this reauthentication replaces
        self.keyingtry = 0  # attempts of keyingtries that went before this SA's
        # Responder: why the peer's authentication looks refused (its MM5/AM3 did not
        # decrypt: a wrong PSK); reported if the SA then times out half-open. Not ended at
        # once: a garbled message must not end an exchange (``Ikev1Engine._receive``).
        self.auth_suspect = ""
        self.signing: PendingSignature[None] | None = None  # our phase-1 signature, while made
        # The phase-1 message whose CERT chain is being checked off the loop (piked).
        self.chain: ChainWait | None = None
        # Main Mode responder: the connections our and the peer's addresses fit; with
        # signatures the peer's ID (MM5) may pick another of them than MM1 did.
        self.candidates: Candidates | None = None  # responder: by address (MM1)
        # Set by the engine's table: this SA changed state (its timers and tables may
        # depend on it); the engine looks at it again after this step.
        self.touched: Callable[[IsakmpSa], None] = _untracked

    # -- naming and state ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.conn.name if self.conn else "-"

    @property
    def our_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    def ref(self) -> IkeRef:
        """What the updown script is told of this ISAKMP SA (authenticated identities)."""
        return IkeRef(self.unique_id, id_text(self.my_id), id_text(self.peer_id))

    def tag(self) -> str:
        return sa_tag(self.name, self.unique_id, self.spi_i, self.spi_r)

    @property
    def unproven(self) -> bool:
        return unproven(self.initiator, self.established_at)

    def set_state(self, new: IkeState, now: float | None = None) -> None:
        """With ``now``, an unproven SA logs through the rate limit."""
        limit = (self.ctx.log_limit, now) if now is not None and self.unproven else None
        self.state = ike_transition(self.tag, "ISAKMP_SA", self.state, new, log, limit)
        self.touched(self)

    @property
    def nat_any(self) -> bool:
        return self.nat_local or self.nat_remote

    def accept(self) -> None:
        """The message being handled is authentic: chain its IV (RFC 2409 App. B)."""
        if self.uncommitted is not None and self.cipher is not None:
            mid, ciphertext = self.uncommitted
            self.cipher.commit(mid, ciphertext)
            self._follow(*self.arrived_on)
        self.uncommitted = None

    def _follow(self, src: Address, dst: Address) -> None:
        """An authentic message from another address/port: the peer floated to 4500 (RFC
        3947 §4) or its NAT mapping changed; answers go there. Once on the NAT-T port we
        never go back to 500 (a late retransmission from before the float)."""
        if (src, dst) == (self.remote, self.local):
            return
        natt = self.ctx.config.daemon.natt_port
        if self.local[1] == natt and dst[1] != natt:
            return
        log.info("%s: peer moved from %s[%d] to %s[%d]", self.tag(), *self.remote, *src)
        self.remote, self.local = src, dst

    # -- sending -----------------------------------------------------------------------------
    def flight(self, mid: int) -> Flight:
        fl = self.flights.get(mid)
        if fl is None:
            fl = self.flights[mid] = Flight()
        return fl

    def forget_flight(self, mid: int) -> None:
        """A one-shot exchange, or one that ended: nothing of it to retransmit."""
        self.flights.pop(mid, None)

    def restore_flight(self, mid: int, saved: Flight | None) -> None:
        """Back to how the exchange ``mid`` was before a message it did not take."""
        if saved is None:
            self.flights.pop(mid, None)
        else:
            self.flights[mid] = saved

    def hold_early(self, data: bytes, src: Address, dst: Address, limit: int) -> bool:
        """A Quick Mode that overtook AM3, kept until AM3 is in (at most ``limit``)."""
        if len(self.p1.queued) >= limit:
            return False
        self.p1.queued.append((data, src, dst))
        return True

    def take_early(self) -> list[tuple[bytes, Address, Address]]:
        """AM3 is in: the Quick Modes that came before it, to be handled now."""
        queued, self.p1.queued = self.p1.queued, []
        return queued

    def timeout(self, n: int) -> float:
        d = self.ctx.config.daemon
        return d.retransmit_timeout * d.retransmit_base**n

    def send(self, data: bytes) -> None:
        self.ctx.emit(SendDatagram(data, self.local, self.remote))

    def transmit(self, mid: int, data: bytes, now: float, *, wait: bool) -> None:
        self.flight(mid).sent(data, now, self.timeout(0), wait=wait)
        self.send(data)

    def encode(
        self, exchange: int, mid: int, payloads: list[V1Payload], *, clear: bool = False
    ) -> bytes:
        """A message; encrypted (flag E, IV chain of ``mid``) once the keys exist, unless
        ``clear`` (Aggressive Mode's second message)."""
        cipher = None if clear else self.cipher
        flags = FlagV1.ENCRYPTION if cipher is not None else 0
        msg = V1Message(self.spi_i, self.spi_r, exchange, mid, flags, payloads)
        c = self.ctx.counters.conn(self.name).messages_out
        key = ExchangeV1(exchange).name
        c[key] = c.get(key, 0) + 1
        if cipher is None:
            return encode_v1(msg)
        return encode_v1(msg, lambda plain: cipher.encrypt(mid, plain))

    def hashed(self, exchange: int, mid: int, payloads: list[V1Payload]) -> bytes:
        """HDR*, HASH(1), payloads (Informational, RFC 2409 §5.7)."""
        assert self.prf is not None and self.keys is not None
        _, rest = encode_chain(payloads)
        h = informational_hash(self.prf, self.keys.skeyid_a, mid, rest)
        return self.encode(exchange, mid, [V1Hash(h), *payloads])

    def message_id(self) -> int:
        while True:
            mid = int.from_bytes(self.ctx.random(4), "big")
            if mid and mid not in self.flights:
                return mid

    # -- Main Mode -----------------------------------------------------------------------------
    def vendor_ids(self) -> list[V1Payload]:
        return [V1VendorId(VID_RFC3947), V1VendorId(VID_NATT_DRAFT_02N), V1VendorId(VID_DPD)]

    def note_vendor_ids(self, msg: V1Message) -> None:
        for v in msg.all(V1VendorId):
            if v.data == VID_RFC3947:
                self.natt, self.natt_draft = True, False
            elif v.data in NATT_DRAFTS and not self.natt:
                self.natt, self.natt_draft = True, True
            elif v.data == VID_DPD:
                self.dpd_peer = True

    def choose(self, choice: Phase1Choice) -> None:
        """The transform is agreed: its hash is the PRF (and the NAT-D hash) from now on."""
        self.choice = choice
        self.prf = phase1_prf(choice.hash_alg)

    def natd(self, addr: Address) -> bytes:
        assert self.prf is not None
        return natd_hash(self.prf, self.spi_i, self.spi_r, addr[0], addr[1])

    def check_natd(self, hashes: list[bytes], src: Address, dst: Address) -> None:
        """RFC 3947 §3.2: the first hash is of the receiver (us), the others of the sender."""
        if not hashes:
            return
        forced = self.conn is not None and self.conn.encap
        self.nat_local = forced or hashes[0] != self.natd(dst)
        self.nat_remote = all(h != self.natd(src) for h in hashes[1:])
        if self.nat_any:
            where = "local" if not self.nat_remote else "remote" if not self.nat_local else "both"
            log.info("%s: NAT detected (%s)", self.tag(), where)

    def derive(self, peer_public: bytes, psk: bytes | None) -> None:
        """SKEYID (PSK, or signatures when ``psk`` is None), SKEYID_d/a/e, the cipher and
        its phase-1 IV (RFC 2409 §5, App. B)."""
        p1, choice = self.p1, self.choice
        assert p1.ke is not None and choice is not None and self.prf is not None
        try:
            shared = p1.ke.shared_secret(peer_public)
        except CryptoError as e:
            raise PeerError("invalid_ke", str(e)) from e
        if psk is None:
            skeyid = skeyid_signature(self.prf, p1.ni, p1.nr, shared)
        else:
            skeyid = skeyid_psk(self.prf, psk, p1.ni, p1.nr)
        self.keys = derive_phase1(
            self.prf, skeyid, shared, self.spi_i, self.spi_r, choice.key_bits // 8
        )
        self.cipher = Ikev1Cipher(self.prf, self.keys.enc_key, p1.g_xi, p1.g_xr)

    def auth_hash(self, initiator: bool, id_b: bytes) -> bytes:
        assert self.prf is not None and self.keys is not None and self.choice is not None
        p1 = self.p1
        f = hash_i if initiator else hash_r
        return f(
            auth_prf(self.prf, self.choice.auth),
            self.keys.skeyid,
            p1.g_xi,
            p1.g_xr,
            self.spi_i,
            self.spi_r,
            p1.sai_b,
            id_b,
        )

    def own_id(self) -> V1Id:
        """Our phase-1 ID: the configured identity (IKEv2's ID numbers are IKEv1's for the
        types they share), else our address (RFC 2409 §5.4's Main Mode PSK case)."""
        assert self.conn is not None
        ident = self.conn.local.id
        if ident is not None:
            return V1Id(ident.id_type, 0, 0, ident.data)
        return address_id(self.local[0])

    def expected_peer(self) -> V1Id:
        assert self.conn is not None
        ident = self.conn.remote.id
        if ident is not None:
            return V1Id(ident.id_type, 0, 0, ident.data)
        return address_id(self.remote[0])

    # -- ending --------------------------------------------------------------------------------
    def fail(
        self, reason: str, now: float, remove: Callable[[ChildSa, str], None], quiet: bool = False
    ) -> None:
        if self.state == IkeState.DESTROYED:
            return
        self.delete_reason = reason
        for child in list(self.children):
            remove(child, reason)
        if not quiet or self.established_at is not None:
            if self.unproven:  # a flood's (e.g. all of them at shutdown)
                self.ctx.log_limit.log(
                    log, logging.INFO, "half_open_ended", now,
                    "%s: ISAKMP_SA ended: %s", self.tag(), reason,
                )  # fmt: skip
            else:
                log.info("%s: ISAKMP_SA ended: %s", self.tag(), reason)
            spis = (self.spi_i, self.spi_r) if self.established_at is not None else None
            self.ctx.emit(IkeSaDeleted(self.name, self.unique_id, reason, spis))
        self.flights.clear()
        self.quick.clear()
        self.set_state(IkeState.DESTROYED, now)

    def quick_refused(self, spi: bytes) -> list[QuickMode]:
        """The peer refused what we asked (an error notify about the ESP SA ``spi``, or
        about none): our Quick Modes under way end, and the one we answered that waits
        for QM3 with that SPI (any, for none: the peer's kernel refused the pair), all
        unretransmitted; a child they were to rekey stays in use."""
        refused = self.quick.take_refused(int.from_bytes(spi, "big") if len(spi) == 4 else None)
        for qm in refused:
            self.forget_flight(qm.mid)
            if qm.rekey_of is not None and qm.rekey_of.state == ChildState.REKEYING:
                qm.rekey_of.set_state(ChildState.INSTALLED, self.name)
        return refused

    def live_children(self) -> list[ChildSa]:
        return [c for c in self.children if c.state in (ChildState.INSTALLED, ChildState.REKEYING)]


# Builds and sends the message that carries our CERTs and SIG (they come last but one).
Continue = Callable[[IsakmpSa, list[V1Payload], float], None]


def address_id(ip: str) -> V1Id:
    a = ipaddress.ip_address(ip)
    return V1Id(IdV1.IPV4_ADDR if a.version == 4 else IdV1.IPV6_ADDR, 0, 0, a.packed)


def id_text(p: V1Id | None) -> str:
    if p is None:
        return ""
    if p.id_type in (IdV1.IPV4_ADDR, IdV1.IPV6_ADDR):
        return str(ipaddress.ip_address(p.data))
    if p.id_type in (IdV1.FQDN, IdV1.USER_FQDN):
        return p.data.decode("utf-8", "replace")
    if p.id_type == IdV1.DER_ASN1_DN:
        return peer_identity(p.id_type, p.data).text  # "C=CH, O=x, CN=gw" as strongSwan
    return p.data.hex()
