"""Is a deleted SA freed by reference counting alone? Shared by the IKEv2 and IKEv1
tests (tests/ikev2/test_freed.py, tests/ikev1/test_freed_v1.py): the collector is off
while a test runs (``no_collector``, imported as an autouse fixture), so an SA that only
a cycle keeps stays alive and ``assert_freed`` sees it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

import pytest


class _Node(Protocol):
    engine: Any
    events: list[Any]
    outbox: list[Any]


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def refs(*nodes: _Node) -> list[weakref.ref[Any]]:
    """Weak references to every SA the nodes' engines hold now."""
    return [weakref.ref(sa) for n in nodes for sa in n.engine.sas.values()]


def assert_freed(gone: list[weakref.ref[Any]], parts: tuple[str, ...], *nodes: _Node) -> None:
    """The SAs are freed now, and the collector finds no garbage from the modules
    ``parts`` (what an SA is made of: the runner's own garbage, e.g. captured log
    records, is not)."""
    for n in nodes:  # what the test itself keeps of the exchange
        n.events.clear()
        n.outbox.clear()
    alive = [r() is not None for r in gone]
    assert alive == [False] * len(gone)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith(parts)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == []
