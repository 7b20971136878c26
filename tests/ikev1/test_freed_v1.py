"""A deleted ISAKMP SA is freed by reference counting alone (as IKEv2's IKE SA: see
tests/ikev2/test_freed.py): two engines, fake clock, the collector off while they run."""

from __future__ import annotations

from ikev2.pair import Node, transfer
from lib.freed import (
    assert_freed,
    no_collector,  # noqa: F401  (the autouse fixture: the collector off)
    refs,
)

from .v1pair import make_pair

_PARTS = ("pike.ikev1", "pike.sa")  # what an ISAKMP SA is made of


def up(**kw: str) -> tuple[Node, Node]:
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    return a, b


def test_deleted_by_us_and_by_the_peer() -> None:
    a, b = up()
    gone = refs(a, b)
    assert len(gone) == 2
    a.engine.terminate("gw", 10.0)
    transfer(a, b, 10.0)
    assert not a.engine.sas and not b.engine.sas
    assert_freed(gone, _PARTS, a, b)


def test_dead_peer_given_up() -> None:
    a, _b = up(extra_conn="dpd_delay = 30")
    gone = refs(a)
    now = 0.0
    while a.engine.sas and now < 1000:  # DPD probes that nobody answers
        t = a.engine.get_timer()
        assert t is not None
        now = t
        a.engine.handle_timer(now)
        a.drain()
    assert not a.engine.sas
    assert_freed(gone, _PARTS, a)
