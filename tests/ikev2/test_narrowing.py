"""The responder's CHILD_SA choice as pure functions: narrowing (RFC 7296 §2.9) picks the
child config and what of the initiator's selectors it allows; proposal selection picks
the ESP transforms."""

from __future__ import annotations

import pytest

from pike.crypto.ids import TransformType
from pike.ikev2 import narrowing
from pike.ikev2.child_proposal import choose_esp, without_ke
from pike.ikev2.narrowing import (
    ChildMatch,
    match_child,
    match_offer,
    narrow,
    ts_from_wire,
    ts_to_wire,
    tsi_payload,
    tsr_payload,
)
from pike.ikev2.negotiate import to_wire
from pike.policy.loader import load_config_text
from pike.policy.ts import TrafficSelector
from pike.wire.payloads import TrafficSelectorWire, TsiPayload, TsrPayload

from .pair import conf

A, B = "192.0.2.1", "192.0.2.2"
CHILD = load_config_text(conf(A, B, "a.example", "b.example")).connections["gw"].children[0]


def ts(*cidrs: str) -> list[TrafficSelector]:
    return [TrafficSelector.from_cidr(c) for c in cidrs]


def test_narrowed_to_what_our_config_allows() -> None:
    # ours: local 10.1.0.0/24, remote 10.2.0.0/24; the initiator offers wider and a host
    got = match_child([CHILD], ts("10.2.0.7/32", "192.168.0.0/16"), ts("10.0.0.0/8"), A, B)
    assert got == ChildMatch(CHILD, tuple(ts("10.1.0.0/24")), tuple(ts("10.2.0.7/32")))


def test_no_config_takes_selectors_outside_ours() -> None:
    assert match_child([CHILD], ts("10.9.0.0/24"), ts("10.1.0.0/24"), A, B) is None
    assert match_child([], ts("10.2.0.0/24"), ts("10.1.0.0/24"), A, B) is None


def test_esp_proposal_is_ours_when_offered_else_none() -> None:
    ours = CHILD.esp_proposals
    offered = to_wire(ours, bytes.fromhex("c0000001"))
    chosen = choose_esp(ours, offered, None)
    assert chosen is not None and chosen.spi == bytes.fromhex("c0000001")
    assert choose_esp(ours, to_wire(ours, b"\x01"), None) is None  # not a 4-octet SPI


def test_narrowing_to_all_of_ours_shares_our_tuple() -> None:
    ours = (TrafficSelector.from_cidr("10.1.0.0/24"), TrafficSelector.from_cidr("10.3.0.0/24"))
    theirs = [TrafficSelector.from_cidr("10.0.0.0/8")]
    assert narrow(theirs, ours) is ours
    inner = TrafficSelector.from_cidr("10.1.0.0/25")
    assert narrow([inner], ours) == (inner,)
    assert narrow([TrafficSelector.from_cidr("10.3.0.0/24")], ours) == (ours[1],)


def wire(*cidrs: str) -> tuple[TrafficSelectorWire, ...]:
    return tuple(ts_to_wire(t) for t in ts(*cidrs))


def test_offers_narrowed_once_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same offer against the same children is narrowed once; another offer, other
    addresses or other children (even equal ones) are narrowed anew."""
    monkeypatch.setattr(narrowing, "_matches", {})
    calls: list[object] = []
    real = narrowing.match_child

    def counted(*args: object) -> ChildMatch | None:
        calls.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(narrowing, "match_child", counted)
    children = (CHILD,)
    tsi, tsr = wire("10.2.0.7/32", "192.168.0.0/16"), wire("10.0.0.0/8")
    want = ChildMatch(CHILD, tuple(ts("10.1.0.0/24")), tuple(ts("10.2.0.7/32")))
    assert match_offer(children, tsi, tsr, A, B) == want
    assert match_offer(children, wire("10.2.0.7/32", "192.168.0.0/16"), tsr, A, B) == want
    assert len(calls) == 1
    assert match_offer(children, wire("10.9.0.0/24"), tsr, A, B) is None  # another offer
    assert match_offer(children, wire("10.9.0.0/24"), tsr, A, B) is None  # (remembered)
    assert len(calls) == 2
    match_offer(children, tsi, tsr, A, "192.0.2.3")  # another peer address
    match_offer((CHILD,), tsi, tsr, A, B)  # equal children, another tuple
    assert len(calls) == 4


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(narrowing, "_matches", {})
    children = (CHILD,)
    for i in range(narrowing.MATCHES_MAX * 2 + 3):  # a flood of distinct offers
        match_offer(children, wire(f"10.2.{i // 256}.{i % 256}/32"), wire("10.1.0.0/24"), A, B)
        assert len(narrowing._matches) <= narrowing.MATCHES_MAX


def test_ts_payloads_made_once_per_selectors() -> None:
    """The same tuple of selectors gives the same (immutable) payload of each kind; an
    equal tuple another, equal one."""
    ours = tuple(ts("10.1.0.0/24", "10.3.0.0/24"))
    tsi = tsi_payload(ours)
    assert type(tsi) is TsiPayload and tuple(map(ts_from_wire, tsi.selectors)) == ours
    assert tsi_payload(ours) is tsi
    tsr = tsr_payload(ours)
    assert type(tsr) is TsrPayload and tsr.selectors == tsi.selectors
    assert tsi_payload(tuple(ours)) is tsi  # (tuple() of a tuple is that tuple)
    other = tsi_payload(tuple(ts("10.1.0.0/24", "10.3.0.0/24")))
    assert other == tsi and other is not tsi


def test_esp_proposals_without_ke_made_once() -> None:
    """IKE_AUTH's ESP proposals (no PFS group) once per config tuple."""
    pfs = (
        load_config_text(
            conf(A, B, "a.example", "b.example", esp='"aes128gcm16-modp2048", "aes256gcm16"')
        )
        .connections["gw"]
        .children[0]
        .esp_proposals
    )
    got = without_ke(pfs)
    assert pfs[0].of(TransformType.KE)  # (modp2048)
    assert [s.of(TransformType.KE) for s in got] == [(), ()]
    assert without_ke(pfs) is got
    assert without_ke(tuple(list(pfs))) == got  # an equal tuple: made anew, equal
