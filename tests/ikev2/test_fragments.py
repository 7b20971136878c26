"""IKE fragmentation (RFC 7383): announced in IKE_SA_INIT, used above fragment_size."""

from __future__ import annotations

from pike.sa.actions import InstallChildSa
from pike.wire.codec import decode_message
from pike.wire.constants import NotifyType
from pike.wire.payloads import SkfPayload

from .pair import Node, conf, deliver, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
HOSTS = ", ".join(f'"10.1.0.{i}"' for i in range(1, 41))  # a large TSi
SMALL = "fragment_size = 576"


def big_pair(frag_a: bool = True) -> tuple[Node, Node]:
    extra = "" if frag_a else "fragmentation = false"
    a = conf(*A, local_ts=HOSTS, extra_daemon=SMALL, extra_conn=extra)
    b = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"', extra_daemon=SMALL)
    return make_pair(a, b)


def test_large_ike_auth_travels_in_fragments_both_ways() -> None:
    a, b = big_pair()
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    assert decode_message(init.data).notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)
    (init_resp,) = deliver([init], b, 0.0)
    assert decode_message(init_resp.data).notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)
    frags = deliver([init_resp], a, 0.0)
    assert len(frags) > 1
    for f in frags:
        assert len(f.data) + 28 <= 576  # IKE datagram + UDP/IPv4 headers
        assert isinstance(decode_message(f.data).payloads[-1], SkfPayload)
    # out of order, with a duplicate
    answer = deliver([frags[-1], *frags[:-1], frags[0]], b, 0.0)
    assert len(answer) > 1  # the response (40 TSi echoed) is fragmented too
    deliver(answer, a, 0.0)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    (ia,) = [e for e in a.events if isinstance(e, InstallChildSa)]
    assert len(ia.policies) == 40 * 3


def test_lost_fragment_means_the_whole_message_is_resent() -> None:
    a, b = big_pair()
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (init_resp,) = deliver([init], b, 0.0)
    frags = deliver([init_resp], a, 0.0)
    assert deliver(frags[1:], b, 0.0) == []  # fragment 1 lost: nothing to answer yet
    a.engine.handle_timer(4.0)
    again = a.drain()
    assert [f.data for f in again] == [f.data for f in frags]
    transfer(a, b, 4.0, in_flight=again)
    assert a.sa().state == b.sa().state == "ESTABLISHED"


def test_no_fragments_when_one_side_does_not_support_them() -> None:
    a, b = big_pair(frag_a=False)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert all(len(decode_message(d.data).payloads) == 1 for d in a.outbox[1:])
    assert all(not isinstance(decode_message(d.data).payloads[-1], SkfPayload) for d in a.outbox)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
