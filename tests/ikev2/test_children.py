"""CHILD_SA negotiation: narrowing, refusals, transport mode, UDP encapsulation."""

from __future__ import annotations

from pike.sa.actions import ChildSaFailed, InstallChildSa
from pike.wire.codec import decode_message, decrypt_message
from pike.wire.constants import NotifyType

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


def test_responder_narrows_wide_selectors() -> None:
    a_text = conf(*A, local_ts='"10.1.0.0/16"', remote_ts='"10.0.0.0/8"')
    b_text = conf(*B, local_ts='"10.2.3.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (ca,) = a.sa().children
    (cb,) = b.sa().children
    assert ca.local_ts == ("10.1.0.0/24",) and ca.remote_ts == ("10.2.3.0/24",)
    assert cb.local_ts == ("10.2.3.0/24",) and cb.remote_ts == ("10.1.0.0/24",)


def test_disjoint_selectors_answered_ts_unacceptable_ike_sa_stays() -> None:
    a_text = conf(*A, local_ts='"10.1.0.0/24"', remote_ts='"10.9.0.0/24"')
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert b.sa().children == () and a.sa().children == ()
    resp = b.outbox[-1]
    sa_b = next(iter(b.engine.sas.values()))
    assert sa_b.cipher_out is not None and sa_b.cipher_in is not None
    # Decrypt the answer as the initiator would:
    # IKE_AUTH response [ IDr AUTH N(MOBIKE_SUP) N(NO_ADD_ADDR) N(TS_UNACCEPT) ]
    sa_a = next(iter(a.engine.sas.values()))
    assert sa_a.cipher_in is not None
    msg = decrypt_message(resp.data, decode_message(resp.data), sa_a.cipher_in)
    assert [type(p).__name__ for p in msg.payloads] == [
        "IdrPayload",
        "AuthPayload",
        "NotifyPayload",
        "NotifyPayload",
        "NotifyPayload",
    ]
    assert msg.notify(NotifyType.MOBIKE_SUPPORTED) is not None
    assert msg.notify(NotifyType.TS_UNACCEPTABLE) is not None
    (failed,) = a.of(ChildSaFailed)
    assert isinstance(failed, ChildSaFailed) and "TS_UNACCEPTABLE" in failed.reason


def test_no_common_esp_proposal_answered_no_proposal_chosen() -> None:
    a_text = conf(*A, esp='"aes256-sha512"')
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == "ESTABLISHED" and a.sa().children == ()
    (failed,) = a.of(ChildSaFailed)
    assert isinstance(failed, ChildSaFailed) and "NO_PROPOSAL_CHOSEN" in failed.reason


def test_no_common_ike_proposal_fails_ike_sa_init() -> None:
    a_text = conf(*A, proposals='"aes256-sha384-ecp384"')
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []
    msg = decode_message(b.outbox[-1].data)
    assert msg.notify(NotifyType.NO_PROPOSAL_CHOSEN) is not None


def test_transport_mode_when_both_want_it() -> None:
    a_text = conf(*A, local_ts='"192.0.2.1/32"', remote_ts='"192.0.2.2/32"', mode="transport")
    b_text = conf(*B, local_ts='"192.0.2.2/32"', remote_ts='"192.0.2.1/32"', mode="transport")
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    (ia,) = a.of(InstallChildSa)
    assert isinstance(ia, InstallChildSa)
    assert ia.outbound.mode == "transport" and a.sa().children[0].mode == "TRANSPORT"
    assert sorted(p.direction for p in ia.policies) == ["in", "out"]
    assert str(ia.outbound.src_ts) == "192.0.2.1/32"


def test_tunnel_when_only_we_want_transport() -> None:
    a_text = conf(*A, mode="transport")
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().children[0].mode == "TUNNEL" and b.sa().children[0].mode == "TUNNEL"


def test_forced_encapsulation_floats_to_4500_and_encapsulates_esp() -> None:
    a_text = conf(*A, extra_conn="encap = true")
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    auth_req = a.outbox[1]
    assert auth_req.src == ("192.0.2.1", 4500) and auth_req.dst == ("192.0.2.2", 4500)
    assert a.sa().local == ("192.0.2.1", 4500) and b.sa().remote == ("192.0.2.1", 4500)
    assert b.sa().nat_remote and not a.sa().nat_remote
    (ia,) = a.of(InstallChildSa)
    (ib,) = b.of(InstallChildSa)
    assert isinstance(ia, InstallChildSa) and isinstance(ib, InstallChildSa)
    assert ia.outbound.encap is not None and ia.outbound.encap.sport == 4500
    assert ib.inbound.encap is not None and ib.outbound.encap is not None
