"""Traffic selectors -> XFRM selectors (prefix + port/mask) and policy priorities."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from itertools import product
from typing import Any

from pike.policy.ts import IPAddress, IPNetwork, TrafficSelector

# Tunnel/transport policies start here; more specific selectors subtract from it, so they
# win (the kernel picks the lowest number). Like strongSwan's PRIO_BASE scheme, scaled so the
# result stays within 2000..3000 for any selector.
PRIORITY_BASE = 3000


def family_of(addr: IPAddress) -> int:
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


def packed(addr: IPAddress | None) -> bytes:
    """xfrm_address_t: the address left-aligned in 16 bytes (struct pads with zeros)."""
    return b"" if addr is None else addr.packed


@dataclass(frozen=True, slots=True)
class Selector:
    """One struct xfrm_selector."""

    src: IPNetwork
    dst: IPNetwork
    proto: int = 0
    sport: int = 0
    sport_mask: int = 0
    dport: int = 0
    dport_mask: int = 0

    def fields(self) -> dict[str, Any]:
        return {
            "sel_saddr": self.src.network_address.packed,
            "sel_daddr": self.dst.network_address.packed,
            "sel_prefixlen_s": self.src.prefixlen,
            "sel_prefixlen_d": self.dst.prefixlen,
            "sel_family": family_of(self.src.network_address),
            "sel_proto": self.proto,
            "sel_sport": self.sport,
            "sel_sport_mask": self.sport_mask,
            "sel_dport": self.dport,
            "sel_dport_mask": self.dport_mask,
        }

    def priority(self, base: int = PRIORITY_BASE) -> int:
        """Lower for narrower selectors: prefixes count most, then protocol, then ports."""
        score = (self.src.prefixlen + self.dst.prefixlen) * 4
        score += 2 if self.proto else 0
        score += 1 if (self.sport_mask or self.dport_mask) else 0
        return base - score


def port_blocks(lo: int, hi: int) -> list[tuple[int, int]]:
    """A port range as (port, mask) blocks: XFRM matches ``port & mask``, not ranges."""
    if (lo, hi) == (0, 65535):
        return [(0, 0)]
    blocks = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while lo + size - 1 > hi:
            size >>= 1
        blocks.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return blocks


@functools.lru_cache(maxsize=1024)
def selectors(src: TrafficSelector, dst: TrafficSelector) -> tuple[Selector, ...]:
    """Every selector needed to cover src -> dst (one per prefix and port block pair).

    Cached (both are frozen values): a CHILD_SA's ``in`` and ``fwd`` policies have the
    same pair, and a rekey or delete soon after asks again."""
    if src.version != dst.version:
        raise ValueError(f"selector families differ: {src} -> {dst}")
    proto = src.protocol or dst.protocol
    out = []
    for snet, dnet, (sp, spm), (dp, dpm) in product(
        src.networks(),
        dst.networks(),
        port_blocks(src.start_port, src.end_port),
        port_blocks(dst.start_port, dst.end_port),
    ):
        out.append(Selector(snet, dnet, proto, sp, spm, dp, dpm))
    return tuple(out)


def sa_selector(src: TrafficSelector, dst: TrafficSelector) -> Selector:
    """A transport SA's own selector: addresses only (strongSwan drops proto/ports so ICMP
    errors and fragments still match); a range that is not one prefix is widened."""
    return Selector(_covering(src), _covering(dst))


def _covering(ts: TrafficSelector) -> IPNetwork:
    nets = ts.networks()
    net = nets[0]
    while not (int(net.network_address) <= int(ts.end) <= int(net.broadcast_address)):
        net = net.supernet()
    return net
