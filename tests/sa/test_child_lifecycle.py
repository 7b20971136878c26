"""pike.sa.child_lifecycle: a CHILD_SA our kernel cannot take (no ESP) is deleted with the
peer when we initiated it and refused with NO_PROPOSAL_CHOSEN when the peer did, with the
same log lines, and a removal is logged with the SA's tag, in IKEv1 as in IKEv2; in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import transfer
from pike.sa.actions import ChildSaEstablished, ChildSaFailed, DeleteChildSa, InstallChildSa

from .both import pair


@pytest.mark.parametrize("version", [1, 2])
def test_without_esp_the_child_is_deleted_with_the_peer(
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
    assert said[0].endswith(
        ": CHILD_SA net negotiated but kernel lacks ESP (CONFIG_INET_ESP); deleting it"
    )
    # the peer had installed it; our Delete took it out again, the IKE SA stays
    (put,) = b.of(InstallChildSa)
    (gone,) = b.of(DeleteChildSa)
    assert isinstance(put, InstallChildSa) and isinstance(gone, DeleteChildSa)
    assert gone.inbound == put.inbound
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.state == "ESTABLISHED" and sa.children == ()


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
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.state == "ESTABLISHED" and sa.children == ()


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
