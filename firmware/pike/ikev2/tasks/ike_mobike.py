"""MOBIKE (RFC 4555): the IKE SA and its CHILD_SAs move to new addresses, same SPIs.

In IKE_AUTH (steps of the ike_auth task) both sides announce N(MOBIKE_SUPPORTED) (when the
connection has ``mobike = true``) with their other addresses (ADDITIONAL_IP4/6_ADDRESS,
else NO_ADDITIONAL_ADDRESSES). ``MobikeUpdate`` is the INFORMATIONAL that moves it: only
the IKE SA's original initiator sends N(UPDATE_SA_ADDRESSES), from the new path, with
fresh NAT detection and a COOKIE2 the response must echo (return routability, §3.5);
the responder takes the request's addresses as the new path, answers with its NAT
detection and the COOKIE2, and both move their CHILD_SAs in the kernel (``MigrateChildSa``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from pike.ikev2.log import log
from pike.ikev2.tasks.base import RespondError, Task, TaskFailed
from pike.ikev2.tasks.ike_natd import natd_hash
from pike.policy.addrs import parse_ip
from pike.policy.ipsec import UdpEncap
from pike.sa.actions import Address, MigrateChildSa
from pike.sa.state import ChildState
from pike.wire.constants import ERROR_NOTIFY_MAX, ExchangeType, NotifyType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_MOBIKE_SUPPORTED = NotifyType.MOBIKE_SUPPORTED
# The notify as sent: an immutable value every IKE_AUTH shares (not built per message)
_SUPPORTED = NotifyPayload(_MOBIKE_SUPPORTED)

ADDITIONAL_IP4_ADDRESS = NotifyType.ADDITIONAL_IP4_ADDRESS
ADDITIONAL_IP6_ADDRESS = NotifyType.ADDITIONAL_IP6_ADDRESS
NO_ADDITIONAL_ADDRESSES = NotifyType.NO_ADDITIONAL_ADDRESSES
UPDATE_SA_ADDRESSES = NotifyType.UPDATE_SA_ADDRESSES
COOKIE2 = NotifyType.COOKIE2
MAX_ADDITIONAL = 8  # addresses announced at most (strongSwan's limit too)
COOKIE2_SIZE = 16  # what we send; RFC 4555 §3.6 allows 8 to 64 octets
MOBIKE_NOTIFIES = frozenset(
    {ADDITIONAL_IP4_ADDRESS, ADDITIONAL_IP6_ADDRESS, NO_ADDITIONAL_ADDRESSES}
    | {UPDATE_SA_ADDRESSES, COOKIE2}
)


class InvalidMobike(Exception):
    """A MOBIKE notify that breaks RFC 4555's rules (answered with INVALID_SYNTAX)."""


def address_list(sa: IkeSa) -> list[NotifyPayload]:
    """Our addresses other than the one the IKE SA uses (RFC 4555 §3.6)."""
    return list(_address_list(sa.ctx.local_addresses, sa.local[0]))


@functools.lru_cache(maxsize=256)
def _address_list(ours: tuple[str, ...], used: str) -> tuple[NotifyPayload, ...]:
    # every IKE_AUTH with MOBIKE asks, with the same few addresses (the payloads are
    # immutable: messages share them)
    out: list[NotifyPayload] = []
    for text in ours:
        ip = parse_ip(text)
        if text == used or ip.is_loopback or ip.is_link_local or ip.is_multicast:
            continue
        kind = ADDITIONAL_IP4_ADDRESS if ip.version == 4 else ADDITIONAL_IP6_ADDRESS
        out.append(NotifyPayload(kind, ip.packed))
        if len(out) == MAX_ADDITIONAL:
            break
    return tuple(out) or (NotifyPayload(NO_ADDITIONAL_ADDRESSES),)


def list_key(notes: list[NotifyPayload]) -> tuple[tuple[int, bytes], ...]:
    # ints, not NotifyType members: a tuple of ints and bytes is one the collector drops
    return tuple((int(n.notify_type), n.data) for n in notes)


@functools.lru_cache(maxsize=256)
def _address_key(ours: tuple[str, ...], used: str) -> tuple[tuple[int, bytes], ...]:
    """``list_key`` of ``_address_list``: what ``IkeSa.announced`` keeps (cached alike)."""
    return list_key(list(_address_list(ours, used)))


def list_changed(sa: IkeSa) -> bool:
    """Our addresses differ from those the peer was last told of."""
    return _address_key(sa.ctx.local_addresses, sa.local[0]) != sa.announced


def peer_addresses(msg: Message) -> tuple[str, ...] | None:
    """The peer's other addresses in ``msg``; None when it says nothing of them."""
    notes = [n for n in msg.all(NotifyPayload) if n.notify_type in MOBIKE_NOTIFIES]
    found: list[str] = []
    said = False
    for n in notes:
        if n.notify_type == NO_ADDITIONAL_ADDRESSES:
            said = True
        elif n.notify_type in (ADDITIONAL_IP4_ADDRESS, ADDITIONAL_IP6_ADDRESS):
            size = 4 if n.notify_type == ADDITIONAL_IP4_ADDRESS else 16
            if len(n.data) != size:
                raise InvalidMobike(f"additional address of {len(n.data)} octets")
            found.append(str(parse_ip(n.data)))
            said = True
    if found and any(n.notify_type == NO_ADDITIONAL_ADDRESSES for n in notes):
        raise InvalidMobike("NO_ADDITIONAL_ADDRESSES beside additional addresses")
    return tuple(dict.fromkeys(found)) if said else None


def _one(msg: Message, kind: int) -> NotifyPayload | None:
    found = [n for n in msg.all(NotifyPayload) if n.notify_type == kind]
    if len(found) > 1:
        raise InvalidMobike(f"{len(found)} notifies of type {kind}")
    return found[0] if found else None


def _nat_hashes(msg: Message, kind: int) -> list[bytes]:
    return [n.data for n in msg.all(NotifyPayload) if n.notify_type == kind]


def natd_payloads(sa: IkeSa) -> list[NotifyPayload]:
    return [
        NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, natd_hash(sa.spi_i, sa.spi_r, sa.local)),
        NotifyPayload(
            NotifyType.NAT_DETECTION_DESTINATION_IP, natd_hash(sa.spi_i, sa.spi_r, sa.remote)
        ),
    ]


def detect_nat(sa: IkeSa, msg: Message) -> None:
    """NAT detection on the new path (the peer's hashes of its source and our address)."""
    src = _nat_hashes(msg, NotifyType.NAT_DETECTION_SOURCE_IP)
    dst = _nat_hashes(msg, NotifyType.NAT_DETECTION_DESTINATION_IP)
    if not src or not dst:
        raise InvalidMobike("NAT detection missing")
    if any(len(h) != 20 for h in src + dst):
        raise InvalidMobike("NAT detection hash not 20 octets")
    sa.nat_local = natd_hash(sa.spi_i, sa.spi_r, sa.local) not in dst
    sa.nat_remote = natd_hash(sa.spi_i, sa.spi_r, sa.remote) not in src


def follow_path(sa: IkeSa, old: tuple[Address, Address]) -> None:
    """The IKE SA now uses (sa.local, sa.remote): its CHILD_SAs follow in the kernel,
    counted and logged once per change."""
    new = (sa.local, sa.remote)
    if new == old:
        return
    log.info(
        "%s: path changed from %s[%d]...%s[%d] to %s[%d]...%s[%d]",
        sa.tag(),
        *old[0],
        *old[1],
        *new[0],
        *new[1],
    )
    sa.ctx.counters.conn(sa.name).path_changes += 1
    encap = UdpEncap(sa.remote[1], sa.local[1]) if sa.natt else None
    out_encap = UdpEncap(sa.local[1], sa.remote[1]) if sa.natt else None
    for child in sa.children:
        if child.state != ChildState.INSTALLED or child.inbound is None:
            continue
        old_in, old_out, old_pol = child.inbound, child.outbound, child.policies
        assert old_out is not None
        child.build_kernel_specs(sa.local[0], sa.remote[0], encap, out_encap)
        assert child.inbound is not None and child.outbound is not None
        if (child.inbound, child.outbound) == (old_in, old_out):
            continue
        sa.ctx.emit(
            MigrateChildSa(
                sa.name,
                child.name,
                child.unique_id,
                old_in,
                old_out,
                old_pol,
                child.inbound,
                child.outbound,
                child.policies,
            )
        )


def mobike_wanted(sa: IkeSa) -> bool:
    """Our connection allows MOBIKE."""
    conn = sa.conn
    return conn is not None and conn.mobike


def announce_mobike(sa: IkeSa, msg: Message) -> None:
    """N(MOBIKE_SUPPORTED) and our other addresses, in IKE_AUTH (a step of ike_auth)."""
    msg.payloads.append(_SUPPORTED)
    msg.payloads.extend(_address_list(sa.ctx.local_addresses, sa.local[0]))
    sa.announced = _address_key(sa.ctx.local_addresses, sa.local[0])


def learn_mobike(sa: IkeSa, msg: Message) -> bool:
    """Whether the peer's IKE_AUTH message announces MOBIKE; notes the other addresses it
    tells of (a step of ike_auth)."""
    supports = msg.notify(_MOBIKE_SUPPORTED) is not None
    try:
        addrs = peer_addresses(msg)
    except InvalidMobike as exc:
        # in IKE_AUTH not worth failing the SA for: the list is ignored, counted
        log.info("%s: peer's address list ignored: %s", sa.tag(), exc)
        sa.ctx.counters.drop("invalid_mobike_addresses")
        return supports
    if addrs is not None:
        sa.peer_addrs = addrs
    return supports


class MobikeUpdate(Task):
    """INFORMATIONAL with UPDATE_SA_ADDRESSES (original initiator of the IKE SA), one
    with only our new address list (either side, ``addresses_only``: our addresses changed
    but not the path, RFC 4555 §3.6), or the answer to any INFORMATIONAL carrying MOBIKE
    notifies."""

    sa: IkeSa

    name = "mobike_update"

    def __init__(
        self,
        sa: IkeSa,
        initiator: bool,
        old: tuple[Address, Address] | None = None,
        addresses_only: bool = False,
    ) -> None:
        super().__init__(sa, initiator)
        self.addresses_only = addresses_only
        self.cookie2: bytes | None = None
        self.answer_nat = False
        # the path the kernel's CHILD_SAs use now (they move once the peer answered)
        self.old: tuple[Address, Address] = old or (sa.local, sa.remote)

    @property
    def exchange(self) -> int:
        return ExchangeType.INFORMATIONAL

    def build(self, msg: Message, now: float) -> None:
        sa = self.sa
        if not self.initiator:
            if self.answer_nat:
                msg.payloads.extend(natd_payloads(sa))
            if self.cookie2 is not None:
                msg.payloads.append(NotifyPayload(COOKIE2, self.cookie2))
            return
        notes = address_list(sa)
        sa.announced = list_key(notes)
        if self.addresses_only:
            msg.payloads.extend(notes)
            log.info("%s: telling the peer our addresses changed", sa.tag())
            return
        self.cookie2 = sa.ctx.random(COOKIE2_SIZE)
        msg.payloads.append(NotifyPayload(UPDATE_SA_ADDRESSES))
        msg.payloads.extend(natd_payloads(sa))
        msg.payloads.append(NotifyPayload(COOKIE2, self.cookie2))
        msg.payloads.extend(notes)
        log.info("%s: updating addresses to %s[%d]...%s[%d]", sa.tag(), *sa.local, *sa.remote)

    def process(self, msg: Message, now: float) -> None:
        if self.initiator and self.addresses_only:
            if errors := [n for n in msg.all(NotifyPayload) if n.notify_type <= ERROR_NOTIFY_MAX]:
                log.info(
                    "%s: peer refused our addresses (%d)", self.sa.tag(), errors[0].notify_type
                )
        elif self.initiator:
            self._process_i(msg, now)
        else:
            self._process_r(msg)

    def _process_i(self, msg: Message, now: float) -> None:
        sa = self.sa
        errors = [n for n in msg.all(NotifyPayload) if n.notify_type <= ERROR_NOTIFY_MAX]
        if errors:
            log.warning(
                "%s: peer refused UPDATE_SA_ADDRESSES (notify %d)", sa.tag(), errors[0].notify_type
            )
            sa.ctx.counters.drop("update_sa_addresses_refused")
            # the kernel's CHILD_SAs never left the old path: the IKE SA goes back there
            # (unless a newer move is queued) and the engine tries another pair (§3.5)
            sa.refused_paths |= {(sa.local[0], sa.remote[0])}
            if not any(isinstance(t, MobikeUpdate) for t in sa.tasks.queued):
                sa.local, sa.remote = self.old
                sa.ctx.path_refused(sa, now)
            return
        echoed = [n.data for n in msg.all(NotifyPayload) if n.notify_type == COOKIE2]
        if echoed != [self.cookie2]:
            # §3.5: the return routability check failed; strongSwan closes the SA as well
            sa.ctx.counters.drop("cookie2_mismatch")
            raise TaskFailed("cookie2_mismatch", "UPDATE_SA_ADDRESSES answered without our COOKIE2")
        try:
            detect_nat(sa, msg)
        except InvalidMobike as exc:
            log.info("%s: NAT detection of the new path: %s", sa.tag(), exc)
            sa.ctx.counters.drop("invalid_update_sa_addresses")
        if sa.natt:
            sa.float_ports()
        follow_path(sa, self.old)

    def _process_r(self, msg: Message) -> None:
        sa = self.sa
        try:
            cookie = _one(msg, COOKIE2)
            if cookie is not None and not 8 <= len(cookie.data) <= 64:
                raise InvalidMobike(f"COOKIE2 of {len(cookie.data)} octets")
            update = _one(msg, UPDATE_SA_ADDRESSES)
            addrs = peer_addresses(msg)
            if update is not None:
                if not sa.mobike:
                    raise InvalidMobike("MOBIKE was not negotiated")
                if sa.roams():
                    raise InvalidMobike("only the IKE SA's original initiator updates addresses")
                if sa.request_path is None:
                    raise InvalidMobike("no path for the request")
                old = (sa.local, sa.remote)
                sa.local, sa.remote = sa.request_path
                try:
                    detect_nat(sa, msg)
                except InvalidMobike:
                    sa.local, sa.remote = old
                    raise
                self.answer_nat = True
                follow_path(sa, old)
        except InvalidMobike as exc:
            log.info("%s: invalid MOBIKE request: %s", sa.tag(), exc)
            sa.ctx.counters.drop("invalid_update_sa_addresses")
            raise RespondError(NotifyType.INVALID_SYNTAX, fatal=False, detail=str(exc)) from None
        self.cookie2 = cookie.data if cookie is not None else None
        if addrs is not None:
            sa.peer_addrs = addrs


def carries_mobike(msg: Message) -> bool:
    return any(n.notify_type in MOBIKE_NOTIFIES for n in msg.all(NotifyPayload))
