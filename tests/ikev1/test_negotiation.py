"""IKEv1 proposals, proxy IDs, NAT-T and reauthentication, in memory."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from ikev2.pair import transfer
from pike.ikev1.proposals import parse_phase1, parse_phase2
from pike.ikev1.proxy_id import from_id, to_id
from pike.policy.ts import TrafficSelector
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished, InstallChildSa
from pike.wire.isakmp import decode_v1, encode_v1
from pike.wire.isakmp_constants import KEY_IKE, EncapMode, ExchangeV1, NotifyV1, P1Attr, P2Attr
from pike.wire.isakmp_payloads import (
    V1Id,
    V1Message,
    V1Notify,
    V1Proposal,
    V1Sa,
    V1Transform,
)

from .v1pair import A, B, make_pair


def _p1(encr: int, hash_alg: int, group: int, bits: int = 128) -> V1Transform:
    attrs = ((P1Attr.ENCRYPTION, encr), (P1Attr.KEY_LENGTH, bits), (P1Attr.HASH, hash_alg))
    return V1Transform(1, KEY_IKE, (*attrs, (P1Attr.AUTH_METHOD, 1), (P1Attr.GROUP, group)))


@pytest.mark.parametrize(
    "weak",
    [
        _p1(1, 2, 14),  # DES
        _p1(5, 2, 14),  # 3DES
        _p1(7, 1, 14),  # MD5
        _p1(7, 2, 1),  # MODP-768
        _p1(7, 2, 2),  # MODP-1024
        _p1(7, 2, 5),  # MODP-1536
    ],
)
def test_weak_phase_1_transforms_are_never_accepted(weak: V1Transform) -> None:
    assert parse_phase1(weak) is None
    _, b = make_pair()
    mm1 = V1Message(
        b"i" * 8, bytes(8), ExchangeV1.MAIN, 0, 0, [V1Sa((V1Proposal(1, 1, b"", (weak,)),))]
    )
    b.engine.receive_datagram(encode_v1(mm1), (A, 500), (B, 500), 0.0)
    (answer,) = b.drain()
    n = decode_v1(answer.data)
    assert n.exchange == ExchangeV1.INFORMATIONAL
    assert [p.notify_type for p in n.payloads if isinstance(p, V1Notify)] == [
        NotifyV1.NO_PROPOSAL_CHOSEN
    ]
    assert b.engine.list_sas() == []


def test_phase_2_refusals() -> None:
    md5 = V1Transform(1, 12, ((P2Attr.AUTH_ALGORITHM, 1), (P2Attr.KEY_LENGTH, 128)))
    des = V1Transform(1, 2, ((P2Attr.AUTH_ALGORITHM, 5),))
    weak_pfs = V1Transform(
        1, 12, ((P2Attr.AUTH_ALGORITHM, 5), (P2Attr.KEY_LENGTH, 128), (P2Attr.GROUP, 2))
    )
    assert parse_phase2(md5) is None and parse_phase2(des) is None
    assert parse_phase2(weak_pfs) is None
    ok = V1Transform(
        1,
        12,
        ((P2Attr.ENCAP_MODE, EncapMode.UDP_TUNNEL_DRAFT), (P2Attr.AUTH_ALGORITHM, 5), (6, 256)),
    )
    parsed = parse_phase2(ok)
    assert parsed is not None and parsed[1] == EncapMode.UDP_TUNNEL_DRAFT


@pytest.mark.parametrize(
    ("ts", "id_type"),
    [
        (TrafficSelector.from_cidr("10.1.0.0/24"), 4),
        (TrafficSelector.from_cidr("10.1.0.7/32"), 1),
        (TrafficSelector(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.9")), 7),
        (TrafficSelector.from_cidr("2001:db8::/64", 17, 53), 6),
        (TrafficSelector.from_cidr("2001:db8::1/128"), 5),
    ],
)
def test_proxy_ids_round_trip(ts: TrafficSelector, id_type: int) -> None:
    p = to_id(ts)
    assert p.id_type == id_type
    assert from_id(p) == ts


def test_non_prefix_mask_and_name_ids_are_no_selectors() -> None:
    assert from_id(V1Id(4, 0, 0, bytes([10, 0, 0, 0, 255, 0, 255, 0]))) is None
    assert from_id(V1Id(2, 0, 0, b"gw.example.org")) is None


def test_proxy_ids_nobody_configured_are_refused_with_a_notify() -> None:
    a, b = make_pair(None, {"local_ts": '"10.9.0.0/24"'})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert len(a.of(IkeSaEstablished)) == 1 and not a.of(InstallChildSa)
    assert b.engine.ctx.counters.dropped == {"quick_mode_refused": 1}
    assert a.sa().children == ()


def test_encap_fakes_nat_floats_to_4500_and_asks_udp_encapsulation() -> None:
    a, b = make_pair({"extra_conn": "encap = true"})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    sa_a, sa_b = a.sa(), b.sa()
    assert (sa_a.local[1], sa_a.remote[1]) == (4500, 4500)
    assert (sa_b.local[1], sa_b.remote[1]) == (4500, 4500)
    assert sa_a.nat_local and sa_b.nat_remote
    ia, ib = a.of(InstallChildSa)[0], b.of(InstallChildSa)[0]
    assert isinstance(ia, InstallChildSa) and isinstance(ib, InstallChildSa)
    assert ia.outbound.encap is not None and ib.inbound.encap is not None
    assert (ia.outbound.encap.sport, ia.outbound.encap.dport) == (4500, 4500)
    assert a.engine.get_timer() == 20.0  # NAT-T keepalive behind the (faked) NAT


def test_reauthentication_replaces_the_isakmp_sa_and_its_children() -> None:
    kw = {"extra_conn": "rekey_time = 1000"}
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    old = a.sa()
    a.engine.handle_timer(1000.0)
    transfer(a, b, 1000.0)
    (new,) = a.engine.list_sas()
    assert new.spi_i != old.spi_i and new.state == "ESTABLISHED"
    assert len(new.children) == 1 and new.children[0].state == "INSTALLED"
    (peer,) = b.engine.list_sas()
    assert peer.spi_i == new.spi_i
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["reauthenticated"]  # type: ignore[union-attr]
    assert [d.reason for d in b.of(IkeSaDeleted)] == ["peer_deleted"]  # type: ignore[union-attr]
    assert a.engine.ctx.counters.conn("gw").ike_rekeys == 1


def test_main_and_quick_mode_over_ipv6() -> None:
    from ikev2.pair import Node

    from .v1pair import engine, v1conf

    a6, b6 = "2001:db8::1", "2001:db8::2"
    a = Node(engine(v1conf(a6, b6, local_ts='"fd00:1::/64"', remote_ts='"fd00:2::/64"'), 1))  # type: ignore[arg-type]
    b = Node(engine(v1conf(b6, a6, local_ts='"fd00:2::/64"', remote_ts='"fd00:1::/64"'), 2))  # type: ignore[arg-type]
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    sa = a.sa()
    assert (sa.local_id, sa.remote_id) == (a6, b6) and not sa.nat_local and not sa.nat_remote
    (ia,) = a.of(InstallChildSa)
    assert isinstance(ia, InstallChildSa) and str(ia.policies[0].src_ts) == "fd00:1::/64"
    assert len(b.of(InstallChildSa)) == 1


def test_pikectl_rekey_of_the_isakmp_sa_works_from_the_responder_side_too() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    old = b.sa()
    b.engine.rekey("gw", 5.0)  # b was the responder
    transfer(a, b, 5.0)
    (new,) = b.engine.list_sas()
    assert new.spi_i != old.spi_i and new.initiator and new.children[0].state == "INSTALLED"
    assert [d.reason for d in b.of(IkeSaDeleted)] == ["reauthenticated"]  # type: ignore[union-attr]
    (peer,) = a.engine.list_sas()
    assert peer.spi_i == new.spi_i


def test_reauth_time_alone_is_the_isakmp_lifetime() -> None:
    """reauth_time without rekey_time (which then defaults to 0): MM1 offers reauth_time
    as the phase-1 lifetime and the initiator reauthenticates then, not at 4 h."""
    kw = {"extra_conn": "reauth_time = 500"}
    a, b = make_pair(kw, kw)
    a.engine.initiate("gw", 0.0, "net")
    (mm1,) = a.drain()
    (sa_payload,) = [p for p in decode_v1(mm1.data).payloads if isinstance(p, V1Sa)]
    offered = [parse_phase1(t) for prop in sa_payload.proposals for t in prop.transforms]
    assert [c.lifetime for c in offered if c is not None] == [500]
    b.engine.receive_datagram(mm1.data, mm1.src, mm1.dst, 0.0)
    transfer(a, b, 0.0)
    old = a.sa()
    assert a.engine.get_timer() == 500.0  # nothing before (no rekey_time of its own)
    a.engine.handle_timer(500.0)
    transfer(a, b, 500.0)
    (new,) = a.engine.list_sas()
    assert new.spi_i != old.spi_i and new.state == "ESTABLISHED"
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["reauthenticated"]  # type: ignore[union-attr]
