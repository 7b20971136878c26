"""IKEv1 Aggressive Mode with PSK, in memory: only with ``aggressive = true``, a Quick Mode
that overtakes AM3 is queued, lost messages are retransmitted."""

from __future__ import annotations

from ikev2.pair import Node, deliver, transfer
from pike.sa.actions import IkeSaDeleted, IkeSaEstablished, InstallChildSa
from pike.wire.isakmp import decode_v1
from pike.wire.isakmp_constants import ExchangeV1, NotifyV1
from pike.wire.isakmp_payloads import V1Hash, V1Id, V1Ke, V1Nonce, V1Notify, V1Sa

from .v1pair import make_pair

AGGR = {"extra_conn": "aggressive = true"}
IDS_A = {"local_id": "branch.example.net", "remote_id": "hq.example.net", **AGGR}
IDS_B = {"local_id": "hq.example.net", "remote_id": "branch.example.net", **AGGR}


def _pair(
    a_kw: dict[str, str] | None = None, b_kw: dict[str, str] | None = None
) -> tuple[Node, Node]:
    return make_pair(a_kw or IDS_A, b_kw or IDS_B)


def test_aggressive_mode_psk_then_quick_mode() -> None:
    a, b = _pair()
    a.engine.initiate("gw", 0.0, "net")
    am1 = a.drain()
    msg = decode_v1(am1[0].data)
    assert msg.exchange == ExchangeV1.AGGRESSIVE
    assert [type(p) for p in msg.payloads[:4]] == [V1Sa, V1Ke, V1Nonce, V1Id]
    am2 = deliver(am1, b, 0.0)
    assert V1Hash in {type(p) for p in decode_v1(am2[0].data).payloads}  # HASH_R in clear
    crossed = transfer(a, b, 0.0, in_flight=deliver(am2, a, 0.0))
    assert crossed == 4  # AM3, QM1, QM2, QM3
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    sa = a.sa()
    assert (sa.local_id, sa.remote_id) == ("branch.example.net", "hq.example.net")
    assert b.sa().children[0].spi_out == sa.children[0].spi_in


def test_responder_refuses_aggressive_mode_unless_allowed() -> None:
    a, b = _pair(IDS_A, {**IDS_B, "extra_conn": ""})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert b.engine.ctx.counters.dropped == {"aggressive_refused": 1}
    assert b.engine.list_sas() == []
    # answered as strongSwan does: AUTHENTICATION-FAILED in the clear, which ends A's try
    refusal = decode_v1(b.outbox[0].data)
    assert refusal.exchange == ExchangeV1.INFORMATIONAL and not refusal.encrypted
    notify = refusal.first(V1Notify)
    assert notify is not None and notify.notify_type == NotifyV1.AUTHENTICATION_FAILED
    assert not a.of(IkeSaEstablished)
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["peer_refused"]


def test_quick_mode_overtaking_am3_is_queued_not_dropped() -> None:
    a, b = _pair()
    a.engine.initiate("gw", 0.0, "net")
    am2 = deliver(a.drain(), b, 0.0)
    am3_qm1 = deliver(am2, a, 0.0)
    assert [decode_v1(d.data).exchange for d in am3_qm1] == [ExchangeV1.AGGRESSIVE, 32]
    am3, qm1 = am3_qm1
    assert deliver([qm1], b, 0.0) == []  # before AM3: kept
    qm2 = deliver([am3], b, 0.0)  # AM3 in, then the queued QM1 answered
    assert [decode_v1(d.data).exchange for d in qm2] == [ExchangeV1.QUICK]
    transfer(a, b, 0.0, in_flight=deliver(qm2, a, 0.0))
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    assert b.engine.ctx.counters.dropped == {}


def test_lost_am3_is_resent_when_the_responder_retransmits_am2() -> None:
    a, b = _pair()
    a.engine.initiate("gw", 0.0, "net")
    am2 = deliver(a.drain(), b, 0.0)
    deliver(am2, a, 0.0)  # AM3 and QM1 lost
    assert b.engine.get_timer() == 4.0
    b.engine.handle_timer(4.0)
    again = b.drain()
    assert again[0].data == am2[0].data
    resent = deliver(again, a, 4.0)
    assert [decode_v1(d.data).exchange for d in resent] == [ExchangeV1.AGGRESSIVE]
    deliver(resent, b, 4.0)
    assert b.sa().state == "ESTABLISHED"
    a.engine.handle_timer(4.0)  # QM1 retransmitted on its own schedule
    transfer(a, b, 4.0)
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1


def test_wrong_psk_fails_at_am2_hash() -> None:
    a, b = _pair(IDS_A, {**IDS_B, "psk": "another-secret-entirely"})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert a.engine.ctx.counters.dropped == {"auth_failed": 1}
    assert not a.of(IkeSaEstablished)


def test_am1_with_a_dn_of_huge_oid_arcs_or_control_characters(caplog) -> None:
    """Issue 13: Aggressive Mode reads the peer's identity in the clear, before anything
    is authenticated: a DN with a 4 600-digit OID arc raised out of the engine, and an
    FQDN with a newline wrote forged lines into the log. Now a refusal, escaped."""
    from dataclasses import replace

    from pike.sa.der import OID, SEQUENCE, SET, tlv
    from pike.wire.isakmp import encode_v1
    from pike.wire.isakmp_constants import IdV1

    huge = tlv(
        SEQUENCE,
        tlv(SET, tlv(SEQUENCE, tlv(OID, b"\x2b" + b"\xff" * 2200 + b"\x01") + tlv(0x0C, b"x"))),
    )
    caplog.set_level("INFO", logger="pike")
    for id_type, data in ((IdV1.DER_ASN1_DN, huge), (IdV1.FQDN, b"evil\nforged: line\x1b[31m")):
        a, b = _pair(IDS_A, {**AGGR, "local_id": "hq.example.net"})  # b: any remote id
        a.engine.initiate("gw", 0.0, "net")
        (am1,) = a.drain()
        msg = decode_v1(am1.data)
        msg = replace(
            msg,
            payloads=[
                replace(p, id_type=id_type, data=data) if isinstance(p, V1Id) else p
                for p in msg.payloads
            ],
        )
        b.engine.receive_datagram(encode_v1(msg), am1.src, am1.dst, 0.0)  # raises nothing
        b.drain()
    assert "evil\n" not in caplog.text and "\x1b" not in caplog.text
