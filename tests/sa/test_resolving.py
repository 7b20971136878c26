"""remote_addrs as a DNS name, both versions in memory: the engine asks (ResolveRequest),
the test answers as the runtime does (``resolved``); each new attempt asks again."""

from __future__ import annotations

import pytest

from ikev2.pair import transfer
from pike.sa.actions import ResolveRequest

from .both import B, pair

VERSIONS = pytest.mark.parametrize("version", [1, 2])


@VERSIONS
def test_initiation_waits_for_the_name_then_goes_to_its_address(version: int) -> None:
    a, b = pair(version, a_remote="hq.example.net")
    a.engine.initiate("gw", 0.0, "net")
    assert a.drain() == []  # nothing sent before the name is resolved
    assert a.of(ResolveRequest) == [ResolveRequest("gw", "hq.example.net", 4)]
    a.engine.resolved("gw", (B, "192.0.2.99"), 0.5)
    transfer(a, b, 0.5)
    (sa,) = a.engine.list_sas()
    assert sa.state == "ESTABLISHED" and sa.remote[0] == B
    assert [c.state for c in sa.children] == ["INSTALLED"]


@VERSIONS
def test_a_failed_lookup_is_an_attempt_and_retries_resolve_again(version: int) -> None:
    """start_action = start (keyingtries 0): a failed lookup retries after the backoff,
    with a new lookup."""
    a, b = pair(version, a_remote="hq.example.net", a_start="start")
    a.engine.start(0.0)
    a.engine.resolved("gw", (), 0.1)  # NXDOMAIN, or no network yet
    assert a.engine.list_sas() == [] and a.engine.get_timer() == pytest.approx(10.1)
    a.drain()
    a.engine.handle_timer(10.1)
    a.drain()
    assert len(a.of(ResolveRequest)) == 2  # asked again
    a.engine.resolved("gw", (B,), 10.2)
    transfer(a, b, 10.2)
    assert a.engine.list_sas()[0].state == "ESTABLISHED"


@VERSIONS
def test_terminate_forgets_a_lookup_under_way(version: int) -> None:
    a, _ = pair(version, a_remote="hq.example.net")
    a.engine.initiate("gw", 0.0, "net")
    a.engine.terminate("gw", 1.0)
    a.engine.resolved("gw", (B,), 2.0)
    assert a.engine.list_sas() == [] and a.drain() == []
