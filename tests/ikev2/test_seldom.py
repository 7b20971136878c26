"""An IKE SA's seldom used state (``IkeSa.seldom``): none for a handshake or an IKE rekey,
made when one of its attributes takes a value other than its default."""

from __future__ import annotations

from pike.ikev2.ike_sa import IkeSa, Seldom

from .pair import Node, conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


def sas(node: Node) -> list[IkeSa]:
    return list(node.engine.sas.values())


def pair(extra_a: str = "") -> tuple[Node, Node]:
    a, b = make_pair(
        conf(*A, extra_conn=extra_a),
        conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'),
    )
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    return a, b


def test_none_for_a_handshake_or_an_ike_rekey() -> None:
    a, b = pair()
    (sa_a,), (sa_b,) = sas(a), sas(b)
    assert sa_a.state.value == sa_b.state.value == "ESTABLISHED"
    assert sa_a.seldom is None and sa_b.seldom is None
    # the defaults read through: nothing of reauthentication, restarts, fragments
    assert (sa_a.reauth_at, sa_a.replaces, sa_a.keyingtry, sa_a.fragments) == (None, None, 0, None)
    assert sa_b.delete_reason == "terminated" and sa_b.lost_children == ()
    a.engine.rekey("gw", 20.0)  # the successor takes reauth_at and replaced_by over
    transfer(a, b, 20.0)
    (new_a,), (new_b,) = sas(a), sas(b)
    assert new_a is not sa_a and new_a.state.value == "ESTABLISHED"
    assert new_a.seldom is None and new_b.seldom is None


def test_made_when_set_and_read_back() -> None:
    a, b = pair(extra_a='reauth_time = "20m"')
    (sa_a,) = sas(a)
    assert sa_a.seldom is not None and sa_a.reauth_at is not None  # (jittered 18-20 min)
    assert 18 * 60 <= sa_a.reauth_at <= 20 * 60
    (sa_b,) = sas(b)
    assert sa_b.seldom is None
    sa_b.keyingtry = 0  # the default: still nothing kept
    assert sa_b.seldom is None
    sa_b.keyingtry = 3
    assert isinstance(sa_b.seldom, Seldom) and sa_b.keyingtry == 3
    assert sa_b.seldom.keyingtry == 3 and sa_b.initiate_child is None
    (sa_a,) = sas(a)
    sa_a.seldom = None
    sa_a.fail("retransmit_timeout", 30.0)  # its end is noted there too
    assert sa_a.seldom is not None and sa_a.delete_reason == "retransmit_timeout"
    assert sa_a.lost_children == ("net",)
