"""The IKEv1 engine's indexes that keep a hub's per-event work flat (in memory): the
ISAKMP SA by its IPsec SAs' SPIs (kernel expiries and counters name an SPI) and the
established SAs by the peer's identity (INITIAL-CONTACT), both kept in step with the
SAs as they come, rekey and go."""

from __future__ import annotations

from ikev2.pair import Node, transfer
from pike.ikev1.engine import Ikev1Engine
from pike.ikev1.sa_table import SaTable
from pike.sa.state import ChildState
from sa.both import pair


def table_of(node: Node) -> SaTable:
    engine: object = node.engine
    assert isinstance(engine, Ikev1Engine)
    return engine.table


def test_spis_follow_install_rekey_and_delete() -> None:
    a, b = pair(1)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    table = table_of(a)
    (isakmp,) = a.engine.sas.values()
    (child,) = isakmp.children
    old = (child.spi_in, child.spi_out)
    assert all(table.by_spi(s) is isakmp for s in old)
    # a soft expiry of the inbound SA (named by its SPI) rekeys it
    a.engine.child_expired(child.spi_in, False, 100.0)
    transfer(a, b, 100.0)
    (new,) = [c for c in isakmp.children if c.state == ChildState.INSTALLED]
    assert new is not child and child.state == ChildState.DELETED
    assert all(table.by_spi(s) is isakmp for s in (new.spi_in, new.spi_out))
    assert all(table.by_spi(s) is None for s in old)
    a.engine.terminate("gw", 200.0)
    transfer(a, b, 200.0)
    assert table.by_spi(new.spi_in) is None and table.by_spi(new.spi_out) is None
    assert table.established_with((1, bytes([192, 0, 2, 2]))) == []


def test_established_by_peer_identity() -> None:
    a, b = pair(1)
    peer = (1, bytes([192, 0, 2, 2]))  # ID_IPV4_ADDR of b
    assert table_of(a).established_with(peer) == []
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (isakmp,) = a.engine.sas.values()
    assert table_of(a).established_with(peer) == [isakmp]
    assert table_of(a).established_with((1, bytes([192, 0, 2, 9]))) == []
