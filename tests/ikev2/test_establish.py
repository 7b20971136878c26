"""IKE_SA_INIT + IKE_AUTH with PSK and the first CHILD_SA, between two engines in memory."""

from __future__ import annotations

from pike.sa.actions import ChildSaEstablished, IkeSaEstablished, InstallChildSa, SendDatagram
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import KePayload, SaPayload

from .pair import Node, conf, deliver, make_pair, transfer


def establish() -> tuple[Node, Node]:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    assert transfer(a, b) == 4  # IKE_SA_INIT and IKE_AUTH, request and response each
    return a, b


def test_psk_tunnel_established_on_both_sides() -> None:
    a, b = establish()
    sa_a, sa_b = a.sa(), b.sa()
    assert sa_a.state == sa_b.state == "ESTABLISHED"
    assert (sa_a.spi_i, sa_a.spi_r) == (sa_b.spi_i, sa_b.spi_r)
    assert sa_a.initiator and not sa_b.initiator
    assert sa_a.local_id == "branch.example.net" and sa_a.remote_id == "hq.example.net"
    assert sa_b.remote_id == "branch.example.net"
    assert sa_a.algorithms == sa_b.algorithms
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    assert len(a.of(ChildSaEstablished)) == len(b.of(ChildSaEstablished)) == 1


def test_child_sas_mirror_each_other() -> None:
    a, b = establish()
    (ia,) = a.of(InstallChildSa)
    (ib,) = b.of(InstallChildSa)
    assert isinstance(ia, InstallChildSa) and isinstance(ib, InstallChildSa)
    # What one side sends with is what the other receives with.
    assert ia.outbound.spi == ib.inbound.spi and ib.outbound.spi == ia.inbound.spi
    assert ia.outbound.encr_key == ib.inbound.encr_key
    assert ib.outbound.encr_key == ia.inbound.encr_key
    assert ia.outbound.encr_key != ia.inbound.encr_key
    assert len(ia.outbound.encr_key) == 16 + 4  # AES-128 key + GCM salt
    assert str(ia.outbound.src) == "192.0.2.1" and str(ia.outbound.dst) == "192.0.2.2"
    assert ia.inbound.inbound and not ia.outbound.inbound
    dirs = sorted(p.direction for p in ia.policies)
    assert dirs == ["fwd", "in", "out"]
    out = next(p for p in ia.policies if p.direction == "out")
    assert str(out.src_ts) == "10.1.0.0/24" and str(out.dst_ts) == "10.2.0.0/24"
    child = a.sa().children[0]
    assert child.state == "INSTALLED" and child.mode == "TUNNEL"
    assert child.local_ts == ("10.1.0.0/24",) and child.remote_ts == ("10.2.0.0/24",)


def test_first_request_carries_sa_ke_nonce_natd() -> None:
    a, _ = make_pair()
    a.engine.initiate("gw", 0.0)
    (d,) = a.drain()
    assert d.src == ("192.0.2.1", 500) and d.dst == ("192.0.2.2", 500)
    msg = decode_message(d.data)
    assert msg.exchange == ExchangeType.IKE_SA_INIT and msg.message_id == 0
    ke = msg.first(KePayload)
    assert ke is not None and ke.group == 31 and len(ke.data) == 32
    assert msg.first(SaPayload) is not None
    assert msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP) is not None
    assert msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP) is not None


def test_start_action_start_initiates() -> None:
    text = conf("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net", start="start")
    a, b = make_pair(text)
    a.engine.start(0.0)
    transfer(a, b)
    assert a.sa().state == "ESTABLISHED" and a.sa().children[0].state == "INSTALLED"


def test_proposal_strings_negotiate_cbc_and_modp() -> None:
    props = '"aes256-sha256-modp3072"'
    a_text = conf(
        "192.0.2.1",
        "192.0.2.2",
        "branch.example.net",
        "hq.example.net",
        proposals=props,
        esp='"aes256-sha256"',
    )
    b_text = conf(
        "192.0.2.2",
        "192.0.2.1",
        "hq.example.net",
        "branch.example.net",
        proposals=props,
        esp='"aes256-sha256"',
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
    )
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    (ia,) = a.of(InstallChildSa)
    assert isinstance(ia, InstallChildSa)
    assert ia.outbound.encr_id == 12 and ia.outbound.integ_id == 12
    assert len(ia.outbound.encr_key) == 32 and len(ia.outbound.integ_key) == 32


def test_wrong_psk_fails_authentication_on_both_sides() -> None:
    from pike.sa.actions import IkeSaDeleted

    a_text = conf(
        "192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net", psk="wrong-key-123"
    )
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []
    (gone,) = a.of(IkeSaDeleted)
    assert isinstance(gone, IkeSaDeleted) and gone.reason == "auth_failed"
    assert not a.of(InstallChildSa) and not b.of(InstallChildSa)


def test_responder_without_esp_refuses_child_keeps_ike_sa() -> None:
    from pike.sa.actions import ChildSaFailed

    a, b = make_pair(b_esp=False)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert a.sa().children == () and b.sa().children == ()
    assert not a.of(InstallChildSa) and not b.of(InstallChildSa)
    (failed,) = a.of(ChildSaFailed)
    assert isinstance(failed, ChildSaFailed) and "NO_PROPOSAL_CHOSEN" in failed.reason


def test_initiator_without_esp_deletes_the_child_it_cannot_install() -> None:
    a, b = make_pair(a_esp=False)
    a.engine.initiate("gw", 0.0)
    crossed = transfer(a, b)
    assert crossed == 6  # + INFORMATIONAL { D(ESP) } and its answer
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert a.sa().children == () and b.sa().children == ()
    assert not a.of(InstallChildSa)
    (ib,) = b.of(InstallChildSa)
    from pike.sa.actions import DeleteChildSa

    (db,) = b.of(DeleteChildSa)
    assert isinstance(ib, InstallChildSa) and isinstance(db, DeleteChildSa)
    assert db.inbound.spi == ib.inbound.spi


def test_invalid_ke_payload_retry_with_the_group_the_peer_wants() -> None:
    a_text = conf(
        "192.0.2.1",
        "192.0.2.2",
        "branch.example.net",
        "hq.example.net",
        proposals='"aes128gcm16-prfsha256-x25519-modp3072"',
    )
    b_text = conf(
        "192.0.2.2",
        "192.0.2.1",
        "hq.example.net",
        "branch.example.net",
        proposals='"aes128gcm16-prfsha256-modp3072"',
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
    )
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    (resp,) = deliver([req], b, 0.0)
    msg = decode_message(resp.data)
    n = msg.notify(NotifyType.INVALID_KE_PAYLOAD)
    assert n is not None and n.data == (15).to_bytes(2, "big")
    assert b.engine.list_sas() == []  # stateless refusal
    (retry,) = deliver([resp], a, 0.0)
    ke = decode_message(retry.data).first(KePayload)
    assert ke is not None and ke.group == 15
    transfer(a, b, in_flight=[retry])
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert a.sa().algorithms == "aes128gcm16-prfsha256-modp3072"


def test_cookie_round_trip() -> None:
    b_text = conf(
        "192.0.2.2",
        "192.0.2.1",
        "hq.example.net",
        "branch.example.net",
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        extra_daemon="cookie_threshold = 0",
    )
    a, b = make_pair(None, b_text)
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    (resp,) = deliver([req], b, 0.0)
    cookie = decode_message(resp.data).notify(NotifyType.COOKIE)
    assert cookie is not None and b.engine.list_sas() == []
    (retry,) = deliver([resp], a, 0.0)
    first = decode_message(retry.data).payloads[0]
    assert getattr(first, "notify_type", None) == NotifyType.COOKIE and first.data == cookie.data  # type: ignore[union-attr]
    transfer(a, b, in_flight=[retry])
    assert a.sa().state == b.sa().state == "ESTABLISHED"


def test_no_config_for_peer_answers_no_proposal_chosen() -> None:
    a_text = conf("192.0.2.9", "192.0.2.2", "branch.example.net", "hq.example.net")
    a, b = make_pair(a_text)
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    (resp,) = deliver([req], b, 0.0)
    assert decode_message(resp.data).notify(NotifyType.NO_PROPOSAL_CHOSEN) is not None
    deliver([resp], a, 0.0)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []


def _send_types(node: Node) -> list[int]:
    return [decode_message(d.data).exchange for d in node.outbox if isinstance(d, SendDatagram)]
