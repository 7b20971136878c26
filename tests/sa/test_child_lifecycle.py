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
from pike.sa import child_lifecycle
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


@pytest.mark.parametrize("version", [1, 2])
def test_hard_expiry_long_before_life_time_makes_the_child_again(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel judges time lifetimes on the wall clock: stepped forward, it ends SAs
    whose life_time (monotonic, ours) has an hour left. The CHILD_SA is made again (a
    rekey: CREATE_CHILD_SA, Quick Mode), once for both directions' expiries, with one log
    line in the same words for both versions, instead of the tunnel going down."""
    caplog.set_level(logging.INFO)
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (old,) = a.sa().children
    assert old.expire_at is not None and old.expire_at - 100.0 > 3000
    a.engine.child_expired(old.spi_out, True, 100.0)
    a.engine.child_expired(old.spi_in, True, 100.0)  # the other direction: no second one
    transfer(a, b, 100.0)
    assert len(a.of(InstallChildSa)) == 2 and len(a.of(DeleteChildSa)) == 1
    (now,) = a.sa().children
    assert now.state == "INSTALLED" and now.spi_in != old.spi_in
    (theirs,) = b.sa().children
    assert theirs.spi_out == now.spi_in and theirs.state == "INSTALLED"
    assert a.engine.ctx.counters.conn("gw").child_rekeys == 1
    said = [r.getMessage() for r in caplog.records if "before its life_time" in r.getMessage()]
    left = int(old.expire_at - 100.0)
    assert said == [
        f"{_tag(a)}: CHILD_SA net{{{old.unique_id}}} removed by the "
        f"kernel {left} s before its life_time (wall clock stepped forward?): creating it again"
    ]


@pytest.mark.parametrize("version", [1, 2])
def test_hard_expiry_at_life_time_deletes_the_child(version: int) -> None:
    """Within EARLY_MARGIN of its life_time a hard expiry is the kernel doing its job: the
    CHILD_SA goes (with the peer), the IKE/ISAKMP SA stays."""
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (old,) = a.sa().children
    assert old.expire_at is not None
    at = old.expire_at - child_lifecycle.EARLY_MARGIN + 1
    a.engine.child_expired(old.spi_out, True, at)
    transfer(a, b, at)
    assert a.sa().children == () and b.sa().children == ()
    assert a.sa().state == "ESTABLISHED" and len(a.of(InstallChildSa)) == 1
    assert a.engine.ctx.counters.conn("gw").child_rekeys == 0


def _tag(n: Node) -> str:
    sa = n.sa()
    return f"gw[{sa.unique_id}] {sa.spi_i.hex()}_i {sa.spi_r.hex()}_r"
