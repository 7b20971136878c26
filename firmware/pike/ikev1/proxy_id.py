"""Quick Mode proxy IDs (RFC 2409 §5.5, RFC 2407 §4.6.2) <-> traffic selectors.

A selector that is one address goes as IPV4/6_ADDR, a prefix as ..._ADDR_SUBNET (what
strongSwan and most head-office boxes send), anything else as ..._ADDR_RANGE. Protocol
and port are one value each in IKEv1: a port range other than one port or all is not
expressible, and a selector with one is refused by the caller's config check.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

from pike.policy.ts import IPAddress, TrafficSelector
from pike.wire.isakmp_constants import IdV1
from pike.wire.isakmp_payloads import V1Id

_ADDR = {4: IdV1.IPV4_ADDR, 6: IdV1.IPV6_ADDR}
_SUBNET = {4: IdV1.IPV4_ADDR_SUBNET, 6: IdV1.IPV6_ADDR_SUBNET}
_RANGE = {4: IdV1.IPV4_ADDR_RANGE, 6: IdV1.IPV6_ADDR_RANGE}


def to_id(ts: TrafficSelector) -> V1Id:
    port = ts.start_port if ts.start_port == ts.end_port else 0
    v = ts.version
    if ts.start == ts.end:
        return V1Id(_ADDR[v], ts.protocol, port, ts.start.packed)
    nets = ts.networks()
    if len(nets) == 1:
        net = nets[0]
        return V1Id(_SUBNET[v], ts.protocol, port, net.network_address.packed + net.netmask.packed)
    return V1Id(_RANGE[v], ts.protocol, port, ts.start.packed + ts.end.packed)


def _addr(data: bytes) -> IPAddress:
    return IPv4Address(data) if len(data) == 4 else IPv6Address(data)


def from_id(p: V1Id) -> TrafficSelector | None:
    """The selector a proxy ID names, or None if it is not an address ID (or its subnet
    mask is not a prefix)."""
    lo, hi = (p.port, p.port) if p.port else (0, 65535)
    half = len(p.data) // 2
    if p.id_type in (IdV1.IPV4_ADDR, IdV1.IPV6_ADDR):
        a = _addr(p.data)
        return TrafficSelector(a, a, p.protocol, lo, hi)
    if p.id_type in (IdV1.IPV4_ADDR_SUBNET, IdV1.IPV6_ADDR_SUBNET):
        addr, mask = _addr(p.data[:half]), int.from_bytes(p.data[half:], "big")
        bits = half * 8
        prefix = bin(mask).count("1")
        if mask != ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1):
            return None  # not a prefix: no selector the kernel can hold
        net = ipaddress.ip_network((addr, prefix), strict=False)
        return TrafficSelector(net.network_address, net.broadcast_address, p.protocol, lo, hi)
    if p.id_type in (IdV1.IPV4_ADDR_RANGE, IdV1.IPV6_ADDR_RANGE):
        start, end = _addr(p.data[:half]), _addr(p.data[half:])
        if int(start) > int(end):
            return None
        return TrafficSelector(start, end, p.protocol, lo, hi)
    return None
