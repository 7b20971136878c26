"""Traffic selectors as neutral values shared by config, engines and kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pike.frozen import frozen

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


@frozen
class TrafficSelector:
    """An address range, IP protocol (0 = any) and port range (RFC 7296 §3.13.1)."""

    start: IPAddress
    end: IPAddress
    protocol: int = 0
    start_port: int = 0
    end_port: int = 65535
    # Its hash once asked (0: not yet; see ``_cached_hash``), not a value of its own.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __reduce__(self) -> tuple[type[TrafficSelector], tuple[object, ...]]:
        # pickled (the config cache) without the hash: another process hashes anew
        return TrafficSelector, (
            self.start,
            self.end,
            self.protocol,
            self.start_port,
            self.end_port,
        )

    @classmethod
    def from_cidr(cls, text: str, protocol: int = 0, port: int | None = None) -> TrafficSelector:
        net = ipaddress.ip_network(text, strict=False)
        lo, hi = (0, 65535) if port is None else (port, port)
        return cls(net.network_address, net.broadcast_address, protocol, lo, hi)

    @classmethod
    def host(cls, addr: IPAddress) -> TrafficSelector:
        return cls(addr, addr)

    @property
    def version(self) -> int:
        return self.start.version

    @property
    def empty(self) -> bool:
        """Selects nothing: a peer may send a start above the end (or addresses of two
        families); such a selector is never narrowed into, accepted or installed."""
        return (
            self.start.version != self.end.version
            or int(self.start) > int(self.end)
            or self.start_port > self.end_port
        )

    def networks(self) -> list[IPNetwork]:
        """The range as the smallest list of prefixes (kernel selectors are prefixes)."""
        lo, hi = int(self.start), int(self.end)
        span = hi - lo + 1
        one = span > 0 and span & (span - 1) == 0 and lo & (span - 1) == 0
        if one and self.start.version == self.end.version:
            # one prefix (the usual case): no need for the general summary
            bits = self.start.max_prefixlen - span.bit_length() + 1
            return [ipaddress.ip_network((self.start, bits))]
        return list(ipaddress.summarize_address_range(self.start, self.end))

    def contains(self, other: TrafficSelector) -> bool:
        return (
            not other.empty
            and self.version == other.version
            and int(self.start) <= int(other.start)
            and int(other.end) <= int(self.end)
            and (self.protocol == 0 or self.protocol == other.protocol)
            and self.start_port <= other.start_port
            and other.end_port <= self.end_port
        )

    def intersect(self, other: TrafficSelector) -> TrafficSelector | None:
        """The narrowed selector both sides accept, or None (RFC 7296 §2.9). When one lies
        within the other (the usual case), that one itself."""
        # every handshake narrows: each address is turned into a number once
        a0, a1, b0, b1 = self.start, self.end, other.start, other.end
        if not a0.__class__ is a1.__class__ is b0.__class__ is b1.__class__:
            return None  # two families
        lo_a, hi_a, lo_b, hi_b = int(a0), int(a1), int(b0), int(b1)
        # One within the other (the usual case: a peer proposing what we have, or a part
        # of it), non-empty by the chained comparisons: that one itself. Self first: when
        # both are equal, a CHILD_SA keeps our configured selector, not the decoded one
        # (3 objects fewer per SA).
        if (
            lo_b <= lo_a <= hi_a <= hi_b
            and other.start_port <= self.start_port <= self.end_port <= other.end_port
            and other.protocol in (0, self.protocol)
        ):
            return self
        if (
            lo_a <= lo_b <= hi_b <= hi_a
            and self.start_port <= other.start_port <= other.end_port <= self.end_port
            and self.protocol in (0, other.protocol)
        ):
            return other
        return self._overlap(other, lo_a, hi_a, lo_b, hi_b)

    def _overlap(
        self, other: TrafficSelector, lo_a: int, hi_a: int, lo_b: int, hi_b: int
    ) -> TrafficSelector | None:
        """The general case of ``intersect``: the part both ranges share, if any."""
        p_a, p_b = self.protocol, other.protocol
        lo_pa, hi_pa, lo_pb, hi_pb = (
            self.start_port,
            self.end_port,
            other.start_port,
            other.end_port,
        )
        if lo_a > hi_a or lo_b > hi_b or max(lo_a, lo_b) > min(hi_a, hi_b):
            return None  # one is empty, or they do not meet
        if p_a and p_b and p_a != p_b:
            return None
        if lo_pa > hi_pa or lo_pb > hi_pb or max(lo_pa, lo_pb) > min(hi_pa, hi_pb):
            return None
        return TrafficSelector(
            self.start if lo_a >= lo_b else other.start,
            self.end if hi_a <= hi_b else other.end,
            p_a or p_b,
            max(lo_pa, lo_pb),
            min(hi_pa, hi_pb),
        )

    def __str__(self) -> str:
        nets = [] if self.empty else self.networks()
        addr = str(nets[0]) if len(nets) == 1 else f"{self.start}..{self.end}"
        if self.protocol == 0 and self.start_port == 0 and self.end_port == 65535:
            return addr
        ports = (
            ""
            if (self.start_port, self.end_port) == (0, 65535)
            else str(self.start_port)
            if self.start_port == self.end_port
            else f"{self.start_port}-{self.end_port}"
        )
        return f"{addr}[{self.protocol}/{ports}]"


def _cached_hash(ts: TrafficSelector) -> int:
    """The value's hash, kept on it: every CHILD_SA's policies are indexed by their
    selector pairs (``pike.sa.policy_users``), a configured selector is in every CHILD_SA
    of its connection, and ``ipaddress`` hashes an address in Python on every call."""
    h = ts._hash
    if not h:
        h = hash((ts.start, ts.end, ts.protocol, ts.start_port, ts.end_port)) or 1
        object.__setattr__(ts, "_hash", h)  # a cache on a frozen value
    return h


TrafficSelector.__hash__ = _cached_hash  # type: ignore[method-assign, assignment]


class TsText:
    """Selectors space-separated, formatted only when a log record is (a handshake's log
    line at a level that is off then costs nothing)."""

    __slots__ = ("_ts",)

    def __init__(self, ts: Sequence[TrafficSelector]) -> None:
        self._ts = ts

    def __str__(self) -> str:
        return " ".join(str(t) for t in self._ts)
