"""What goes to the kernel: SAs and policies as neutral values (no engine, no netlink).

Both engines emit these; ``pike.kernel`` consumes them. Algorithms are named by their IKEv2
transform IDs (``pike.crypto.ids``); the kernel package maps them to its own names.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from pike.frozen import frozen
from pike.policy.ts import IPAddress, TrafficSelector

Mode = Literal["tunnel", "transport"]
Direction = Literal["in", "out", "fwd"]
Offload = Literal["no", "crypto", "packet", "auto"]

IPPROTO_ESP = 50


@frozen
class Lifetime:
    """Soft/hard limits; 0 means no limit (the kernel's XFRM_INF is used)."""

    soft_bytes: int = 0
    hard_bytes: int = 0
    soft_packets: int = 0
    hard_packets: int = 0
    soft_seconds: int = 0
    hard_seconds: int = 0


@frozen
class UdpEncap:
    """ESP-in-UDP (RFC 3948): outer UDP ports of this SA."""

    sport: int = 4500
    dport: int = 4500


# An XFRM mark (value, mask): a VTI sets its key as the mark of the packets it hands to
# XFRM, so SAs and policies with that mark belong to the tunnel. (0, 0): no mark.
Mark = tuple[int, int]
NO_MARK: Mark = (0, 0)


@frozen
class SaSpec:
    """One unidirectional ESP SA.

    ``encr_key`` includes the salt for AEAD ciphers (RFC 4106 / RFC 7634: 4 bytes at the
    end), exactly as KEYMAT yields it. ``integ_id`` is 0 (NONE) for AEAD ciphers.
    """

    src: IPAddress
    dst: IPAddress
    spi: int
    reqid: int
    mode: Mode
    encr_id: int
    encr_key: bytes = field(repr=False)
    encr_key_length: int | None  # bits of the cipher key without salt (AES: 128/256)
    integ_id: int
    integ_key: bytes = field(repr=False)
    # Selector of the SA itself (the kernel checks it in transport mode).
    src_ts: TrafficSelector | None = None
    dst_ts: TrafficSelector | None = None
    encap: UdpEncap | None = None
    lifetime: Lifetime = Lifetime()
    replay_window: int = 32
    esn: bool = False
    inbound: bool = False
    offload: Offload = "no"
    offload_dev: str | None = None
    if_id: int = 0  # XFRM interface (ip link add ... type xfrm if_id N); 0: none
    mark: Mark = NO_MARK  # only packets with mark & mask == value use it (VTI keys)
    # Outbound: the last sequence number already sent. A CHILD_SA removed and added again
    # (MOBIKE without XFRM migrate) goes on from there: the peer's replay window kept it.
    oseq: int = 0


@frozen
class PolicySpec:
    """One XFRM policy: traffic from src_ts to dst_ts in ``direction`` uses ESP.

    In tunnel mode the template's outer addresses are ``tmpl_src``/``tmpl_dst``.
    """

    src_ts: TrafficSelector
    dst_ts: TrafficSelector
    direction: Direction
    reqid: int
    mode: Mode
    tmpl_src: IPAddress
    tmpl_dst: IPAddress
    priority: int = 0  # 0: derived from selector specificity by the kernel backend
    action: Literal["allow", "block"] = "allow"
    trap: bool = False  # on-demand: installed before any SA exists (start_action=trap)
    if_id: int = 0  # only packets routed through that XFRM interface match; 0: any
    mark: Mark = NO_MARK  # only packets with mark & mask == value match (VTI keys)


@frozen
class SaCounters:
    bytes: int
    packets: int
    last_use: float | None = None  # wall-clock seconds of last use, None if never
    offload: str = "no"  # NIC offload the SA was installed with: no, crypto, packet
    oseq: int = 0  # outbound: the last sequence number sent (ESN: all 64 bits)


@frozen
class KernelCaps:
    """What the kernel can take, probed once at start and handed to the engines.

    Without ESP the engines still negotiate IKE and refuse each CHILD_SA the way strongSwan
    does when its SAD install fails (NO_PROPOSAL_CHOSEN, IKE SA stays up).
    """

    esp: bool
    missing: tuple[str, ...] = ()


# piked's reqids: every SA and policy it installs carries one from this range, so that a
# new run recognizes what a killed one left in the kernel (``KernelIpsec.remove_stale``).
# Other IKE daemons count from 1; 2^24 reqids per run before they wrap within the range.
REQID_BASE = 0x70000000
REQID_COUNT = 1 << 24


def is_pike_reqid(reqid: int) -> bool:
    return REQID_BASE <= reqid < REQID_BASE + REQID_COUNT
