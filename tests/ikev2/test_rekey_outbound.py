"""CHILD_SA rekey, responder side: the new outbound SA goes into the kernel only when the
initiator deletes the old CHILD_SA (found against strongSwan under a 200 datagram/s stream:
the initiator installs its new inbound SA only once our response is in, so sending on the
new SA at once lost ~40 ms of traffic)."""

from __future__ import annotations

from pike.sa.actions import DeleteChildSa, InstallChildSa, InstallOutboundSa, SendDatagram

from .pair import deliver, transfer
from .test_lifecycle import cross_child_rekeys, deletes, installs, up


def test_rekey_responder_defers_outbound_until_old_child_deleted() -> None:
    a, b = up()
    (old_b,) = installs(b)
    assert not old_b.defer_outbound
    a.engine.rekey("gw", 10.0, "net")
    # CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } -->
    (resp,) = deliver(a.drain(), b, 10.0)
    new_b = installs(b)[-1]
    assert new_b.defer_outbound  # inbound now; outbound after the delete
    assert not [e for e in b.events if isinstance(e, InstallOutboundSa)]
    # <-- { SA, Nr, TSi, TSr }: the initiator installs both directions at once
    (delete_req,) = deliver([resp], a, 10.0)
    assert not installs(a)[-1].defer_outbound
    # INFORMATIONAL { D(ESP old) } -->: new outbound in, then the old pair out
    transfer(a, b, 10.0, in_flight=[delete_req])
    order = [e for e in b.events if isinstance(e, InstallOutboundSa | DeleteChildSa)]
    assert [type(e) for e in order] == [InstallOutboundSa, DeleteChildSa], order
    out, gone = order
    assert isinstance(out, InstallOutboundSa) and isinstance(gone, DeleteChildSa)
    assert out.outbound == new_b.outbound and out.unique_id == new_b.unique_id
    assert gone.inbound.spi == old_b.inbound.spi and gone.keep_policies
    assert len(deletes(a)) == 1
    (child,) = b.sa().children
    assert child.spi_out == new_b.outbound.spi and child.state == "INSTALLED"


def test_rekey_collision_winner_never_installs_the_redundant_outbound() -> None:
    a, b = up()
    cross_child_rekeys(a, b, 5.0)
    for node in (a, b):
        (child,) = [c for c in node.sa().children if c.state == "INSTALLED"]
        live = [i for i in installs(node) if i.unique_id == child.unique_id]
        deferred_out = [
            e
            for e in node.events
            if isinstance(e, InstallOutboundSa) and e.unique_id == child.unique_id
        ]
        # the surviving CHILD_SA's outbound SA is in the kernel exactly once
        assert len(live) == 1 and live[0].defer_outbound == bool(deferred_out), node.events
        removed = {d.unique_id for d in deletes(node)}
        assert not [
            e for e in node.events if isinstance(e, InstallOutboundSa) and e.unique_id in removed
        ], node.events
    assert isinstance(installs(a)[0], InstallChildSa)


def test_rekey_responder_leaves_the_old_sa_before_answering_the_delete() -> None:
    """Found piked <-> piked under a stream in UML: the responder answered the DELETE and
    only then removed the old SAs; the initiator, given the answer, removed its old inbound
    SA while the responder still sent on the old outbound one (XfrmInNoStates, 1 datagram)."""
    a, b = up()
    a.engine.rekey("gw", 10.0, "net")
    (resp,) = deliver(a.drain(), b, 10.0)
    (delete_req,) = deliver([resp], a, 10.0)
    b.engine.receive_datagram(delete_req.data, delete_req.src, delete_req.dst, 10.0)
    actions = []
    while (act := b.engine.next_action()) is not None:
        actions.append(act)
    kinds = [
        type(x) for x in actions if isinstance(x, InstallOutboundSa | DeleteChildSa | SendDatagram)
    ]
    assert kinds == [InstallOutboundSa, DeleteChildSa, SendDatagram], actions


def test_mapping_change_keeps_the_rekey_successor_outbound_deferred() -> None:
    """A NAT mapping change between the rekey and the DELETE moves the new CHILD_SA with
    its outbound SA still deferred; the DELETE then installs it, at the new port."""
    from .pair import conf, make_pair
    from .test_ondemand import B_TS, A, B

    a, b = make_pair(conf(*A, extra_conn="encap = true"), conf(*B, **B_TS))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    a.engine.rekey("gw", 10.0, "net")
    (resp,) = deliver(a.drain(), b, 10.0)
    new_b = installs(b)[-1]
    (delete_req,) = deliver([resp], a, 10.0)
    # the DELETE arrives through a new NAT mapping
    b.engine.receive_datagram(delete_req.data, ("192.0.2.1", 31000), delete_req.dst, 10.0)
    b.drain()
    moved = [i for i in installs(b) if i.unique_id == new_b.unique_id][-1]
    assert moved is not new_b and moved.defer_outbound
    (out,) = [e for e in b.events if isinstance(e, InstallOutboundSa)]
    assert out.outbound.encap is not None and out.outbound.encap.dport == 31000
