"""A deleted ISAKMP SA is freed by reference counting alone (as IKEv2's IKE SA: see
tests/ikev2/test_freed.py): two engines, fake clock, the collector off while they run."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ikev2.pair import Node, transfer

from .v1pair import make_pair


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def refs(*nodes: Node) -> list[weakref.ref[object]]:
    return [weakref.ref(sa) for n in nodes for sa in n.engine.sas.values()]


def assert_freed(gone: list[weakref.ref[object]], *nodes: Node) -> None:
    for n in nodes:  # what the test itself keeps of the exchange
        n.events.clear()
        n.outbox.clear()
    alive = [r() is not None for r in gone]
    assert alive == [False] * len(gone)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith(("pike.ikev1", "pike.sa"))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == []


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
    assert_freed(gone, a, b)


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
    assert_freed(gone, a)
