"""Traffic selectors as prefixes and as log text (pike.policy.ts)."""

from __future__ import annotations

import ipaddress
import logging
import pickle

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


def test_intersect_of_overlapping_ranges_ports_and_protocols() -> None:
    """Neither within the other: the shared part, a new value; nothing shared: None."""
    a = TrafficSelector(ipaddress.ip_address("10.0.0.0"), ipaddress.ip_address("10.0.0.200"))
    b = TrafficSelector(ipaddress.ip_address("10.0.0.100"), ipaddress.ip_address("10.0.1.0"), 6)
    want = TrafficSelector(
        ipaddress.ip_address("10.0.0.100"), ipaddress.ip_address("10.0.0.200"), 6
    )
    assert a.intersect(b) == want and b.intersect(a) == want
    # same addresses, the ports of one within the other's: that one
    web = TrafficSelector(a.start, a.end, 6, 80, 80)
    assert a.intersect(web) is web and web.intersect(a) is web
    assert web.intersect(TrafficSelector(a.start, a.end, 17, 80, 80)) is None  # protocols
    assert web.intersect(TrafficSelector(a.start, a.end, 6, 81, 90)) is None  # ports
    six = TrafficSelector(ipaddress.ip_address("::"), ipaddress.ip_address("::ffff"))
    assert a.intersect(six) is None and six.intersect(a) is None  # two families


def test_a_selector_hashes_by_value_and_pickles_without_its_hash() -> None:
    """The hash is kept on the value once asked (policy_users hashes the configured
    selectors of every CHILD_SA); equal values hash alike, and a pickle (the config
    cache, read by another process) carries the value only."""
    one = TrafficSelector.from_cidr("10.1.0.0/24", 6, 443)
    two = TrafficSelector.from_cidr("10.1.0.0/24", 6, 443)
    assert one == two and hash(one) == hash(two) == hash(one)
    assert len({one, two, TrafficSelector.from_cidr("10.1.0.0/24")}) == 2
    back = pickle.loads(pickle.dumps(one))
    assert back == one and back._hash == 0 and hash(back) == hash(one)
    assert repr(one) == repr(two) and "_hash" not in repr(one)
