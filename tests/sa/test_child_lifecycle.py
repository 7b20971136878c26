"""pike.sa.child_lifecycle: without ESP in our kernel no CHILD_SA is pretended, and the
peer keeps no half of one, in IKEv1 as in IKEv2: a responder refuses with
NO_PROPOSAL_CHOSEN; an initiator deletes it with the peer (IKEv2, whose responder installs
before answering) or answers QM2 with NO_PROPOSAL_CHOSEN instead of QM3 (IKEv1, whose
responder installs on QM3; strongSwan does the same). A removal is logged with the SA's
tag. In memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import Node, transfer
from pike.sa.actions import ChildSaEstablished, ChildSaFailed, DeleteChildSa, InstallChildSa

from .both import pair


def _later(nodes: tuple[Node, Node], until: float) -> None:
    """Run both engines' timers (and what they send each other) up to ``until``."""
    while True:
        due = [t for n in nodes if (t := n.engine.get_timer()) is not None and t <= until]
        if not due:
            return
        t = min(due)
        for n in nodes:
            n.engine.handle_timer(t)
        transfer(nodes[0], nodes[1], t)


@pytest.mark.parametrize("version", [1, 2])
def test_without_esp_the_initiator_leaves_the_peer_no_child(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version, a_esp=False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert a.of(InstallChildSa) == [] and a.of(ChildSaEstablished) == []
    (failed,) = a.of(ChildSaFailed)
    assert isinstance(failed, ChildSaFailed) and failed.reason == "kernel_no_esp"
    said = [r.getMessage() for r in caplog.records if "kernel lacks" in r.getMessage()]
    assert len(said) == 1
    if version == 2:  # the peer had installed it; our Delete took it out again
        assert said[0].endswith(
            ": CHILD_SA net negotiated but kernel lacks ESP (CONFIG_INET_ESP); deleting it"
        )
        (put,) = b.of(InstallChildSa)
        (gone,) = b.of(DeleteChildSa)
        assert isinstance(put, InstallChildSa) and isinstance(gone, DeleteChildSa)
        assert gone.inbound == put.inbound
    else:  # no QM3: the peer never installed it, and ended its Quick Mode on our notify
        assert said[0].endswith(
            ": cannot install CHILD_SA net: kernel lacks ESP (CONFIG_INET_ESP);"
            " answering NO_PROPOSAL_CHOSEN"
        )
        assert b.of(InstallChildSa) == []
        (told,) = b.of(ChildSaFailed)
        assert isinstance(told, ChildSaFailed) and told.reason == "peer_refused"
    _later((a, b), 600.0)  # nothing waits for an answer: no retransmission ends the SA
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.state == "ESTABLISHED" and sa.children == ()
        assert node.engine.ctx.counters.conn("gw").retransmits == 0


@pytest.mark.parametrize("version", [1, 2])
def test_without_esp_the_responder_refuses_the_child(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version, b_esp=False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    for node in (a, b):  # nothing installed on either side
        assert node.of(InstallChildSa) == [] and node.of(ChildSaEstablished) == []
    (refused,) = b.of(ChildSaFailed)
    assert isinstance(refused, ChildSaFailed) and refused.reason == "kernel_no_esp"
    (told,) = a.of(ChildSaFailed)  # the initiator learns it from NO_PROPOSAL_CHOSEN
    assert isinstance(told, ChildSaFailed) and told.child == "net"
    said = [r.getMessage() for r in caplog.records if "kernel lacks" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].endswith(
        ": cannot install CHILD_SA net: kernel lacks ESP (CONFIG_INET_ESP);"
        " answering NO_PROPOSAL_CHOSEN"
    )
    _later((a, b), 600.0)
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.state == "ESTABLISHED" and sa.children == ()
        assert node.engine.ctx.counters.conn("gw").retransmits == 0


@pytest.mark.parametrize("version", [1, 2])
def test_removal_is_logged_alike_with_the_sa_tag(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (sa,) = a.engine.list_sas()
    (child,) = sa.children
    a.engine.terminate("gw", 1.0)
    transfer(a, b, 1.0)
    (gone,) = a.of(DeleteChildSa)
    assert isinstance(gone, DeleteChildSa) and not gone.keep_policies
    said = [r.getMessage() for r in caplog.records if "} removed: " in r.getMessage()]
    tag = f"gw[{sa.unique_id}] {sa.spi_i.hex()}_i {sa.spi_r.hex()}_r"
    assert f"{tag}: CHILD_SA net{{{child.unique_id}}} removed: terminated" in said
