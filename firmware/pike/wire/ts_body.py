"""Traffic Selector payload body (RFC 7296 §3.13).

    +---------------+-----------------------------------------------+
    | Number of TSs |                 RESERVED                      |
    +---------------+-----------------------------------------------+
    ~                       <Traffic Selectors>                     ~

Each selector (§3.13.1):
    +---------------+---------------+-------------------------------+
    |   TS Type     |IP Protocol ID*|       Selector Length         |
    +---------------+---------------+-------------------------------+
    |           Start Port*         |           End Port*           |
    +-------------------------------+-------------------------------+
    ~                         Starting Address*                     ~
    ~                         Ending Address*                       ~

Only the two RFC 7296 types are known; their Selector Length is fixed (16 and 40). Any other
type cannot be skipped safely (narrowing would be wrong), so it is invalid syntax.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from pike.wire.bodies import invalid
from pike.wire.buffer import Reader
from pike.wire.constants import TsType
from pike.wire.errors import EncodeError
from pike.wire.payloads import IPAddress, TrafficSelectorWire, TsiPayload, TsPayload, TsrPayload

TS_HEADER = struct.Struct("!B3x")
SELECTOR = struct.Struct("!BBHHH")

# TS type -> (address length, address class)
_ADDRESS: dict[int, tuple[int, type[IPv4Address] | type[IPv6Address]]] = {
    TsType.TS_IPV4_ADDR_RANGE: (4, IPv4Address),
    TsType.TS_IPV6_ADDR_RANGE: (16, IPv6Address),
}


def _decode_selectors(r: Reader) -> tuple[TrafficSelectorWire, ...]:
    (count,) = r.unpack(TS_HEADER, "TS")
    selectors = []
    for _ in range(count):
        ts_type, ip_protocol, length, start_port, end_port = r.unpack(SELECTOR, "selector")
        address = _ADDRESS.get(ts_type)
        if address is None:
            raise invalid(f"unknown TS type {ts_type}")
        size, cls = address
        if length != SELECTOR.size + 2 * size:
            raise invalid(f"TS type {ts_type} with Selector Length {length}")
        start = cls(r.read(size, "TS start address"))
        end = cls(r.read(size, "TS end address"))
        selectors.append(
            TrafficSelectorWire(ts_type, ip_protocol, start_port, end_port, start, end)
        )
    if r.remaining:
        raise invalid(f"{r.remaining} bytes after {count} traffic selectors")
    return tuple(selectors)


def decode_tsi(r: Reader) -> TsiPayload:
    return TsiPayload(_decode_selectors(r))


def decode_tsr(r: Reader) -> TsrPayload:
    return TsrPayload(_decode_selectors(r))


def _packed(addr: IPAddress, size: int) -> bytes:
    packed = addr.packed
    if len(packed) != size:
        raise EncodeError(f"address {addr} does not fit its TS type")
    return packed


def encode_ts(p: TsPayload) -> bytes:
    parts = [TS_HEADER.pack(len(p.selectors))]
    for ts in p.selectors:
        address = _ADDRESS.get(ts.ts_type)
        if address is None:
            raise EncodeError(f"unknown TS type {ts.ts_type}")
        size = address[0]
        parts.append(
            SELECTOR.pack(
                ts.ts_type, ts.ip_protocol, SELECTOR.size + 2 * size, ts.start_port, ts.end_port
            )
        )
        parts.append(_packed(ts.start_addr, size))
        parts.append(_packed(ts.end_addr, size))
    return b"".join(parts)
