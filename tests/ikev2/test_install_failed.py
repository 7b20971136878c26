"""A CHILD_SA the kernel refused (``child_install_failed``) is deleted with the peer; its
IKE SA is found by the refused SA's inbound SPI (a hub does not walk its SAs per refusal)
and, should the SPI name no SA, by a walk as before. Two engines, fake clock."""

from __future__ import annotations

import pytest

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


@pytest.mark.parametrize("by_spi", [True, False])
def test_refused_child_is_deleted_with_the_peer(by_spi: bool) -> None:
    a_text = conf(*A)
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (sa,) = b.engine.sas.values()
    (child,) = sa.children
    spi = child.spi_in if by_spi else 0x0BADBAD0  # no SA has it: the walk finds it
    b.engine.child_install_failed(child.unique_id, "kernel refused", 1.0, spi)
    assert child.installed_at is None  # nothing of it is in the kernel
    assert transfer(b, a, 1.0) == 2  # b's delete and a's answer
    (peer,) = a.engine.sas.values()
    assert sa.children == [] and peer.children == []
    assert sa.state.value == peer.state.value == "ESTABLISHED"


def test_an_unknown_child_changes_nothing() -> None:
    a, b = make_pair(conf(*A), conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (sa,) = b.engine.sas.values()
    (child,) = sa.children
    b.engine.child_install_failed(child.unique_id + 1000, "kernel refused", 1.0, child.spi_in)
    assert sa.children == [child] and child.installed_at is not None
    assert b.drain() == []
