"""CREATE_CHILD_SA: more children, CHILD_SA and IKE SA rekeying (with PFS), collisions,
rekey timers, DPD — two engines, fake clock, exact expectations."""

from __future__ import annotations

from typing import Any

import pytest

from pike.sa.actions import (
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    InstallChildSa,
    SendDatagram,
)
from pike.wire.codec import decode_message, decrypt_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.payloads import KePayload

from .pair import Node, conf, deliver, kernel_reports, make_pair, nothing_in_flight, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


def up(
    esp: str = '"aes128gcm16"', extra_a: str = "", extra_b: str = "", **kw: Any
) -> tuple[Node, Node]:
    a_text = conf(*A, esp=esp, extra_conn=extra_a, **kw)
    b_text = conf(
        *B, esp=esp, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"', extra_conn=extra_b
    )
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    return a, b


def cross_child_rekeys(a: Node, b: Node, now: float) -> None:
    """Both sides rekey CHILD_SA "net" at once: both requests cross on the wire, then both
    answers, then whatever follows runs to the end (RFC 7296 §2.8.1 collision)."""
    a.engine.rekey("gw", now, "net")
    b.engine.rekey("gw", now, "net")
    ra, rb = a.drain(), b.drain()
    resp_b = deliver(ra, b, now)
    resp_a = deliver(rb, a, now)
    out_a = deliver(resp_b, a, now)
    out_b = deliver(resp_a, b, now)
    transfer(a, b, now, in_flight=out_a)
    transfer(b, a, now, in_flight=out_b)


def installs(node: Node) -> list[InstallChildSa]:
    return [e for e in node.events if isinstance(e, InstallChildSa)]


def deletes(node: Node) -> list[DeleteChildSa]:
    return [e for e in node.events if isinstance(e, DeleteChildSa)]


def exchanges(node: Node) -> list[int]:
    return [decode_message(d.data).exchange for d in node.outbox]


def test_second_child_to_the_same_peer_with_create_child_sa() -> None:
    extra = """
[connections.gw.children.voice]
local_ts = ["10.1.9.0/24"]
remote_ts = ["10.2.9.0/24"]
esp_proposals = ["aes256gcm16"]
"""
    a_text = conf(*A) + extra
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"') + extra.replace(
        '"10.1.9.0/24"]\nremote_ts = ["10.2.9.0/24"]', '"10.2.9.0/24"]\nremote_ts = ["10.1.9.0/24"]'
    )
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    # CREATE_CHILD_SA { SA, Ni, TSi, TSr } -->   <-- { SA, Nr, TSi, TSr }
    a.engine.initiate("gw", 1.0, "voice")
    assert transfer(a, b, 1.0) == 2
    assert exchanges(a)[-1] == ExchangeType.CREATE_CHILD_SA
    names = sorted(c.name for c in a.sa().children)
    assert names == ["net", "voice"] and sorted(c.name for c in b.sa().children) == names
    voice_a = next(i for i in installs(a) if i.child == "voice")
    voice_b = next(i for i in installs(b) if i.child == "voice")
    assert voice_a.outbound.spi == voice_b.inbound.spi
    assert voice_a.outbound.encr_key == voice_b.inbound.encr_key
    assert len(voice_a.outbound.encr_key) == 32 + 4
    assert voice_a.inbound.reqid != installs(a)[0].inbound.reqid


@pytest.mark.parametrize(
    "esp", ['"aes128gcm16"', '"aes128gcm16-x25519"', '"aes256-sha256-modp3072"']
)
def test_child_rekey_make_before_break(esp: str) -> None:
    a, b = up(esp=esp)
    (old_a,) = installs(a)
    (old_b,) = installs(b)
    a.engine.rekey("gw", 10.0, "net")
    # CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr } -->
    (req,) = a.drain()
    (resp,) = deliver([req], b, 10.0)
    # The responder has the new SAs in the kernel before its answer leaves, and still
    # the old ones: both inbound SAs decrypt until the delete.
    new_b = installs(b)[-1]
    assert new_b.inbound.spi != old_b.inbound.spi and not deletes(b)
    assert new_b.inbound.reqid == old_b.inbound.reqid  # same policies
    # <-- { SA, Nr, [KEr,] TSi, TSr }, then INFORMATIONAL { D(ESP old) } -->
    (delete_req,) = deliver([resp], a, 10.0)
    new_a = installs(a)[-1]
    assert new_a.outbound.spi == new_b.inbound.spi and new_a.inbound.spi == new_b.outbound.spi
    assert new_a.outbound.encr_key == new_b.inbound.encr_key
    assert new_a.outbound.encr_key != old_a.outbound.encr_key
    assert not deletes(a)  # make before break: nothing removed yet
    transfer(a, b, 10.0, in_flight=[delete_req])
    (del_a,) = deletes(a)
    (del_b,) = deletes(b)
    assert del_a.inbound.spi == old_a.inbound.spi and del_a.keep_policies
    assert del_b.inbound.spi == old_b.inbound.spi and del_b.keep_policies
    (ca,) = a.sa().children
    (cb,) = b.sa().children
    assert ca.spi_in == new_a.inbound.spi and cb.spi_in == new_b.inbound.spi
    assert ca.state == cb.state == "INSTALLED"
    ke_expected = "-" in esp.strip('"').replace("aes128gcm16", "")
    msg = decode_message(req.data)
    sa = next(iter(a.engine.sas.values()))
    assert sa.cipher_out is not None
    b_sa = next(iter(b.engine.sas.values()))
    assert b_sa.cipher_in is not None
    inner = decrypt_message(req.data, msg, b_sa.cipher_in)
    assert inner.notify(NotifyType.REKEY_SA) is not None
    assert (inner.first(KePayload) is not None) == ke_expected


def test_child_rekey_by_time_with_jitter() -> None:
    a, b = up()
    mine = next(iter(a.engine.sas.values())).children[0]
    peer = next(iter(b.engine.sas.values())).children[0]
    for child in (mine, peer):
        # rekey_time 3600 minus up to rand_time 360; life_time 3960 is the hard end
        assert child.rekey_at is not None and 3240.0 <= child.rekey_at <= 3600.0
        assert child.expire_at == 3960.0
    assert mine.rekey_at != peer.rekey_at  # the jitter keeps the peers apart
    assert a.engine.get_timer() == mine.rekey_at and b.engine.get_timer() == peer.rekey_at
    first, other = (a, b) if (mine.rekey_at or 0) < (peer.rekey_at or 0) else (b, a)
    t = first.engine.get_timer() or 0.0
    first.engine.handle_timer(t)
    assert transfer(first, other, t) == 4  # rekey and delete of the old child
    assert len(installs(a)) == len(installs(b)) == 2
    assert len(deletes(a)) == len(deletes(b)) == 1
    assert [c.state for c in a.sa().children] == ["INSTALLED"]
    assert [c.state for c in b.sa().children] == ["INSTALLED"]
    new = next(iter(first.engine.sas.values())).children[0]
    assert new.rekey_at is not None and new.rekey_at > t + 3000


def test_simultaneous_child_rekey_leaves_one_pair() -> None:
    a, b = up()
    cross_child_rekeys(a, b, 5.0)
    ca = [(c.spi_in, c.spi_out) for c in a.sa().children if c.state == "INSTALLED"]
    cb = [(c.spi_out, c.spi_in) for c in b.sa().children if c.state == "INSTALLED"]
    assert len(ca) == 1 and ca == cb, (a.sa().children, b.sa().children)
    assert nothing_in_flight(a) and nothing_in_flight(b)


def test_ike_rekey_moves_children() -> None:
    a, b = up()
    before_a = a.sa()
    a.engine.rekey("gw", 20.0)
    # CREATE_CHILD_SA { SA(IKE), Ni, KEi } -->  <-- { SA, Nr, KEr }, then D(IKE old) on the old SA
    transfer(a, b, 20.0)
    (after_a,) = a.engine.list_sas()
    (after_b,) = b.engine.list_sas()
    assert after_a.state == after_b.state == "ESTABLISHED"
    assert (after_a.spi_i, after_a.spi_r) == (after_b.spi_i, after_b.spi_r)
    assert after_a.spi_i != before_a.spi_i
    assert [c.spi_in for c in after_a.children] == [c.spi_in for c in before_a.children]
    assert not deletes(a) and not deletes(b)  # children were not touched
    gone = [e for e in a.events if isinstance(e, IkeSaDeleted)]
    assert [g.reason for g in gone] == ["rekeyed"]
    assert len([e for e in b.events if isinstance(e, IkeSaEstablished)]) == 2
    # the new SA works: a child rekey over it
    a.engine.rekey("gw", 30.0, "net")
    transfer(a, b, 30.0)
    assert len(installs(a)) == 2 and len(deletes(a)) == 1


def test_ike_rekey_then_delete_over_new_sa() -> None:
    a, b = up()
    b.engine.rekey("gw", 20.0)  # the responder rekeys: roles swap on the new SA
    transfer(b, a, 20.0)
    assert a.sa().initiator is False and b.sa().initiator is True
    a.engine.terminate("gw", 25.0)
    transfer(a, b, 25.0)
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []
    assert len(deletes(a)) == 1 and len(deletes(b)) == 1


def test_pfs_group_mismatch_is_retried_with_invalid_ke() -> None:
    b_text = conf(
        *B, esp='"aes128gcm16-modp3072"', local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"'
    )
    a_text = conf(*A, esp='"aes128gcm16-x25519-modp3072"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    a.engine.rekey("gw", 5.0, "net")
    crossed = transfer(a, b, 5.0)
    # rekey { KE x25519 } <-- N(INVALID_KE_PAYLOAD 15); rekey { KE modp3072 } <-- ok; delete
    assert crossed == 6
    new = installs(a)[-1]
    assert new.inbound.spi == a.sa().children[0].spi_in


DPD = 'dpd_delay = "30s"'


def test_dpd_probe_only_when_idle_and_answered() -> None:
    a, b = up(extra_a=DPD)
    assert a.engine.get_timer() == 30.0
    a.engine.handle_timer(30.0)
    (probe,) = a.drain()
    assert decode_message(probe.data).exchange == ExchangeType.INFORMATIONAL
    assert a.engine.ctx.counters.dpd_probes == 1
    transfer(a, b, 30.0, in_flight=[probe])
    assert a.sa().state == "ESTABLISHED" and nothing_in_flight(a)
    assert a.engine.get_timer() == 60.0  # dpd_delay after the answer


def test_dpd_esp_activity_postpones_the_probe() -> None:
    a, _b = up(extra_a=DPD)
    kernel_reports(a, 30.0, last_use=25.0)  # inbound ESP 5 s ago, as the kernel counted it
    a.engine.handle_timer(30.0)
    assert a.drain() == []
    assert a.engine.get_timer() == 55.0


@pytest.mark.parametrize("action", ["clear", "restart"])
def test_dead_peer_detected(action: str) -> None:
    a, _b = up(extra_a=f'{DPD}\ndpd_action = "{action}"')
    a.engine.handle_timer(30.0)
    a.drain()  # the probe is lost: the peer is dead
    now = 30.0
    while a.engine.list_sas() and a.engine.list_sas()[0].state == "ESTABLISHED":
        now = a.engine.get_timer() or now
        a.engine.handle_timer(now)
        a.drain()
    assert now == pytest.approx(30.0 + 165.06112)
    (gone,) = [e for e in a.events if isinstance(e, IkeSaDeleted)]
    assert gone.reason == "retransmit_timeout"
    assert len(deletes(a)) == 1
    if action == "clear":
        assert a.engine.list_sas() == []
    else:
        (again,) = a.engine.list_sas()
        assert again.state == "CONNECTING"
        sent = a.outbox[-1]
        assert isinstance(sent, SendDatagram)
        assert decode_message(sent.data).exchange == ExchangeType.IKE_SA_INIT
