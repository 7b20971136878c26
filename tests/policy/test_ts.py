"""Traffic selectors as prefixes and as log text (pike.policy.ts)."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from pike.policy.ts import TrafficSelector, TsText


def ts(start: str, end: str, protocol: int = 0) -> TrafficSelector:
    return TrafficSelector(ipaddress.ip_address(start), ipaddress.ip_address(end), protocol)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("10.0.0.0", "10.0.0.255"),  # one prefix
        ("10.0.0.7", "10.0.0.7"),  # a host
        ("0.0.0.0", "255.255.255.255"),
        ("10.0.0.128", "10.0.1.127"),  # aligned size, unaligned start: two prefixes
        ("10.0.0.1", "10.0.0.6"),  # not a power of two
        ("::", "::"),
        ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8::", "2001:db8::ffff"),
        ("2001:db8::1", "2001:db8::ff00"),
    ],
)
def test_networks_are_the_smallest_prefix_list(start: str, end: str) -> None:
    t = ts(start, end)
    want = list(ipaddress.summarize_address_range(t.start, t.end))
    assert t.networks() == want


def test_a_range_of_two_families_is_never_one_prefix() -> None:
    # 0.0.0.0 .. ::ffff spans an aligned power of two as integers, but is no network
    t = ts("0.0.0.0", "::ffff")
    assert t.empty
    with pytest.raises(TypeError):
        t.networks()
    assert str(t) == "0.0.0.0..::ffff"


def test_ts_text_formats_when_the_record_is_formatted(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    class Counted(TrafficSelector):
        __slots__ = ()

        def __str__(self) -> str:
            calls.append(1)
            return TrafficSelector.__str__(self)

    one = Counted(ipaddress.ip_address("10.1.0.0"), ipaddress.ip_address("10.1.0.255"))
    two = ts("192.0.2.1", "192.0.2.1", 17)
    log = logging.getLogger("pike.test_ts")
    with caplog.at_level(logging.WARNING, logger="pike.test_ts"):
        log.info("TS %s", TsText((one, two)))
    assert calls == []  # level off: nothing formatted
    with caplog.at_level(logging.INFO, logger="pike.test_ts"):
        log.info("TS %s", TsText((one, two)))
    assert calls  # formatted (once per handler that emits it)
    assert caplog.messages == ["TS 10.1.0.0/24 192.0.2.1/32[17/]"]


def test_intersect_keeps_our_selector_when_both_are_equal() -> None:
    ours = TrafficSelector.from_cidr("10.1.0.0/24")
    theirs = TrafficSelector.from_cidr("10.1.0.0/24")
    assert ours.intersect(theirs) is ours  # a CHILD_SA holds the config's, not a copy
    inner = TrafficSelector.from_cidr("10.1.0.0/25")
    assert ours.intersect(inner) is inner and inner.intersect(ours) is inner
    wider = TrafficSelector.from_cidr("10.0.0.0/8")
    assert ours.intersect(wider) is ours
    part = TrafficSelector.from_cidr("10.1.0.128/25", 6)
    assert ours.intersect(part) is part
    assert ours.intersect(TrafficSelector.from_cidr("10.2.0.0/24")) is None
