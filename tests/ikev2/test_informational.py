"""INFORMATIONAL: deletes of CHILD and IKE SAs both ways, empty requests answered."""

from __future__ import annotations

from pike.ikev2.tasks.child_delete import ChildDelete
from pike.ikev2.tasks.ike_delete import Informational
from pike.sa.actions import DeleteChildSa, IkeSaDeleted, InstallChildSa
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType

from .pair import Node, make_pair, nothing_in_flight, transfer


def up() -> tuple[Node, Node]:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    return a, b


def test_terminate_by_initiator_deletes_ike_and_child_on_both_sides() -> None:
    a, b = up()
    a.engine.terminate("gw", 5.0)
    assert transfer(a, b, 5.0) == 2
    for node in (a, b):
        assert node.engine.list_sas() == []
        (d,) = node.of(DeleteChildSa)
        (i,) = node.of(InstallChildSa)
        assert isinstance(d, DeleteChildSa) and isinstance(i, InstallChildSa)
        assert d.inbound.spi == i.inbound.spi and d.policies == i.policies
    (ga,) = a.of(IkeSaDeleted)
    (gb,) = b.of(IkeSaDeleted)
    assert isinstance(ga, IkeSaDeleted) and ga.reason == "terminated"
    assert isinstance(gb, IkeSaDeleted) and gb.reason == "peer_deleted"
    assert a.engine.get_timer() is None and b.engine.get_timer() is None


def test_terminate_by_responder() -> None:
    a, b = up()
    b.engine.terminate("gw", 5.0)
    transfer(b, a, 5.0)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []
    req = decode_message(b.outbox[-1].data)
    assert req.exchange == ExchangeType.INFORMATIONAL and req.is_initiator is False


def test_child_delete_both_ways() -> None:
    for deleter in ("a", "b"):
        a, b = up()
        node = a if deleter == "a" else b
        other = b if deleter == "a" else a
        sa = next(iter(node.engine.sas.values()))
        sa.tasks.queue(ChildDelete(sa, True, sa.children[0]))
        sa.tasks.initiate(3.0)
        transfer(node, other, 3.0)
        for n in (a, b):
            (info,) = n.engine.list_sas()
            assert info.state == "ESTABLISHED" and info.children == ()
            (d,) = n.of(DeleteChildSa)
            assert isinstance(d, DeleteChildSa)


def test_empty_informational_is_answered_empty() -> None:
    a, b = up()
    sa = next(iter(a.engine.sas.values()))
    sa.tasks.queue(Informational(sa, True))
    sa.tasks.initiate(7.0)
    assert transfer(a, b, 7.0) == 2
    resp = b.outbox[-1]
    # The answer is an SK payload with nothing inside: header 28 + SK header 4 + IV/ICV.
    assert len(resp.data) < 80
    assert a.sa().state == "ESTABLISHED" and nothing_in_flight(a)


def test_terminate_while_connecting_needs_no_messages() -> None:
    a, _ = make_pair()
    a.engine.initiate("gw", 0.0)
    a.drain()
    a.engine.terminate("gw", 1.0)
    assert a.drain() == [] and a.engine.list_sas() == []
    assert a.engine.get_timer() is None
