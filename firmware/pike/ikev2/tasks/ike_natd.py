"""NAT detection in IKE_SA_INIT (RFC 7296 §2.23): steps of the ike_init task, both roles.

Each side sends SHA-1(SPIi | SPIr | IP | port) of its source and of the destination it
sent to; a mismatch on receipt reveals a NAT. ``encap = true`` fakes the source hash so
the peer believes in a NAT and both ends use UDP encapsulation (as strongSwan does).
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

from pike.policy.addrs import parse_ip
from pike.sa.actions import Address
from pike.wire.constants import NotifyType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


_NATD_SRC = NotifyType.NAT_DETECTION_SOURCE_IP  # looked up per message: an Enum member
_NATD_DST = NotifyType.NAT_DETECTION_DESTINATION_IP  # lookup is slow on Python 3.11


def natd_hash(spi_i: bytes, spi_r: bytes, addr: Address) -> bytes:
    return hashlib.sha1(spi_i + spi_r + _endpoint(addr)).digest()


@functools.lru_cache(maxsize=4096)
def _endpoint(addr: Address) -> bytes:
    """IP | port as NAT detection hashes them: four per IKE_SA_INIT, mostly the same few
    (bounded: peers choose their addresses)."""
    return parse_ip(addr[0]).packed + addr[1].to_bytes(2, "big")


def add_natd(sa: IkeSa, msg: Message) -> None:
    """Our NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP in ``msg``."""
    if sa.conn is not None and sa.conn.encap:
        src = sa.ctx.random(20)
    else:
        src = natd_hash(msg.spi_i, msg.spi_r, sa.local)
    msg.payloads.append(NotifyPayload(_NATD_SRC, src))
    msg.payloads.append(NotifyPayload(_NATD_DST, natd_hash(msg.spi_i, msg.spi_r, sa.remote)))


def note_nat(sa: IkeSa, msg: Message) -> None:
    """Whether the peer's hashes in ``msg`` reveal a NAT on either side."""
    dst: list[bytes] = []
    src: list[bytes] = []
    for n in msg.all(NotifyPayload):  # one walk for both kinds
        if n.notify_type == _NATD_DST:
            dst.append(n.data)
        elif n.notify_type == _NATD_SRC:
            src.append(n.data)
    if not dst or not src:
        return  # the peer does not do NAT detection: assume no NAT
    sa.nat_local = natd_hash(msg.spi_i, msg.spi_r, sa.local) not in dst
    sa.nat_remote = natd_hash(msg.spi_i, msg.spi_r, sa.remote) not in src


def float_for_auth(sa: IkeSa) -> None:
    """Initiator, IKE_SA_INIT done: move to port 4500 for IKE_AUTH when a NAT (or forced
    encap) is seen, or when it offers MOBIKE (RFC 4555 §3.4: the addresses may change
    later; not toward a peer at a port of its own, whose NAT-T port we cannot know)."""
    conn = sa.conn
    mobike = conn is not None and conn.mobike and sa.remote[1] == sa.ctx.config.daemon.ike_port
    if sa.natt or mobike:
        sa.float_ports()
