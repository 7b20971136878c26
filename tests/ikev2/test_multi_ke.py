"""Post-quantum IKE SAs in memory: RFC 9370 additional key exchanges in IKE_INTERMEDIATE
(RFC 9242), ML-KEM, IntAuth covered by AUTH."""

from __future__ import annotations

import pytest

from pike.crypto.ids import GroupId
from pike.sa.actions import InstallChildSa, SendDatagram
from pike.wire.codec import decode_message, decrypt_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import KePayload

from .pair import Node, conf, deliver, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
HYBRID = '"aes256gcm16-prfsha384-x25519-ke1_mlkem768"'
CLASSIC = '"aes256gcm16-prfsha384-x25519"'


def pair(
    a_props: str, b_props: str, extra_conn: str = "", esp: str = '"aes256gcm16"'
) -> tuple[Node, Node]:
    a = conf(*A, proposals=a_props, extra_conn=extra_conn, esp=esp)
    b = conf(
        *B,
        proposals=b_props,
        esp=esp,
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        extra_conn=extra_conn,
    )
    return make_pair(a, b)


def exchanges(dgrams: list[SendDatagram]) -> list[int]:
    return [decode_message(d.data).exchange for d in dgrams]


def test_hybrid_x25519_mlkem768_runs_one_intermediate_exchange() -> None:
    a, b = pair(HYBRID, HYBRID)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    assert decode_message(init.data).notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED)
    (init_resp,) = deliver([init], b, 0.0)
    assert decode_message(init_resp.data).notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED)
    inter = deliver([init_resp], a, 0.0)
    # on port 4500 from here (MOBIKE), where the non-ESP marker makes the ML-KEM key's
    # message cross fragment_size: one message, perhaps in RFC 7383 fragments
    assert set(exchanges(inter)) == {ExchangeType.IKE_INTERMEDIATE}
    assert inter[0].src[1] == 4500
    assert decode_message(inter[0].data).message_id == 1
    inter_resp = deliver(inter, b, 0.0)
    assert set(exchanges(inter_resp)) == {ExchangeType.IKE_INTERMEDIATE}
    auth = deliver(inter_resp, a, 0.0)
    assert set(exchanges(auth)) == {ExchangeType.IKE_AUTH}
    assert decode_message(auth[0].data).message_id == 2
    transfer(a, b, 0.0, in_flight=auth)
    for node in (a, b):
        info = node.sa()
        assert info.state == "ESTABLISHED"
        assert info.algorithms == "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
    assert a.engine.sas[a.sa().spi_i].addke_done == (GroupId.ML_KEM_768,)
    # the keys changed with the ML-KEM secret: both ends agree on the new ones
    sa_a = a.engine.sas[a.sa().spi_i]
    sa_b = b.engine.sas[b.sa().spi_r]
    assert sa_a.keys is not None and sa_b.keys is not None
    assert sa_a.keys.sk_d == sa_b.keys.sk_d
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1


def test_two_additional_exchanges_and_mlkem1024_with_fragments() -> None:
    props = '"aes256gcm16-prfsha512-x25519-ke1_mlkem1024-ke2_mlkem768"'
    a, b = pair(props, props)
    a.engine.initiate("gw", 0.0)
    seen: list[int] = []
    in_flight = a.drain()
    now = 0.0
    while in_flight:
        seen += exchanges(in_flight)
        for d in in_flight:
            # a 1568-byte key does not fit the default fragment_size: fragments
            assert len(d.data) + 28 <= 1280 or decode_message(d.data).exchange == 34
        target = b if not decode_message(in_flight[0].data).is_response else a
        in_flight = deliver(in_flight, target, now)
    assert seen.count(ExchangeType.IKE_INTERMEDIATE) >= 4  # fragmented requests/responses
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    sa_a = a.engine.sas[a.sa().spi_i]
    assert sa_a.addke_done == (GroupId.ML_KEM_1024, GroupId.ML_KEM_768)


def test_optional_additional_exchange_is_skipped_when_the_peer_has_none() -> None:
    a, b = pair('"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"', CLASSIC)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert a.sa().algorithms == "aes256gcm16-prfsha384-x25519"


def test_classic_fallback_is_picked_by_an_old_peer() -> None:
    a, b = pair(f"{HYBRID}, {CLASSIC}", CLASSIC)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert a.sa().algorithms == "aes256gcm16-prfsha384-x25519"


def test_mlkem_as_the_only_key_exchange() -> None:
    props = '"aes256gcm16-prfsha384-mlkem768"'
    a, b = pair(props, props)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    ke = decode_message(init.data).first(KePayload)
    assert ke is not None and ke.group == GroupId.ML_KEM_768 and len(ke.data) == 1184
    (resp,) = deliver([init], b, 0.0)
    ke = decode_message(resp.data).first(KePayload)
    assert ke is not None and len(ke.data) == 1088  # the ciphertext
    transfer(a, b, 0.0, in_flight=deliver([resp], a, 0.0))
    assert a.sa().state == b.sa().state == "ESTABLISHED"


def test_mandatory_mlkem_against_a_classic_peer_is_refused() -> None:
    a, b = pair(HYBRID, CLASSIC)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []


@pytest.mark.parametrize("tamper_with", ["request", "response"])
def test_a_changed_intermediate_message_fails_auth(tamper_with: str) -> None:
    """IntAuth binds the IKE_INTERMEDIATE messages into AUTH: different ones (here: the
    responder's view of IntAuth altered after the fact) make AUTH fail."""
    a, b = pair(HYBRID, HYBRID)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    inter = deliver(deliver([init], b, 0.0), a, 0.0)
    inter_resp = deliver(inter, b, 0.0)
    sa_b = b.engine.sas[decode_message(inter_resp[0].data).spi_r]
    if tamper_with == "request":
        sa_b.int_auth_i = bytes(len(sa_b.int_auth_i))
    else:
        sa_b.int_auth_r = bytes(len(sa_b.int_auth_r))
    transfer(a, b, 0.0, in_flight=deliver(inter_resp, a, 0.0))
    assert all(s.state != "ESTABLISHED" for s in a.engine.list_sas() + b.engine.list_sas())


def _run(a: Node, b: Node, first: list[SendDatagram], now: float) -> list[int]:
    """Deliver until quiet; the exchange types of the requests, in order."""
    seen: list[int] = []
    in_flight = first
    while in_flight:
        msg = decode_message(in_flight[0].data)
        if not msg.is_response:
            seen.append(msg.exchange)
        sender_is_a = any(d.src[0] == "192.0.2.1" for d in in_flight)
        in_flight = deliver(in_flight, b if sender_is_a else a, now)
    return seen


@pytest.mark.parametrize("who", ["initiator", "responder"])
def test_ike_rekey_runs_the_additional_exchange_in_followup_ke(who: str) -> None:
    props = '"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024"'
    a, b = pair(props, props)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    before = a.sa()
    rekeyer = a if who == "initiator" else b
    rekeyer.engine.rekey("gw", 20.0)
    seen = _run(a, b, rekeyer.drain(), 20.0)
    # CREATE_CHILD_SA, two IKE_FOLLOWUP_KE, then the old IKE SA's delete
    assert seen == [36, 44, 44, 37], seen
    (after_a,) = a.engine.list_sas()
    (after_b,) = b.engine.list_sas()
    assert after_a.state == after_b.state == "ESTABLISHED"
    assert (
        (after_a.spi_i, after_a.spi_r)
        == (after_b.spi_i, after_b.spi_r)
        != (
            before.spi_i,
            before.spi_r,
        )
    )
    assert after_a.algorithms.endswith("-x25519-ke1_mlkem768-ke2_mlkem1024")
    new_a = next(iter(s for s in a.engine.sas.values() if s.spi_i == after_a.spi_i))
    new_b = next(iter(s for s in b.engine.sas.values() if s.spi_i == after_b.spi_i))
    assert new_a.keys is not None and new_b.keys is not None
    assert new_a.keys.sk_d == new_b.keys.sk_d  # SK(0) | Ni | Nr | SK(1) | SK(2) agree
    assert new_a.addke_done == new_b.addke_done == (GroupId.ML_KEM_768, GroupId.ML_KEM_1024)
    # the new SA carries traffic: a child rekey over it
    a.engine.rekey("gw", 30.0, "net")
    transfer(a, b, 30.0)
    assert len(a.of(InstallChildSa)) == 2


def test_child_rekey_with_pfs_runs_the_additional_exchange_in_followup_ke() -> None:
    esp = '"aes256gcm16-x25519-ke1_mlkem768"'
    a, b = pair(HYBRID, HYBRID, esp=esp)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    (first_a,) = a.of(InstallChildSa)
    a.engine.rekey("gw", 20.0, "net")
    seen = _run(a, b, a.drain(), 20.0)
    assert seen == [36, 44, 37], seen  # CREATE_CHILD_SA, IKE_FOLLOWUP_KE, delete of the old
    new_a = a.of(InstallChildSa)[-1]
    new_b = b.of(InstallChildSa)[-1]
    assert new_a is not first_a
    # both ends keyed the new CHILD_SA alike (SK(0) | Ni | Nr | SK(1))
    assert new_a.inbound.encr_key == new_b.outbound.encr_key
    assert new_a.outbound.encr_key == new_b.inbound.encr_key
    assert new_a.inbound.spi == new_b.outbound.spi
    (child,) = [c for c in a.sa().children if c.state == "INSTALLED"]
    assert child.algorithms.endswith("x25519-ke1_mlkem768"), child.algorithms


def test_followup_ke_with_an_unknown_link_is_refused() -> None:
    esp = '"aes256gcm16-x25519-ke1_mlkem768"'
    a, b = pair(HYBRID, HYBRID, esp=esp)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    a.engine.rekey("gw", 20.0, "net")
    resp = deliver(a.drain(), b, 20.0)
    b.engine.sas[b.sa().spi_r].followups = None  # the responder forgot the exchange
    answer = deliver(deliver(resp, a, 20.0), b, 20.0)
    sa_a = a.engine.sas[a.sa().spi_i]

    assert sa_a.cipher_in is not None
    msg = decrypt_message(answer[0].data, decode_message(answer[0].data), sa_a.cipher_in)
    assert msg.notify(NotifyType.STATE_NOT_FOUND) is not None
    deliver(answer, a, 20.0)
    assert len(a.of(InstallChildSa)) == 1  # the rekey failed, the old child stays
    assert a.sa().state == "ESTABLISHED"


def test_stray_intermediate_requests_are_refused() -> None:
    """IKE_INTERMEDIATE without agreed additional exchanges: INVALID_SYNTAX; during setup
    that ends the half-open SA, an established SA stays."""
    a, b = pair(CLASSIC, CLASSIC)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    sa_a = a.engine.sas[a.sa().spi_i]
    msg = sa_a.new_message(ExchangeType.IKE_INTERMEDIATE, sa_a.tasks.mid_out, response=False)
    msg.payloads.append(KePayload(GroupId.ML_KEM_768, bytes(1184)))
    answer = deliver([SendDatagram(sa_a.encode(msg), sa_a.local, sa_a.remote)], b, 1.0)

    assert sa_a.cipher_in is not None
    reply = decrypt_message(answer[0].data, decode_message(answer[0].data), sa_a.cipher_in)
    assert reply.notify(NotifyType.INVALID_SYNTAX) is not None
    assert b.sa().state == "ESTABLISHED"


def test_new_child_in_create_child_sa_runs_the_additional_exchange() -> None:
    """A second CHILD_SA (not a rekey) with PFS + ML-KEM: CREATE_CHILD_SA, IKE_FOLLOWUP_KE."""
    esp = '"aes256gcm16-x25519-ke1_mlkem768"'
    second = '\n[connections.gw.children.voice]\nlocal_ts = ["{}"]\nremote_ts = ["{}"]\n'
    second += f"esp_proposals = [{esp}]\n"
    a_text = conf(*A, proposals=HYBRID, esp=esp) + second.format("10.1.9.0/24", "10.2.9.0/24")
    b_text = conf(
        *B, proposals=HYBRID, esp=esp, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'
    ) + second.format("10.2.9.0/24", "10.1.9.0/24")
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    a.engine.initiate("gw", 5.0, "voice")
    seen = _run(a, b, a.drain(), 5.0)
    assert seen == [36, 44], seen
    voice_a = [c for c in a.sa().children if c.name == "voice"]
    voice_b = [c for c in b.sa().children if c.name == "voice"]
    assert len(voice_a) == len(voice_b) == 1 and voice_a[0].state == "INSTALLED"
    assert voice_a[0].algorithms == "aes256gcm16-x25519-ke1_mlkem768"
    new_a, new_b = a.of(InstallChildSa)[-1], b.of(InstallChildSa)[-1]
    assert new_a.inbound.encr_key == new_b.outbound.encr_key


def test_malformed_ke_in_intermediate_is_refused() -> None:
    """An IKE_INTERMEDIATE whose ML-KEM key has the wrong length: INVALID_SYNTAX, the
    half-open SA ends, nothing crashes."""
    a, b = pair(HYBRID, HYBRID)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    inter = deliver(deliver([init], b, 0.0), a, 0.0)
    sa_a = a.engine.sas[decode_message(inter[0].data).spi_i]
    forged = sa_a.new_message(ExchangeType.IKE_INTERMEDIATE, 1, response=False)
    forged.payloads.append(KePayload(GroupId.ML_KEM_768, bytes(100)))
    answer = deliver([SendDatagram(sa_a.encode(forged), sa_a.local, sa_a.remote)], b, 0.0)
    assert sa_a.cipher_in is not None
    reply = decrypt_message(answer[0].data, decode_message(answer[0].data), sa_a.cipher_in)
    assert reply.notify(NotifyType.INVALID_SYNTAX) is not None
    assert b.engine.list_sas() == []


def test_simultaneous_child_rekeys_with_followup_ke_leave_one_pair() -> None:
    """Both ends rekey the CHILD_SA at once with ML-KEM: the requests cross, then the
    IKE_FOLLOWUP_KE exchanges; the redundant pair (lowest nonce) goes (RFC 7296 §2.8.1)."""
    esp = '"aes256gcm16-x25519-ke1_mlkem768"'
    a, b = pair(CLASSIC, CLASSIC, esp=esp)
    a.engine.initiate("gw", 0.0)
    transfer(a, b, 0.0)
    a.engine.rekey("gw", 5.0, "net")
    b.engine.rekey("gw", 5.0, "net")
    ra, rb = a.drain(), b.drain()
    resp_b, resp_a = deliver(ra, b, 5.0), deliver(rb, a, 5.0)
    out_a, out_b = deliver(resp_b, a, 5.0), deliver(resp_a, b, 5.0)
    transfer(a, b, 5.0, in_flight=out_a)
    transfer(b, a, 5.0, in_flight=out_b)
    ca = [(c.spi_in, c.spi_out) for c in a.sa().children if c.state == "INSTALLED"]
    cb = [(c.spi_out, c.spi_in) for c in b.sa().children if c.state == "INSTALLED"]
    assert len(ca) == 1 and ca == cb, (a.sa().children, b.sa().children)
