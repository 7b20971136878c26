"""Traffic selector narrowing for a CHILD_SA (RFC 7296 §2.9), pure: which child config
takes the initiator's TSi/TSr, and what of them it allows. strongSwan keeps this apart
from proposal selection and installation too (child_cfg's ``select_traffic``).

A hub narrows the same offer against the same children over and over (every road warrior
asks for 0.0.0.0/0, a load generator for its one address): ``match_offer`` remembers the
answers, keyed on the offer's values, in a bounded memo."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from ipaddress import ip_address
from operator import attrgetter
from typing import NamedTuple

from pike.ikev2.memo import ByIdentity
from pike.policy.config import ChildConfig
from pike.policy.ts import TrafficSelector
from pike.wire.constants import TsType
from pike.wire.payloads import TrafficSelectorWire, TsiPayload, TsrPayload

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_TS_IPV4_ADDR_RANGE = TsType.TS_IPV4_ADDR_RANGE
_TS_IPV6_ADDR_RANGE = TsType.TS_IPV6_ADDR_RANGE

Selectors = tuple[TrafficSelector, ...]


def ts_to_wire(ts: TrafficSelector) -> TrafficSelectorWire:
    kind = _TS_IPV4_ADDR_RANGE if ts.version == 4 else _TS_IPV6_ADDR_RANGE
    return TrafficSelectorWire(kind, ts.protocol, ts.start_port, ts.end_port, ts.start, ts.end)


# TSi/TSr payloads of our selectors (immutable: messages share them), made once per tuple:
# a CHILD_SA's selectors are mostly the config's tuple or one the narrowing memo gives
# every handshake.
def _tsi(ts: Selectors) -> TsiPayload:
    return TsiPayload(tuple(map(ts_to_wire, ts)))


def _tsr(ts: Selectors) -> TsrPayload:
    return TsrPayload(tuple(map(ts_to_wire, ts)))


tsi_payload: ByIdentity[Selectors, TsiPayload] = ByIdentity(_tsi)
tsr_payload: ByIdentity[Selectors, TsrPayload] = ByIdentity(_tsr)


def ts_from_wire(w: TrafficSelectorWire) -> TrafficSelector:
    return TrafficSelector(w.start_addr, w.end_addr, w.ip_protocol, w.start_port, w.end_port)


def narrow(theirs: Sequence[TrafficSelector], ours: Sequence[TrafficSelector]) -> Selectors:
    """Every part of the peer's selectors that ours allow (RFC 7296 §2.9)."""
    if len(ours) == 1 and len(theirs) == 1:  # the usual case: one selector each
        got = ours[0].intersect(theirs[0])
        if got is None:
            return ()
        return tuple(ours) if got is ours[0] else (got,)  # ours as is: shared, as below
    out: list[TrafficSelector] = []
    for o in ours:
        for t in theirs:
            got = o.intersect(t)
            if got is not None and got not in out:
                out.append(got)
    if len(out) == len(ours) and all(map(operator.is_, out, ours)):
        # all of ours, as is (the usual case): a CHILD_SA shares the config's tuple
        return tuple(ours)
    return tuple(out)


def dynamic(ts: Selectors, addr: str) -> Selectors:
    """No selectors configured means "my own address" (strongSwan's ``dynamic``)."""
    return ts or (TrafficSelector.host(ip_address(addr)),)


class ChildMatch(NamedTuple):
    config: ChildConfig
    local: Selectors  # narrowed TSr: our side
    remote: Selectors  # narrowed TSi: the initiator's side


def match_child(
    candidates: Iterable[ChildConfig],
    theirs_i: Sequence[TrafficSelector],
    theirs_r: Sequence[TrafficSelector],
    local_addr: str,
    remote_addr: str,
) -> ChildMatch | None:
    """The first child config that leaves something of both TSi and TSr, narrowed."""
    for cfg in candidates:
        remote = narrow(theirs_i, dynamic(cfg.remote_ts, remote_addr))
        local = narrow(theirs_r, dynamic(cfg.local_ts, local_addr))
        if remote and local:
            return ChildMatch(cfg, local, remote)
    return None


# An offered selector as plain values (ints: the addresses' own numbers), so that the
# memo's key hashes and compares in C (an ipaddress object hashes in Python).
_WIRE_VALUES = attrgetter(
    "ts_type", "ip_protocol", "start_port", "end_port", "start_addr._ip", "end_addr._ip"
)
# Bound of the memo: offers are the peers' to choose, so a flood of distinct ones only
# empties it (and costs the narrowing it would have saved).
MATCHES_MAX = 256
# (id of the candidates, TSi, TSr, our address, the peer's) -> (the candidates, the answer):
# the entry holds the candidates, so their id is not reused while it lives.
_matches: dict[
    tuple[int, tuple[object, ...], tuple[object, ...], str, str],
    tuple[Sequence[ChildConfig], ChildMatch | None],
] = {}


def match_offer(
    candidates: Sequence[ChildConfig],
    tsi: Sequence[TrafficSelectorWire],
    tsr: Sequence[TrafficSelectorWire],
    local_addr: str,
    remote_addr: str,
) -> ChildMatch | None:
    """``match_child`` of the selectors as received (TSi, TSr payloads' selectors), for
    ``candidates`` held by the config (the same object for every handshake), remembered."""
    key = (
        id(candidates),
        tuple(map(_WIRE_VALUES, tsi)),
        tuple(map(_WIRE_VALUES, tsr)),
        local_addr,
        remote_addr,
    )
    known = _matches.get(key)
    if known is not None and known[0] is candidates:
        return known[1]
    got = match_child(
        candidates, list(map(ts_from_wire, tsi)), list(map(ts_from_wire, tsr)), *key[3:]
    )
    if len(_matches) >= MATCHES_MAX:
        _matches.clear()
    _matches[key] = (candidates, got)
    return got
