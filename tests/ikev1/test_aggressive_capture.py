"""charon's real Aggressive Mode AM1 (tests/fixtures/ikev1, strongSwan 5.9.8) into our
responder: the connection is found by charon's ID in the clear, its PSK and proposal are
taken, and AM2 answers in the clear with the transform charon offered; the same AM1 to a
connection without ``aggressive = true`` is refused with AUTHENTICATION-FAILED."""

from __future__ import annotations

import random

from ikev2.pair import Node, conf
from pike.ikev1.engine import Ikev1Engine
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.wire.isakmp import decode_v1
from pike.wire.isakmp_constants import ExchangeV1, NotifyV1, P1Attr
from pike.wire.isakmp_payloads import V1Hash, V1Id, V1NatD, V1Notify, V1Sa
from pike.wire.isakmp_rules import check_v1

from .strongswan_captures import load

SCENARIO = "am-aes128-sha256-modp2048-pfs"


def _responder(aggressive: bool) -> Node:
    cap = load(SCENARIO)
    m = cap.manifest
    i, r = m["initiator"], m["responder"]
    assert isinstance(i, dict) and isinstance(r, dict)
    text = conf(
        r["addr"], i["addr"], r["id"], i["id"],
        proposals=f'"{m["proposals"]}"', esp=f'"{m["esp_proposals"]}"',
        local_ts=f'"{r["ts"]}"', remote_ts=f'"{i["ts"]}"', psk=cap.psk.decode(),
        extra_conn="aggressive = true" if aggressive else "", version=1,
    )  # fmt: skip
    engine = Ikev1Engine(
        load_config_text(text), random=random.Random(5).randbytes, kernel_caps=KernelCaps(True)
    )
    return Node(engine)  # type: ignore[arg-type]


def _am1() -> tuple[bytes, tuple[str, int], tuple[str, int]]:
    cap = load(SCENARIO)
    am1 = cap.messages[0]
    assert am1.exchange_type == ExchangeV1.AGGRESSIVE and am1.sender == "initiator"
    m = cap.manifest
    i, r = m["initiator"], m["responder"]
    assert isinstance(i, dict) and isinstance(r, dict)
    return am1.data, (i["addr"], 500), (r["addr"], 500)


def test_charons_am1_is_answered_with_am2() -> None:
    node = _responder(True)
    data, src, dst = _am1()
    node.engine.receive_datagram(data, src, dst, 0.0)
    out = node.drain()
    assert len(out) == 1 and (out[0].src, out[0].dst) == (dst, src)
    am2 = decode_v1(out[0].data)
    assert am2.exchange == ExchangeV1.AGGRESSIVE and not am2.encrypted
    check_v1(ExchangeV1.AGGRESSIVE, 2, am2.payloads)
    offer, answer = decode_v1(data).first(V1Sa), am2.first(V1Sa)
    assert offer is not None and answer is not None
    (chosen,) = answer.proposals[0].transforms
    assert chosen in offer.proposals[0].transforms  # one of charon's, unchanged
    assert chosen.attr(P1Attr.GROUP) == 14 and chosen.attr(P1Attr.KEY_LENGTH) == 128
    ident = am2.first(V1Id)
    assert ident is not None and ident.data == b"hq.example.net"
    assert am2.first(V1Hash) is not None and len(am2.all(V1NatD)) == 2  # charon sent RFC 3947
    sa = node.sa()
    assert (sa.state, sa.remote_id) == ("CONNECTING", "branch1.example.net")


def test_charons_am1_refused_without_aggressive_true() -> None:
    node = _responder(False)
    data, src, dst = _am1()
    node.engine.receive_datagram(data, src, dst, 0.0)
    out = node.drain()
    assert node.engine.ctx.counters.dropped == {"aggressive_refused": 1}
    assert node.engine.list_sas() == []
    refusal = decode_v1(out[0].data)
    notify = refusal.first(V1Notify)
    assert refusal.exchange == ExchangeV1.INFORMATIONAL and notify is not None
    assert notify.notify_type == NotifyV1.AUTHENTICATION_FAILED
