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
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from operator import attrgetter
from typing import TypeVar

from pike.wire.bodies import GENERIC, MAX_PAYLOAD_LEN, Step, Unusual, invalid, too_long
from pike.wire.buffer import truncated
from pike.wire.constants import TsType
from pike.wire.errors import EncodeError
from pike.wire.payloads import IPAddress, TrafficSelectorWire, TsiPayload, TsPayload, TsrPayload

TS_HEADER = struct.Struct("!B3x")
_GENERIC_UNPACK = GENERIC.unpack_from
_TS = TypeVar("_TS", TsiPayload, TsrPayload)
SELECTOR = struct.Struct("!BBHHH")  # then the starting and the ending address

# TS type -> (the two addresses, address class)
_ADDRESS: dict[int, tuple[struct.Struct, type[IPv4Address] | type[IPv6Address]]] = {
    TsType.TS_IPV4_ADDR_RANGE: (struct.Struct("!4s4s"), IPv4Address),
    TsType.TS_IPV6_ADDR_RANGE: (struct.Struct("!16s16s"), IPv6Address),
}


# Selectors by their exact bytes: a peer's selectors are the same in every CHILD_SA
# exchange of its connection (and a hub's own subnet is in every one), and making the two
# addresses and the frozen value is most of a selector's cost. The values are immutable, so
# sharing them is safe. Bounded: a peer sending ever new selectors only empties it.
_SELECTOR_CACHE: dict[bytes, TrafficSelectorWire] = {}
_CACHE_MAX = 256
_IPV4_SIZE = SELECTOR.size + 8  # the selector and its two IPv4 addresses


def _decode_selectors(data: bytes, start: int, end: int) -> tuple[TrafficSelectorWire, ...]:
    # Walks the body by offsets (as the chain walker does) rather than with a Reader: a
    # TS payload is in every CHILD_SA exchange, and the Reader's calls were most of its cost.
    if end - start < TS_HEADER.size:
        raise truncated(f"TS header in a {end - start} byte body")
    (count,) = TS_HEADER.unpack_from(data, start)
    pos = start + TS_HEADER.size
    selectors = []
    for i in range(count):
        # An IPv4 selector seen before is found by its bytes alone: a cached key holds its
        # type (7) and its Selector Length (16), so the bytes equal to it are valid.
        selector = (
            _SELECTOR_CACHE.get(data[pos : pos + _IPV4_SIZE]) if pos + _IPV4_SIZE <= end else None
        )
        if selector is None:
            selector, length = _decode_selector(data, pos, end, i)
            pos += length
        else:
            pos += _IPV4_SIZE
        selectors.append(selector)
    if pos != end:
        raise invalid(f"{end - pos} bytes after {count} traffic selectors")
    return tuple(selectors)


def _decode_selector(data: bytes, pos: int, end: int, i: int) -> tuple[TrafficSelectorWire, int]:
    """Selector ``i`` at ``pos`` with every check, and its length."""
    if end - pos < SELECTOR.size:
        raise truncated(f"selector {i}: {end - pos} bytes left")
    ts_type, ip_protocol, length, start_port, end_port = SELECTOR.unpack_from(data, pos)
    address = _ADDRESS.get(ts_type)
    if address is None:
        raise invalid(f"unknown TS type {ts_type}")
    addresses, cls = address
    if length != SELECTOR.size + addresses.size:
        raise invalid(f"TS type {ts_type} with Selector Length {length}")
    if end - pos < length:
        raise truncated(f"selector {i}: {end - pos} bytes left of {length}")
    key = data[pos : pos + length]
    selector = _SELECTOR_CACHE.get(key)
    if selector is None:
        first, last = addresses.unpack_from(data, pos + SELECTOR.size)
        selector = TrafficSelectorWire(
            ts_type, ip_protocol, start_port, end_port, cls(first), cls(last)
        )
        if len(_SELECTOR_CACHE) >= _CACHE_MAX:
            _SELECTOR_CACHE.clear()
        _SELECTOR_CACHE[key] = selector
    return selector, length


def _ts_step(cls: type[_TS]) -> Step:
    """The step (see ``bodies.Step``) of TSi or TSr: the generic header, then the body."""

    def step(data: bytes, pos: int, end: int) -> tuple[_TS, int, int]:
        next_kind, _, length = _GENERIC_UNPACK(data, pos)
        stop = pos + length
        if length < GENERIC.size or stop > end:
            raise Unusual
        return cls(_decode_selectors(data, pos + GENERIC.size, stop)), next_kind, stop

    return step


def decode_tsi(data: bytes, start: int, end: int) -> TsiPayload:
    return TsiPayload(_decode_selectors(data, start, end))


def decode_tsr(data: bytes, start: int, end: int) -> TsrPayload:
    return TsrPayload(_decode_selectors(data, start, end))


# The generic payload header with the TS header, and each type's selector with its two
# addresses: what ``write_ts`` packs in one call each. An IPv4 address goes in as its int
# (one call, where ``.packed`` is two in ``ipaddress``); an IPv6 one as its bytes.
_TS_PAYLOAD = struct.Struct(GENERIC.format + TS_HEADER.format[1:])
_SELECTORS: dict[int, tuple[struct.Struct, type[IPAddress], Callable[[IPAddress], object]]] = {
    TsType.TS_IPV4_ADDR_RANGE: (struct.Struct(SELECTOR.format + "II"), IPv4Address, int),
    TsType.TS_IPV6_ADDR_RANGE: (
        struct.Struct(SELECTOR.format + "16s16s"),
        IPv6Address,
        attrgetter("packed"),
    ),
}


# The same with the generic and the TS header in front: a payload of one selector (the
# common case) in one pack.
_ONE_SELECTOR = {
    ts_type: (struct.Struct(_TS_PAYLOAD.format + fmt.format[1:]), cls, value)
    for ts_type, (fmt, cls, value) in _SELECTORS.items()
}


# Payloads as written, by the payload's identity and the next type: the engine shares a TS
# payload between the CHILD_SAs that narrow to the same selectors, and writing it costs
# more than finding it (hashing it by value would run ``ipaddress``'s Python hashes). The
# payload is kept with its bytes, so its id stands for no other object while it is here.
# Bounded like the decoders' memos.
_WRITTEN: dict[tuple[int, int], tuple[TsPayload, bytes]] = {}


def write_ts(p: TsPayload, next_kind: int) -> bytes:
    """The whole TSi/TSr payload: generic header, TS header, selectors."""
    key = (id(p), next_kind)
    known = _WRITTEN.get(key)
    if known is not None and known[0] is p:
        return known[1]
    written = _write_ts(p, next_kind)
    if len(_WRITTEN) >= _CACHE_MAX:
        _WRITTEN.clear()
    _WRITTEN[key] = p, written
    return written


def _write_ts(p: TsPayload, next_kind: int) -> bytes:
    if len(p.selectors) == 1:
        (ts,) = p.selectors
        one = _ONE_SELECTOR.get(ts.ts_type)
        if one is not None:
            fmt, cls, value = one
            start, end = ts.start_addr, ts.end_addr
            if type(start) is cls and type(end) is cls:
                return fmt.pack(
                    next_kind,
                    0,
                    fmt.size,
                    1,
                    ts.ts_type,
                    ts.ip_protocol,
                    fmt.size - _TS_PAYLOAD.size,
                    ts.start_port,
                    ts.end_port,
                    value(start),
                    value(end),
                )
    parts = [b""]
    append = parts.append
    size = _TS_PAYLOAD.size
    for ts in p.selectors:
        selector = _SELECTORS.get(ts.ts_type)
        if selector is None:
            raise EncodeError(f"unknown TS type {ts.ts_type}")
        fmt, cls, value = selector
        start, end = ts.start_addr, ts.end_addr
        if type(start) is not cls or type(end) is not cls:
            raise EncodeError(f"addresses {start}, {end} do not fit TS type")
        append(
            fmt.pack(
                ts.ts_type,
                ts.ip_protocol,
                fmt.size,
                ts.start_port,
                ts.end_port,
                value(start),
                value(end),
            )
        )
        size += fmt.size
    if size > MAX_PAYLOAD_LEN:
        raise too_long(p, size)
    parts[0] = _TS_PAYLOAD.pack(next_kind, 0, size, len(p.selectors))
    return b"".join(parts)


step_tsi = _ts_step(TsiPayload)
step_tsr = _ts_step(TsrPayload)
