"""close_action (strongSwan's meaning), terminating one CHILD_SA, and terminate --force,
on both IKE versions in memory: what a does when its peer b deletes the CHILD_SA or the
whole IKE SA."""

from __future__ import annotations

import pytest

from ikev2.pair import Node, transfer
from pike.sa.actions import ChildSaEstablished, DeleteChildSa, InstallTrap

from .both import pair

VERSIONS = pytest.mark.parametrize("version", [1, 2])


def _up(version: int, close_action: str) -> tuple[Node, Node]:
    a, b = pair(version, a_child=f'close_action = "{close_action}"')
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert _children(a) == ["INSTALLED"] and _children(b) == ["INSTALLED"]
    a.events.clear()
    return a, b


def _children(node: Node) -> list[str]:
    return [c.state for sa in node.engine.list_sas() for c in sa.children]


def _peer_deletes(b: Node, what: str) -> None:
    if what == "child":
        b.engine.terminate_child("gw", "net", 10.0)
    else:
        b.engine.terminate("gw", 10.0)


@VERSIONS
@pytest.mark.parametrize("what", ["child", "ike"])
def test_close_action_start_brings_it_back(version: int, what: str) -> None:
    a, b = _up(version, "start")
    old = a.engine.list_sas()[0].children[0].spi_in
    _peer_deletes(b, what)
    transfer(b, a, 10.0)
    assert _children(a) == ["INSTALLED"] and _children(b) == ["INSTALLED"]
    assert a.engine.list_sas()[0].children[0].spi_in != old
    assert [e.child for e in a.of(ChildSaEstablished)] == ["net"]
    if what == "child":  # the IKE SA stayed; the CHILD_SA came back inside it
        assert len(a.engine.list_sas()) == 1


@VERSIONS
@pytest.mark.parametrize("what", ["child", "ike"])
def test_close_action_trap_keeps_the_policies(version: int, what: str) -> None:
    a, b = _up(version, "trap")
    _peer_deletes(b, what)
    transfer(b, a, 10.0)
    assert _children(a) == []
    (trap,) = a.of(InstallTrap)
    assert trap.child == "net"
    (gone,) = a.of(DeleteChildSa)
    assert gone.keep_policies  # the trap holds them: the next packet is an ACQUIRE
    reqid = trap.reqid
    a.engine.acquire(reqid, 20.0)
    transfer(a, b, 20.0)
    assert _children(a) == ["INSTALLED"]


@VERSIONS
@pytest.mark.parametrize("what", ["child", "ike"])
def test_close_action_none_lets_it_go(version: int, what: str) -> None:
    a, b = _up(version, "none")
    _peer_deletes(b, what)
    transfer(b, a, 10.0)
    assert _children(a) == [] and _children(b) == []
    assert not a.of(InstallTrap)
    (gone,) = a.of(DeleteChildSa)
    assert not gone.keep_policies


@VERSIONS
def test_close_action_is_not_for_our_own_terminate(version: int) -> None:
    a, b = _up(version, "start")
    a.engine.terminate_child("gw", "net", 10.0)
    transfer(a, b, 10.0)
    assert _children(a) == [] and _children(b) == []
    assert len(a.engine.list_sas()) == 1  # only the CHILD_SA went


@VERSIONS
def test_terminate_child_of_nothing_up_is_a_key_error(version: int) -> None:
    a, _ = pair(version)
    with pytest.raises(KeyError, match="no CHILD_SA up"):
        a.engine.terminate_child("gw", "net", 0.0)
    with pytest.raises(KeyError, match="no child"):
        a.engine.terminate_child("gw", "nope", 0.0)


@VERSIONS
def test_terminate_force_removes_a_stuck_sa_at_once(version: int) -> None:
    """b stops answering; a's terminate waits out the retransmissions (IKEv2), a forced
    one removes the SA at once (IKEv1's one-shot Delete never waits)."""
    a, _b = _up(version, "none")
    a.engine.terminate("gw", 10.0)
    a.drain()  # the Delete goes nowhere
    if version == 2:
        assert [sa.state for sa in a.engine.list_sas()] == ["DELETING"]
    a.engine.terminate("gw", 11.0, force=True)
    assert a.engine.list_sas() == []
    assert a.engine.get_timer() is None  # nothing left to retransmit


@VERSIONS
def test_terminate_force_still_tells_the_peer(version: int) -> None:
    a, b = _up(version, "none")
    a.engine.terminate("gw", 10.0, force=True)
    assert a.engine.list_sas() == []
    transfer(a, b, 10.0)
    assert b.engine.list_sas() == []
