"""pike.sa.child_lifecycle: a CHILD_SA our kernel cannot take (no ESP) fails with one log
line (IKEv2 deletes it with the peer), and a removal is logged with the SA's tag, in IKEv1
as in IKEv2; in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import transfer
from pike.sa.actions import ChildSaEstablished, ChildSaFailed, DeleteChildSa, InstallChildSa

from .both import pair


@pytest.mark.parametrize("version", [1, 2])
def test_without_esp_the_child_fails_alike(version: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version, a_esp=False)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert a.of(InstallChildSa) == [] and a.of(ChildSaEstablished) == []
    (failed,) = a.of(ChildSaFailed)
    assert isinstance(failed, ChildSaFailed) and failed.reason == "kernel_no_esp"
    said = [r.getMessage() for r in caplog.records if "kernel lacks" in r.getMessage()]
    assert len(said) == 1
    assert said[0].endswith(": CHILD_SA net negotiated but kernel lacks ESP (CONFIG_INET_ESP)")
    (put,) = b.of(InstallChildSa)  # the peer had installed it
    assert isinstance(put, InstallChildSa)
    if version == 2:  # our Delete took it out again (IKEv1: not yet, see Ikev1Engine)
        (gone,) = b.of(DeleteChildSa)
        assert isinstance(gone, DeleteChildSa) and gone.inbound == put.inbound
        assert b.engine.list_sas()[0].children == ()
    else:
        assert b.of(DeleteChildSa) == [] and len(b.engine.list_sas()[0].children) == 1
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.state == "ESTABLISHED"


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
