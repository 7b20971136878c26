"""Trap policies and ACQUIRE, kernel expire events, NAT-T keepalives, INITIAL_CONTACT,
NAT mapping changes — two engines, fake clock."""

from __future__ import annotations

from typing import Any

from pike.sa.actions import DeleteChildSa, IkeSaDeleted, InstallChildSa, InstallTrap, SendKeepalive
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType

from .pair import Node, conf, engine, make_pair, send_informational, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
B_TS: dict[str, Any] = {"local_ts": '"10.2.0.0/24"', "remote_ts": '"10.1.0.0/24"'}


def of(node: Node, cls: type) -> list:
    return [e for e in node.events if isinstance(e, cls)]


def test_trap_installs_policies_then_acquire_negotiates_with_the_trap_reqid() -> None:
    a, b = make_pair(conf(*A, start="trap"), conf(*B, **B_TS))
    a.engine.start(0.0)
    assert a.drain() == []  # nothing sent yet
    (trap,) = of(a, InstallTrap)
    assert sorted(p.direction for p in trap.policies) == ["fwd", "in", "out"]
    assert all(p.trap and p.reqid == trap.reqid for p in trap.policies)
    a.engine.acquire(trap.reqid, 1.0)
    transfer(a, b, 1.0)
    (inst,) = of(a, InstallChildSa)
    assert inst.inbound.reqid == trap.reqid
    # The peer deletes the child: back to the trap (policies stay, SAs go).
    sa_b = next(iter(b.engine.sas.values()))
    from pike.ikev2.tasks.child_delete import ChildDelete

    sa_b.tasks.queue(ChildDelete(sa_b, True, sa_b.children[0]))
    sa_b.tasks.initiate(2.0)
    transfer(b, a, 2.0)
    (gone,) = of(a, DeleteChildSa)
    assert gone.keep_policies
    a.engine.acquire(trap.reqid, 3.0)
    transfer(a, b, 3.0)
    assert len(of(a, InstallChildSa)) == 2


def test_unknown_acquire_is_ignored() -> None:
    a, _ = make_pair()
    a.engine.acquire(999, 0.0)
    assert a.drain() == [] and a.engine.list_sas() == []


def test_dpd_action_trap_returns_to_trap() -> None:
    a, b = make_pair(conf(*A, extra_conn='dpd_delay = 10\ndpd_action = "trap"'), conf(*B, **B_TS))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (inst,) = of(a, InstallChildSa)
    now = 10.0
    a.engine.handle_timer(now)
    a.drain()
    while a.engine.list_sas():
        now = a.engine.get_timer() or now
        a.engine.handle_timer(now)
        a.drain()
    (trap,) = of(a, InstallTrap)
    assert trap.reqid == inst.inbound.reqid
    (gone,) = of(a, DeleteChildSa)
    assert gone.keep_policies
    a.engine.acquire(trap.reqid, now + 1)
    (req,) = a.drain()
    assert decode_message(req.data).exchange == ExchangeType.IKE_SA_INIT


def test_soft_expire_rekeys_and_hard_expire_deletes() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    child = next(iter(a.engine.sas.values())).children[0]
    a.engine.child_expired(child.spi_in, False, 5.0)
    transfer(a, b, 5.0)
    assert len(of(a, InstallChildSa)) == 2 and len(of(a, DeleteChildSa)) == 1
    new = next(iter(a.engine.sas.values())).children[0]
    assert new.expire_at == 5.0 + 3960  # life_time
    a.engine.child_expired(new.spi_out, True, 3963.0)  # at its life_time, give or take
    transfer(a, b, 3963.0)
    assert a.sa().children == () and b.sa().children == ()
    assert a.sa().state == "ESTABLISHED"


def test_hard_expire_long_before_life_time_makes_the_child_again() -> None:
    """The kernel judges time lifetimes on the wall clock: stepped a day forward, it ends
    SAs whose life_time (monotonic, ours) has hours left. Those are made again (a rekey),
    once for both directions' expiries, instead of the tunnel going down."""
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    child = next(iter(a.engine.sas.values())).children[0]
    a.engine.child_expired(child.spi_out, True, 100.0)
    a.engine.child_expired(child.spi_in, True, 100.0)  # the other direction: no second one
    transfer(a, b, 100.0)
    assert len(of(a, InstallChildSa)) == 2 and len(of(a, DeleteChildSa)) == 1
    (now,) = a.sa().children
    assert now.state == "INSTALLED" and now.spi_in != child.spi_in
    (theirs,) = b.sa().children
    assert theirs.spi_out == now.spi_in
    assert a.engine.ctx.counters.conn("gw").child_rekeys == 1


def test_keepalives_every_20s_when_encapsulating() -> None:
    a, b = make_pair(conf(*A, extra_conn="encap = true"), conf(*B, **B_TS))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.engine.get_timer() == 20.0
    a.engine.handle_timer(20.0)
    a.drain()
    (ka,) = of(a, SendKeepalive)
    assert ka.src == ("192.0.2.1", 4500) and ka.dst == ("192.0.2.2", 4500)
    assert a.engine.get_timer() == 40.0 and a.engine.ctx.counters.keepalives == 1
    assert of(b, SendKeepalive) == [] and b.engine.get_timer() != 20.0


def test_initial_contact_from_a_rebooted_peer_purges_its_old_sa() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    # a reboots: a fresh engine with the same config connects again
    a2 = Node(engine(conf(*A), 7))
    a2.engine.initiate("gw", 100.0)
    transfer(a2, b, 100.0)
    (sa,) = b.engine.list_sas()
    assert sa.state == "ESTABLISHED" and sa.spi_i != a.sa().spi_i
    (gone,) = of(b, IkeSaDeleted)
    assert gone.reason == "initial_contact"
    (dele,) = of(b, DeleteChildSa)
    assert dele.keep_policies  # the new child uses the same policies


def test_nat_mapping_change_moves_the_sas() -> None:
    a, b = make_pair(conf(*A, extra_conn="encap = true"), conf(*B, **B_TS))
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    probe = send_informational(a, 5.0)
    # the NAT in front of a now maps it to port 31000
    b.engine.receive_datagram(probe.data, ("192.0.2.1", 31000), probe.dst, 5.0)
    b.drain()
    assert b.sa().remote == ("192.0.2.1", 31000)
    moved = of(b, InstallChildSa)[-1]
    assert moved.outbound.encap is not None and moved.outbound.encap.dport == 31000
    assert of(b, DeleteChildSa)[-1].keep_policies
