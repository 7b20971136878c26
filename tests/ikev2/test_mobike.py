"""MOBIKE (RFC 4555) between two engines: negotiation in IKE_AUTH, the initiator's move to
a new path with UPDATE_SA_ADDRESSES (NAT detection, COOKIE2), the responder following it,
and what neither side may accept.

Branch a (initiator) has a second address 198.51.100.1 besides 192.0.2.1; hub b is at
192.0.2.2. Steps in RFC 4555 notation:

    IKE_AUTH  a -> b  SK {IDi AUTH N(MOBIKE_SUPPORTED) N(ADDITIONAL_IP4_ADDRESS) ...}
              b -> a  SK {IDr AUTH N(MOBIKE_SUPPORTED) N(NO_ADDITIONAL_ADDRESSES) ...}
    INFORMATIONAL a -> b  SK {N(UPDATE_SA_ADDRESSES) N(NAT_DETECTION_SOURCE_IP)
                              N(NAT_DETECTION_DESTINATION_IP) N(COOKIE2) N(...ADDRESS)}
                  b -> a  SK {N(NAT_DETECTION_SOURCE_IP) N(NAT_DETECTION_DESTINATION_IP)
                              N(COOKIE2)}
"""

from __future__ import annotations

from pike.ikev2.engine import Ikev2Engine
from pike.ikev2.ike_sa import IkeSa
from pike.policy.addrs import parse_ip
from pike.sa.actions import (
    DeleteChildSa,
    IkeRef,
    IkeSaDeleted,
    InstallChildSa,
    MigrateChildSa,
    SendDatagram,
)
from pike.wire.codec import decode_message, decrypt_message, encode_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import Message, NotifyPayload

from .pair import Node, conf, deliver, make_pair, send_informational, transfer
from .reseal import auth_request
from .test_ondemand import B_TS, A, B, of

OTHER = "198.51.100.1"  # a's second uplink
HUB = "192.0.2.2"


def _sa(node: Node) -> IkeSa:
    (sa,) = node.engine.sas.values()
    return sa


def _up(a_extra: str = "", b_extra: str = "") -> tuple[Node, Node]:
    a, b = make_pair(conf(*A, extra_conn=a_extra), conf(*B, **B_TS, extra_conn=b_extra))
    a.engine.ctx.local_addresses = ("192.0.2.1", OTHER, "fe80::1")
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    return a, b


def _open(data: bytes, sa: IkeSa) -> Message:
    assert sa.cipher_in is not None
    return decrypt_message(data, decode_message(data), sa.cipher_in)


def _notifies(msg: Message) -> list[int]:
    return [n.notify_type for n in msg.all(NotifyPayload)]


def _roam(a: Node, now: float) -> SendDatagram:
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: OTHER}, now)
    (update,) = a.drain()
    return update


def test_mobike_negotiated_with_addresses_and_ike_auth_on_4500() -> None:
    a, b = make_pair(conf(*A), conf(*B, **B_TS))
    a.engine.ctx.local_addresses = ("192.0.2.1", OTHER, "fe80::1")
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (init_r,) = deliver([init], b, 0.0)
    (auth,) = deliver([init_r], a, 0.0)
    # RFC 4555 §3.4: IKE_AUTH already goes to port 4500
    assert (init.src[1], init.dst[1]) == (500, 500)
    assert (auth.src, auth.dst) == (("192.0.2.1", 4500), (HUB, 4500))
    req = _open(auth.data, _sa(b))
    assert NotifyType.MOBIKE_SUPPORTED in _notifies(req)
    # the second address, not the link-local one nor the one in use
    adds = [n.data for n in req.all(NotifyPayload) if n.notify_type == 16397]
    assert adds == [parse_ip(OTHER).packed]
    (auth_r,) = deliver([auth], b, 0.0)
    resp = _open(auth_r.data, _sa(a))
    assert NotifyType.MOBIKE_SUPPORTED in _notifies(resp)
    assert NotifyType.NO_ADDITIONAL_ADDRESSES in _notifies(resp)
    deliver([auth_r], a, 0.0)
    assert _sa(a).mobike and _sa(b).mobike
    assert _sa(b).peer_addrs == (OTHER,)
    assert _sa(b).remote == ("192.0.2.1", 4500)


def test_mobike_false_on_either_side_is_not_negotiated_and_never_roams() -> None:
    for a_extra, b_extra in (("mobike = false", ""), ("", "mobike = false")):
        a, b = _up(a_extra, b_extra)
        assert not _sa(a).mobike and not _sa(b).mobike
        a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: OTHER}, 5.0)
        assert a.drain() == []
        # without MOBIKE offered the initiator stays on port 500 (no NAT)
        assert _sa(a).local == ("192.0.2.1", 500 if a_extra else 4500)


def test_path_change_moves_both_ends_same_spis_no_new_ike_sa() -> None:
    a, b = _up()
    spis = (a.sa().spi_i, a.sa().spi_r)
    (child,) = a.sa().children
    update = _roam(a, 10.0)
    assert (update.src, update.dst) == ((OTHER, 4500), (HUB, 4500))
    req = _open(update.data, _sa(b))
    assert req.exchange == ExchangeType.INFORMATIONAL
    assert _notifies(req)[:4] == [
        NotifyType.UPDATE_SA_ADDRESSES,
        NotifyType.NAT_DETECTION_SOURCE_IP,
        NotifyType.NAT_DETECTION_DESTINATION_IP,
        NotifyType.COOKIE2,
    ]
    (answer,) = deliver([update], b, 10.0)
    assert (answer.src, answer.dst) == ((HUB, 4500), (OTHER, 4500))
    assert NotifyType.COOKIE2 in _notifies(_open(answer.data, _sa(a)))
    assert deliver([answer], a, 10.0) == []
    for node, local, remote in ((a, OTHER, HUB), (b, HUB, OTHER)):
        (move,) = of(node, MigrateChildSa)
        assert move.inbound.spi == move.old_inbound.spi
        assert move.outbound.spi == move.old_outbound.spi
        assert (str(move.outbound.src), str(move.outbound.dst)) == (local, remote)
        assert (str(move.inbound.src), str(move.inbound.dst)) == (remote, local)
        assert move.inbound.encap is None  # no NAT on the new path
        assert {str(p.tmpl_src) for p in move.policies if p.direction == "out"} == {local}
        assert node.engine.ctx.counters.conn("gw").path_changes == 1
    assert (a.sa().spi_i, a.sa().spi_r) == spis
    assert [c.spi_in for c in a.sa().children] == [child.spi_in]
    assert b.sa().remote == (OTHER, 4500)
    # the moved SA keeps working: a liveness check from the new address
    probe = send_informational(a, 20.0)
    assert probe.src == (OTHER, 4500)
    (pong,) = deliver([probe], b, 20.0)
    assert pong.dst == (OTHER, 4500)
    # and the primary comes back: the same way home
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: "192.0.2.1"}, 30.0)
    transfer(a, b, 30.0, in_flight=[])
    deliver([pong], a, 20.0)
    assert b.sa().remote == ("192.0.2.1", 4500)
    assert a.engine.ctx.counters.conn("gw").path_changes == 2


def test_no_route_keeps_the_path_and_unchanged_route_sends_nothing() -> None:
    a, _ = _up()
    mine = a.engine.ctx.local_addresses  # as announced: no address list to send either
    a.engine.paths_changed(mine, {HUB: None}, 5.0)
    a.engine.paths_changed(mine, {HUB: "192.0.2.1"}, 6.0)
    assert a.drain() == []
    assert a.engine.mobike_peers() == {HUB}


def test_peer_additional_address_is_used_when_its_first_has_no_route() -> None:
    a, _ = _up()
    _sa(a).peer_addrs = ("203.0.113.2",)  # as if b had announced it
    assert a.engine.mobike_peers() == {HUB, "203.0.113.2"}
    a.engine.paths_changed((OTHER,), {HUB: None, "203.0.113.2": OTHER}, 5.0)
    (update,) = a.drain()
    assert (update.src, update.dst) == ((OTHER, 4500), ("203.0.113.2", 4500))


def test_cookie2_mismatch_closes_the_ike_sa_and_is_counted() -> None:
    a, b = _up()
    update = _roam(a, 10.0)
    (answer,) = deliver([update], b, 10.0)
    resp = _open(answer.data, _sa(a))
    resp.payloads = [
        NotifyPayload(NotifyType.COOKIE2, b"\x00" * 16)
        if n.notify_type == NotifyType.COOKIE2
        else n
        for n in resp.all(NotifyPayload)
    ]
    assert _sa(b).cipher_out is not None
    forged = encode_message(resp, _sa(b).cipher_out)
    deliver([SendDatagram(forged, answer.src, answer.dst)], a, 10.0)
    assert a.engine.ctx.counters.dropped["cookie2_mismatch"] == 1
    assert of(a, MigrateChildSa) == []
    (gone,) = of(a, IkeSaDeleted)
    assert gone.reason == "cookie2_mismatch"
    assert a.engine.list_sas() == []


UNACCEPTABLE_ADDRESSES = 40  # RFC 4555 §4 (an error notify pike never sends)


def _refused(a: Node, b: Node, update: SendDatagram, now: float) -> list[SendDatagram]:
    """b's answer to ``update`` replaced by N(UNACCEPTABLE_ADDRESSES); what a sends then."""
    (answer,) = deliver([update], b, now)
    resp = _open(answer.data, _sa(a))
    resp.payloads = [NotifyPayload(UNACCEPTABLE_ADDRESSES)]
    assert _sa(b).cipher_out is not None
    refusal = encode_message(resp, _sa(b).cipher_out)
    return deliver([SendDatagram(refusal, answer.src, answer.dst)], a, now)


def test_refused_update_puts_the_ike_sa_back_where_its_child_sas_are() -> None:
    a, b = _up()
    assert _refused(a, b, _roam(a, 10.0), 10.0) == []
    assert a.engine.ctx.counters.dropped["update_sa_addresses_refused"] == 1
    # IKE and the kernel agree: both still on the old path, the SA lives on
    assert _sa(a).local == ("192.0.2.1", 4500) and _sa(a).remote == (HUB, 4500)
    assert of(a, MigrateChildSa) == [] and of(a, IkeSaDeleted) == []
    assert send_informational(a, 11.0).src == ("192.0.2.1", 4500)
    transfer(a, b, 11.0, in_flight=[])
    # not asked again in a loop (nothing sent above), but after the next address or
    # route event the path is tried once more
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: OTHER}, 12.0)
    (retry,) = a.drain()
    assert retry.src == (OTHER, 4500)


def test_refused_update_tries_the_peers_other_address() -> None:
    a, b = _up()
    _sa(a).peer_addrs = ("203.0.113.2",)  # as if b had announced it
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: OTHER, "203.0.113.2": OTHER}, 10.0)
    (update,) = a.drain()
    assert update.dst == (HUB, 4500)
    (second,) = _refused(a, b, update, 10.0)
    # RFC 4555 §3.5: another pair of addresses, with a fresh UPDATE_SA_ADDRESSES
    assert (second.src, second.dst) == ((OTHER, 4500), ("203.0.113.2", 4500))
    req = _open(second.data, _sa(b))
    assert NotifyType.UPDATE_SA_ADDRESSES in _notifies(req)
    assert _sa(a).remote == ("203.0.113.2", 4500)


def test_nat_on_the_new_path_turns_on_udp_encapsulation_both_ways() -> None:
    a, b = _up()
    update = _roam(a, 10.0)
    mapped = ("203.0.113.9", 31000)  # a NAT on the backup uplink
    b.engine.receive_datagram(update.data, mapped, update.dst, 10.0)
    (answer,) = b.drain()
    assert answer.dst == mapped
    assert _sa(b).nat_remote and not _sa(b).nat_local
    deliver([SendDatagram(answer.data, answer.src, (OTHER, 4500))], a, 10.0)
    assert _sa(a).nat_local
    (move_b,) = of(b, MigrateChildSa)
    assert move_b.outbound.encap is not None and move_b.outbound.encap.dport == 31000
    assert str(move_b.outbound.dst) == "203.0.113.9"
    (move_a,) = of(a, MigrateChildSa)
    assert move_a.outbound.encap is not None and move_a.outbound.encap.sport == 4500


def _crafted(a: Node, payloads: list[NotifyPayload]) -> bytes:
    """An INFORMATIONAL request of a's IKE SA with ``payloads`` (its next message ID)."""
    sa = _sa(a)
    msg = sa.new_message(ExchangeType.INFORMATIONAL, sa.tasks.mid_out, response=False)
    msg.payloads.extend(payloads)
    sa.tasks.mid_out += 1
    return sa.encode(msg)


def test_malformed_update_sa_addresses_answered_invalid_syntax_and_counted() -> None:
    a, b = _up()
    nat = [
        NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(20)),
        NotifyPayload(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(20)),
    ]
    bad = [
        [NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES)],  # no NAT detection
        [NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES), *nat, NotifyPayload(16401, b"x" * 4)],
        [NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES), *nat, NotifyPayload(16397, b"\x01" * 5)],
        [NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES)] * 2 + nat,
        [NotifyPayload(16401, b"c" * 8)] * 2,
    ]
    for i, payloads in enumerate(bad, 1):
        data = _crafted(a, payloads)
        b.engine.receive_datagram(data, (OTHER, 4500), (HUB, 4500), 10.0 + i)
        (answer,) = b.drain()
        assert _notifies(_open(answer.data, _sa(a))) == [NotifyType.INVALID_SYNTAX]
        assert answer.dst == (OTHER, 4500)  # answered where it came from
        assert b.engine.ctx.counters.dropped["invalid_update_sa_addresses"] == i
    assert b.sa().state == "ESTABLISHED"
    assert b.sa().remote == ("192.0.2.1", 4500)  # nothing moved
    assert of(b, MigrateChildSa) == []


def test_update_from_the_ike_responder_or_without_mobike_is_refused() -> None:
    a, b = _up(b_extra="mobike = false")
    data = _crafted(
        a,
        [
            NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES),
            NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(20)),
            NotifyPayload(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(20)),
        ],
    )
    b.engine.receive_datagram(data, (OTHER, 4500), (HUB, 500), 5.0)
    (answer,) = b.drain()
    assert _notifies(_open(answer.data, _sa(a))) == [NotifyType.INVALID_SYNTAX]
    # the IKE SA's responder (b) may not move it either (RFC 4555 §3.5)
    a, b = _up()
    sa_b = _sa(b)
    msg = sa_b.new_message(ExchangeType.INFORMATIONAL, sa_b.tasks.mid_out, response=False)
    msg.payloads += [
        NotifyPayload(NotifyType.UPDATE_SA_ADDRESSES),
        NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(20)),
        NotifyPayload(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(20)),
    ]
    a.engine.receive_datagram(sa_b.encode(msg), ("203.0.113.5", 4500), ("192.0.2.1", 4500), 5.0)
    (answer,) = a.drain()
    assert _notifies(_open(answer.data, sa_b)) == [NotifyType.INVALID_SYNTAX]
    assert a.sa().remote == (HUB, 4500)


def test_request_from_another_address_is_answered_there_without_moving() -> None:
    a, b = _up()
    probe = send_informational(a, 5.0)
    b.engine.receive_datagram(probe.data, (OTHER, 4500), probe.dst, 5.0)
    (answer,) = b.drain()
    assert answer.dst == (OTHER, 4500)
    assert b.sa().remote == ("192.0.2.1", 4500)
    assert of(b, MigrateChildSa) == []


def test_exchange_in_flight_is_resent_over_the_new_path() -> None:
    a, b = _up()
    probe = send_informational(a, 5.0)  # lost on the dead uplink
    assert probe.src == ("192.0.2.1", 4500)
    a.engine.paths_changed((OTHER,), {HUB: OTHER}, 6.0)
    (again,) = a.drain()
    assert again.data == probe.data and again.src == (OTHER, 4500)
    transfer(a, b, 6.0, in_flight=[again])
    assert b.sa().remote == (OTHER, 4500)
    assert [m.outbound.src for m in of(a, MigrateChildSa)] == [parse_ip(OTHER)]


def test_path_change_is_kept_across_an_ike_rekey() -> None:
    a, b = _up()
    a.engine.rekey("gw", 5.0)
    transfer(a, b, 5.0)
    assert _sa(a).mobike and _sa(b).mobike
    transfer(a, b, 10.0, in_flight=[_roam(a, 10.0)])
    assert b.sa().remote == (OTHER, 4500)


def test_original_initiator_still_roams_after_an_ike_rekey_the_peer_started() -> None:
    a, b = _up()
    b.engine.rekey("gw", 5.0)
    transfer(b, a, 5.0)
    # the successor was created by b: a is its responder, yet still MOBIKE's initiator
    assert not _sa(a).initiator and _sa(b).initiator
    assert _sa(a).roams() and not _sa(b).roams()
    assert a.engine.mobike_peers() == {HUB}
    # b (the original responder) never moves the SA, even as the new SA's initiator:
    # it only tells a of its new address
    b.engine.paths_changed((HUB, "203.0.113.9"), {"192.0.2.1": "203.0.113.9"}, 8.0)
    (told,) = b.drain()
    assert (told.src, told.dst) == ((HUB, 4500), ("192.0.2.1", 4500))
    assert NotifyType.UPDATE_SA_ADDRESSES not in _notifies(_open(told.data, _sa(a)))
    transfer(b, a, 8.0, in_flight=[told])
    assert _sa(a).peer_addrs == ("203.0.113.9",)
    transfer(a, b, 10.0, in_flight=[_roam(a, 10.0)])
    assert b.sa().remote == (OTHER, 4500)
    assert [str(m.outbound.src) for m in of(a, MigrateChildSa)] == [OTHER]
    assert [str(m.outbound.dst) for m in of(b, MigrateChildSa)] == [OTHER]
    assert b.engine.ctx.counters.dropped.get("invalid_update_sa_addresses", 0) == 0


def test_update_from_the_original_responder_after_its_rekey_is_refused() -> None:
    a, b = _up()
    b.engine.rekey("gw", 5.0)
    transfer(b, a, 5.0)
    sa_b = _sa(b)
    # forge b's roam by hand: its engine refuses to (it is not the original initiator)
    sa_b.original_initiator = True
    b.engine.paths_changed((HUB, "203.0.113.9"), {"192.0.2.1": "203.0.113.9"}, 8.0)
    (update,) = b.drain()
    (answer,) = deliver([update], a, 8.0)
    assert NotifyType.INVALID_SYNTAX in _notifies(_open(answer.data, _sa(b)))
    assert a.engine.ctx.counters.dropped["invalid_update_sa_addresses"] == 1
    assert _sa(a).remote == (HUB, 4500)
    assert of(a, MigrateChildSa) == []


def test_new_address_without_a_path_change_is_told_in_an_informational() -> None:
    a, b = _up()
    extra = "203.0.113.7"
    a.engine.paths_changed(("192.0.2.1", OTHER, extra), {HUB: "192.0.2.1"}, 5.0)
    (told,) = a.drain()
    assert (told.src, told.dst) == (("192.0.2.1", 4500), (HUB, 4500))
    req = _open(told.data, _sa(b))
    assert req.exchange == ExchangeType.INFORMATIONAL
    # RFC 4555 §3.6: the list alone, no UPDATE_SA_ADDRESSES (the path stays)
    assert _notifies(req) == [NotifyType.ADDITIONAL_IP4_ADDRESS] * 2
    (answer,) = deliver([told], b, 5.0)
    assert deliver([answer], a, 5.0) == []
    assert _sa(b).peer_addrs == (OTHER, extra)
    assert _sa(b).remote == ("192.0.2.1", 4500)
    assert of(a, MigrateChildSa) == of(b, MigrateChildSa) == []
    # the same addresses again: nothing new to tell
    a.engine.paths_changed(("192.0.2.1", OTHER, extra), {HUB: "192.0.2.1"}, 6.0)
    assert a.drain() == []
    # the last other address gone: NO_ADDITIONAL_ADDRESSES
    a.engine.paths_changed(("192.0.2.1",), {HUB: "192.0.2.1"}, 7.0)
    (gone,) = a.drain()
    assert _notifies(_open(gone.data, _sa(b))) == [NotifyType.NO_ADDITIONAL_ADDRESSES]
    transfer(a, b, 7.0, in_flight=[gone])
    assert _sa(b).peer_addrs == ()


def test_child_sa_actions_name_their_ike_sa_for_updown() -> None:
    """Install and delete carry the IKE SA's unique id and the authenticated identities
    (updown's PLUTO_UNIQUEID, PLUTO_MY_ID, PLUTO_PEER_ID), also after an IKE rekey."""
    a, b = _up()
    (install,) = of(a, InstallChildSa)
    assert install.ike == IkeRef(_sa(a).unique_id, "branch.example.net", "hq.example.net")
    b.engine.rekey("gw", 5.0)
    transfer(b, a, 5.0)
    (child,) = _sa(a).children
    _sa(a).remove_child(child, "test")
    a.drain()
    (delete,) = of(a, DeleteChildSa)
    assert delete.ike == IkeRef(_sa(a).unique_id, "branch.example.net", "hq.example.net")
    assert delete.ike.unique_id != install.ike.unique_id  # the successor IKE SA's


def test_engine_without_mobike_peers_lists_none() -> None:
    a, _ = _up("mobike = false")
    assert isinstance(a.engine, Ikev2Engine)
    assert a.engine.mobike_peers() == set()


def test_initiation_without_local_addrs_starts_from_the_routes_source() -> None:
    text = conf(*A).replace('local_addrs = ["192.0.2.1"]\n', "")
    hub = conf(HUB, "%any", "hq.example.net", "branch.example.net", **B_TS)
    a, b = make_pair(text, hub)
    assert a.engine.mobike_peers() == {HUB}  # asked before anything is up
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: OTHER}, 0.0)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    assert init.src == (OTHER, 500)
    transfer(a, b, 0.0, in_flight=[init])
    assert b.sa().remote == (OTHER, 4500)
    assert not _sa(b).nat_remote  # NAT detection saw the real address


def test_second_hub_without_local_addrs_starts_from_its_uplinks_source() -> None:
    """Redundant hubs, one per uplink, no local_addrs: the failover to the second hub
    speaks from the address the route to that hub gives, not 0.0.0.0 (which would land
    in the kernel SAs as the outer source)."""
    hub2 = "203.0.113.2"
    text = conf(*A).replace('local_addrs = ["192.0.2.1"]\n', "")
    text = text.replace('remote_addrs = ["192.0.2.2"]', f'remote_addrs = ["{HUB}", "{hub2}"]')
    second = conf(hub2, "%any", "hq.example.net", "branch.example.net", **B_TS)
    a, b = make_pair(text, second)
    assert a.engine.mobike_peers() == {HUB, hub2}  # every hub, before anything is up
    a.engine.paths_changed(("192.0.2.1", OTHER), {HUB: "192.0.2.1", hub2: OTHER}, 0.0)
    a.engine.initiate("gw", 0.0, remote=hub2)  # as the failover does
    (init,) = a.drain()
    assert (init.src, init.dst) == ((OTHER, 500), (hub2, 500))
    transfer(a, b, 0.0, in_flight=[init])
    (child,) = _sa(a).children
    assert child.outbound is not None and str(child.outbound.src) == OTHER
    assert not _sa(b).nat_remote


def test_bad_address_list_in_ike_auth_is_ignored_and_counted() -> None:
    req = auth_request(conf(*A), conf(*B, **B_TS))
    bad = NotifyPayload(NotifyType.ADDITIONAL_IP4_ADDRESS, b"\x01\x02\x03\x04\x05")
    answer = req.send(req.seal([*req.message.payloads, bad]))
    assert len(answer) == 1
    sa_b = _sa(req.responder)
    assert sa_b.state.value == "ESTABLISHED" and sa_b.mobike
    assert sa_b.peer_addrs == ()
    assert req.responder.engine.ctx.counters.dropped["invalid_mobike_addresses"] == 1
