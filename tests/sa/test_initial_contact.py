"""INITIAL_CONTACT (IKEv1: INITIAL-CONTACT) only when no IKE SA with the same identities
is up (strongSwan's rule), both versions in memory: a second connection of a to the same
peer with the same identities must not make b drop the first IKE SA."""

from __future__ import annotations

import pytest

from ikev1.v1pair import engine as v1engine
from ikev1.v1pair import v1conf
from ikev2.pair import Node, conf, transfer
from ikev2.pair import engine as v2engine
from pike.sa.actions import IkeSaDeleted

from .both import B_TS, A, B, pair


def _twice(text: str) -> str:
    """The config with connection gw copied as gw2 (same addresses and identities)."""
    start = text.index("[connections.gw]")
    end = text.index("[secrets")
    block = text[start:end].replace("[connections.gw", "[connections.gw2")
    return text[:end] + block + text[end:]


def _nodes(version: int) -> tuple[Node, Node]:
    if version == 1:
        a_text, b_text = v1conf(A, B), v1conf(B, A, **B_TS)
        return Node(v1engine(_twice(a_text), 1)), Node(v1engine(b_text, 2))  # type: ignore[arg-type]
    a_text = conf(A, B, "branch.example.net", "hq.example.net")
    b_text = conf(B, A, "hq.example.net", "branch.example.net", **B_TS)
    return Node(v2engine(_twice(a_text), 1)), Node(v2engine(b_text, 2))


@pytest.mark.parametrize("version", [1, 2])
def test_no_initial_contact_beside_a_live_sa(version: int) -> None:
    a, b = _nodes(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.engine.initiate("gw2", 1.0, "net")
    transfer(a, b, 1.0)
    assert [sa.state for sa in b.engine.list_sas()] == ["ESTABLISHED", "ESTABLISHED"]
    assert [sa.name for sa in a.engine.list_sas()] == ["gw", "gw2"]
    assert not b.of(IkeSaDeleted)


@pytest.mark.parametrize("version", [1, 2])
def test_initial_contact_after_a_restart(version: int) -> None:
    """a restarts (a new engine, nothing up): its first IKE SA carries INITIAL_CONTACT
    and b drops the one a has forgotten."""
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a2, _ = pair(version)
    a2.engine.initiate("gw", 1.0, "net")
    transfer(a2, b, 1.0)
    assert [d.reason for d in b.of(IkeSaDeleted)] == ["initial_contact"]
    assert len(b.engine.list_sas()) == 1


@pytest.mark.parametrize("version", [1, 2])
def test_contact_follows_the_sa_up_and_gone(version: int) -> None:
    """What a asks before each IKE_AUTH it sends: an SA with these identities is up while
    one is, and not once it is deleted (the engines' peer-identity index kept in step)."""
    a, b = pair(version)
    mine, peer = (2, b"branch.example.net"), (2, b"hq.example.net")  # ID_FQDN both
    if version == 1:
        mine, peer = (1, bytes([192, 0, 2, 1])), (1, bytes([192, 0, 2, 2]))  # ID_IPV4_ADDR
    assert not a.engine.has_contact(mine, peer)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert a.engine.has_contact(mine, peer)
    assert not a.engine.has_contact(mine, (2, b"other.example.net"))
    a.engine.terminate("gw", 5.0)
    transfer(a, b, 5.0)
    assert not a.engine.list_sas()
    assert not a.engine.has_contact(mine, peer)
