"""IKEv1 in memory: Main Mode PSK and Quick Mode (with and without PFS), both roles,
retransmission, duplicates, Delete, DPD, rekey, wrong keys."""

from __future__ import annotations

import pytest

from ikev2.pair import Node, deliver, kernel_reports, transfer
from pike.ikev1.isakmp_sa import IsakmpSa
from pike.sa.actions import (
    ChildSaEstablished,
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    InstallChildSa,
)
from pike.wire.isakmp import decode_v1, encode_v1
from pike.wire.isakmp_constants import ExchangeV1, FlagV1
from pike.wire.isakmp_payloads import V1Message, V1Nonce, V1Payload

from .v1pair import A, B, engine, make_pair, v1conf


def _up(a: Node, b: Node, now: float = 0.0) -> None:
    a.engine.initiate("gw", now, "net")
    transfer(a, b, now)


def test_main_mode_psk_and_quick_mode_install_matching_sas() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    # MM1 HDR, SA, VID -->
    mm1 = a.drain()
    assert [decode_v1(d.data).exchange for d in mm1] == [ExchangeV1.MAIN]
    crossed = transfer(a, b, 0.0, in_flight=mm1)
    assert crossed == 9  # MM1-MM6, QM1-QM3
    assert len(a.of(IkeSaEstablished)) == len(b.of(IkeSaEstablished)) == 1
    ia, ib = a.of(InstallChildSa)[0], b.of(InstallChildSa)[0]
    assert isinstance(ia, InstallChildSa) and isinstance(ib, InstallChildSa)
    # the same keys both ways: A's outbound is B's inbound
    assert ia.outbound.spi == ib.inbound.spi and ia.inbound.spi == ib.outbound.spi
    assert ia.outbound.encr_key == ib.inbound.encr_key
    assert ia.outbound.integ_key == ib.inbound.integ_key
    assert ia.inbound.encr_key == ib.outbound.encr_key
    assert len(ia.outbound.encr_key) == 32 and len(ia.outbound.integ_key) == 32
    assert str(ia.policies[0].src_ts) == "10.1.0.0/24"
    sa = a.sa()
    assert (sa.version, sa.state, sa.local_id, sa.remote_id) == (1, "ESTABLISHED", A, B)
    assert sa.children[0].state == "INSTALLED"
    assert sa.children[0].algorithms == "aes256-sha256"
    assert b.sa().children[0].spi_in == sa.children[0].spi_out
    assert len(a.of(ChildSaEstablished)) == len(b.of(ChildSaEstablished)) == 1


def test_quick_mode_with_pfs() -> None:
    kw = {"esp": '"aes128-sha256-modp2048"'}
    a, b = make_pair(kw, kw)
    _up(a, b)
    ia, ib = a.of(InstallChildSa)[0], b.of(InstallChildSa)[0]
    assert isinstance(ia, InstallChildSa) and isinstance(ib, InstallChildSa)
    assert ia.outbound.encr_key == ib.inbound.encr_key and len(ia.outbound.encr_key) == 16
    assert a.sa().children[0].algorithms == "aes128-sha256-modp2048"


def test_wrong_psk_fails_at_mm5_and_nothing_installs() -> None:
    a, b = make_pair(None, {"psk": "some-other-secret-entirely"})
    _up(a, b)
    assert not a.of(InstallChildSa) and not b.of(InstallChildSa)
    assert not b.of(IkeSaEstablished)
    assert (
        b.engine.ctx.counters.dropped.get("decryption_failed", 0)
        + b.engine.ctx.counters.dropped.get("auth_failed", 0)
        >= 1
    )


def test_no_common_proposal_is_refused_in_the_clear() -> None:
    a, b = make_pair(None, {"proposals": '"aes128-sha512-modp4096"'})
    _up(a, b)
    assert b.engine.ctx.counters.dropped == {"no_proposal_chosen": 1}
    deleted = a.of(IkeSaDeleted)
    assert len(deleted) == 1 and deleted[0].reason == "peer_refused"
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []


def test_lost_messages_are_retransmitted_with_backoff() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    a.drain()  # MM1 lost
    assert a.engine.get_timer() == 4.0
    a.engine.handle_timer(4.0)
    mm1 = a.drain()
    assert len(mm1) == 1 and a.engine.get_timer() == 4.0 + 4.0 * 1.8
    mm2 = deliver(mm1, b, 4.0)
    mm3 = deliver(mm2, a, 4.0)
    deliver(mm3, b, 4.0)  # MM4 lost
    a.engine.handle_timer(8.0)
    again = a.drain()
    assert again[0].data == mm3[0].data  # the same bytes: the IV chain has not moved
    mm4 = deliver(again, b, 8.0)
    assert len(mm4) == 1  # B answers the duplicate MM3 with the same MM4
    transfer(a, b, 8.0, in_flight=deliver(mm4, a, 8.0))
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1
    assert a.engine.ctx.counters.retransmits == 2


def test_lost_qm3_makes_the_responder_retransmit_qm2() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    pending = a.drain()
    for _ in range(3):  # MM1..MM6
        pending = deliver(deliver(pending, b, 0.0), a, 0.0)
    qm1 = pending
    qm2 = deliver(qm1, b, 0.0)
    qm3 = deliver(qm2, a, 0.0)
    assert len(qm3) == 1 and len(a.of(InstallChildSa)) == 1  # QM3 lost on the way
    assert b.engine.get_timer() == 4.0
    b.engine.handle_timer(4.0)
    qm2_again = b.drain()
    assert qm2_again[0].data == qm2[0].data
    qm3_again = deliver(qm2_again, a, 4.0)
    assert qm3_again[0].data == qm3[0].data
    deliver(qm3_again, b, 4.0)
    assert len(b.of(InstallChildSa)) == 1 and len(a.of(InstallChildSa)) == 1


def test_unanswered_main_mode_gives_up() -> None:
    a, _ = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    now = 0.0
    while (t := a.engine.get_timer()) is not None and t < 200:
        now = t
        a.engine.handle_timer(now)
    a.drain()
    assert len(a.outbox) == 6  # MM1 and 5 retransmits
    deleted = a.of(IkeSaDeleted)
    assert [d.reason for d in deleted] == ["retransmit_timeout"]
    assert round(now, 2) == round(sum(4.0 * 1.8**n for n in range(6)), 2)


def test_terminate_deletes_phase_2_then_phase_1_at_the_peer() -> None:
    a, b = make_pair()
    _up(a, b)
    a.engine.terminate("gw", 10.0)
    transfer(a, b, 10.0)
    assert len(a.of(DeleteChildSa)) == 1 and len(b.of(DeleteChildSa)) == 1
    assert [d.reason for d in b.of(IkeSaDeleted)] == ["peer_deleted"]
    assert a.engine.list_sas() == [] and b.engine.list_sas() == []


def test_dpd_r_u_there_ack_and_dead_peer() -> None:
    kw = {"extra_conn": "dpd_delay = 30"}
    a, b = make_pair(kw, kw)
    _up(a, b)
    assert a.engine.get_timer() == 30.0
    a.engine.handle_timer(30.0)
    probe = a.drain()
    assert len(probe) == 1 and decode_v1(probe[0].data).exchange == ExchangeV1.INFORMATIONAL
    ack = deliver(probe, b, 30.0)
    deliver(ack, a, 30.0)
    assert not a.sa().dpd_outstanding
    assert a.engine.ctx.counters.dpd_probes == 1
    # now B is gone: probes on the retransmission schedule, then the SA goes
    now = 30.0
    while a.engine.list_sas() and now < 1000:
        t = a.engine.get_timer()
        assert t is not None
        now = t
        a.engine.handle_timer(now)
    a.drain()
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["retransmit_timeout"]
    assert len(a.of(DeleteChildSa)) == 1
    assert a.engine.ctx.counters.conn("gw").dpd_failures == 1


def test_child_rekey_replaces_the_sas_before_expiry() -> None:
    kw = {"extra_child": "rekey_time = 100\nlife_time = 150\nrand_time = 0"}
    a, b = make_pair(kw, kw)
    _up(a, b)
    old = a.sa().children[0]
    a.engine.handle_timer(100.0)
    b.engine.handle_timer(100.0)
    transfer(a, b, 100.0)
    assert len(a.of(InstallChildSa)) == 2
    children_a = a.sa().children
    children_b = b.sa().children
    assert len(children_a) == 1 and children_a[0].spi_in != old.spi_in
    assert len(children_b) == 1 and children_b[0].spi_out == children_a[0].spi_in
    assert len(a.of(DeleteChildSa)) == 1 and len(b.of(DeleteChildSa)) >= 1


def test_garbage_and_duplicates_are_dropped_and_counted() -> None:
    a, b = make_pair()
    _up(a, b)
    b.engine.receive_datagram(b"\x00" * 10, (A, 500), (B, 500), 1.0)
    last = a.outbox[-1]
    b.engine.receive_datagram(last.data, last.src, last.dst, 1.0)  # QM3 again
    dropped = b.engine.ctx.counters.dropped
    assert dropped.get("truncated") == 1
    assert sum(dropped.values()) == 2
    assert b.sa().state == "ESTABLISHED"


def test_malformed_aggressive_mode_is_dropped() -> None:
    _, b = make_pair()
    am1 = encode_v1(
        V1Message(b"i" * 8, bytes(8), ExchangeV1.AGGRESSIVE, 0, 0, [V1Nonce(bytes(16))])
    )
    b.engine.receive_datagram(am1, (A, 500), (B, 500), 0.0)
    assert b.engine.ctx.counters.dropped == {"invalid_syntax": 1}
    assert b.drain() == [] and b.engine.list_sas() == []


def test_dpd_timeout_probes_every_dpd_delay_then_gives_up() -> None:
    kw = {"extra_conn": 'dpd_delay = 10\ndpd_timeout = "35s"'}
    a, b = make_pair(kw, kw)
    _up(a, b)
    a.drain()
    times = []
    while a.engine.list_sas():
        t = a.engine.get_timer()
        assert t is not None and t < 100
        a.engine.handle_timer(t)
        if a.drain():
            times.append(t)
    assert times == [10.0, 20.0, 30.0]  # R-U-THERE every dpd_delay
    deleted = a.of(IkeSaDeleted)
    assert [d.reason for d in deleted] == ["retransmit_timeout"]
    # one probe, retried twice (counted as IKEv2 counts its retransmitted probe)
    c = a.engine.ctx.counters.conn("gw")
    assert (c.dpd_probes, c.retransmits) == (1, 2)


def test_initial_contact_from_a_restarted_peer_removes_the_stale_sa() -> None:
    a, b = make_pair()
    _up(a, b)
    stale = b.sa()
    # A restarts: a new engine with the same config, no memory of the old SA
    a2 = Node(engine(v1conf(A, B), 7))  # type: ignore[arg-type]
    a2.engine.initiate("gw", 50.0, "net")
    transfer(a2, b, 50.0)
    (fresh,) = b.engine.list_sas()
    assert fresh.spi_i != stale.spi_i and fresh.children[0].state == "INSTALLED"
    assert [d.reason for d in b.of(IkeSaDeleted)] == ["initial_contact"]
    assert len(b.of(DeleteChildSa)) == 1


def test_inbound_esp_postpones_dpd() -> None:
    kw = {"extra_conn": "dpd_delay = 30"}
    a, b = make_pair(kw, kw)
    _up(a, b)
    a.drain()
    kernel_reports(a, 30.0, last_use=25.0)  # traffic arrived at 25 s
    a.engine.handle_timer(30.0)
    assert a.drain() == [] and a.engine.get_timer() == 55.0
    kernel_reports(a, 55.0, last_use=25.0)
    a.engine.handle_timer(55.0)  # silence since 25 s: now a probe
    assert len(a.drain()) == 1 and a.engine.ctx.counters.dpd_probes == 1


def test_commit_bit_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 2408 §3.1 / RFC 2409 §5.5: a peer may set the commit bit in Quick Mode; we take
    the exchange as usual (both sides install on QM3 anyway)."""
    a, b = make_pair()
    real_encode = IsakmpSa.encode

    def with_commit(
        self: IsakmpSa, exchange: int, mid: int, payloads: list[V1Payload], **kw: bool
    ) -> bytes:
        data = real_encode(self, exchange, mid, payloads, **kw)
        if exchange == ExchangeV1.QUICK and self.initiator:
            data = data[:19] + bytes([data[19] | FlagV1.COMMIT]) + data[20:]
        return data

    monkeypatch.setattr(IsakmpSa, "encode", with_commit)
    _up(a, b)
    qm1 = next(d for d in a.outbox if decode_v1(d.data).exchange == ExchangeV1.QUICK)
    assert decode_v1(qm1.data).commit
    assert len(a.of(InstallChildSa)) == len(b.of(InstallChildSa)) == 1


def test_peer_rekey_of_a_child_keeps_its_reqid() -> None:
    """IKEv1 has no "this replaces that": a second Quick Mode for the same selectors is the
    peer's rekey; the responder gives it the old pair's reqid (same kernel policies)."""
    a, b = make_pair()
    _up(a, b)
    a.engine.initiate("gw", 1.0, "net")  # already up: nothing new
    (child,) = a.sa().children
    a.engine.rekey("gw", 2.0, "net")
    transfer(a, b, 2.0)
    first, second = b.of(InstallChildSa)
    assert isinstance(first, InstallChildSa) and isinstance(second, InstallChildSa)
    assert first.inbound.reqid == second.inbound.reqid
    assert [p.reqid for p in second.policies] == [first.inbound.reqid] * len(second.policies)
    (gone,) = b.of(DeleteChildSa)
    assert isinstance(gone, DeleteChildSa) and gone.keep_policies
    assert child.spi_in != a.sa().children[0].spi_in


def test_half_open_phase_1s_per_address_are_capped() -> None:
    """block_threshold (5) per address: a sixth MM1 replaces the oldest that never
    answered (IKEv1 has no COOKIE to make a source prove its address)."""
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    (mm1,) = a.drain()
    for i in range(7):
        data = bytes([i + 1]) * 8 + mm1.data[8:]  # other initiator cookies, same address
        b.engine.receive_datagram(data, mm1.src, mm1.dst, 0.0)
    assert len(b.drain()) == 7 and len(b.engine.list_sas()) == 5
    assert b.engine.ctx.counters.dropped == {"half_open_replaced": 2}
    assert b.engine.ctx.admission.half_open == 5
    b.engine.handle_timer(30.0)  # half-open timeout: room again
    assert b.engine.list_sas() == []
    assert b.engine.ctx.admission.half_open == 0


def test_spoofed_mm1s_with_a_peers_address_do_not_lock_it_out() -> None:
    """Issue 13: 5 spoofed MM1 carrying a real peer's address used to block its own MM1s
    for 200 s. Now they are replaced, and the peer's SA, once it answered, is kept."""
    a, b = make_pair()
    a.engine.initiate("gw", 0.0, "net")
    (mm1,) = a.drain()
    for i in range(5):
        b.engine.receive_datagram(bytes([i + 1]) * 8 + mm1.data[8:], mm1.src, mm1.dst, 0.0)
    b.drain()
    (mm2,) = deliver([mm1], b, 0.0)  # the real peer's MM1 replaces a spoofed one
    (mm3,) = deliver([mm2], a, 0.0)
    mm4 = deliver([mm3], b, 0.0)  # it answered at its address: proven
    for i in range(10):  # more spoofed MM1s replace only the unproven ones
        b.engine.receive_datagram(bytes([i + 9]) * 8 + mm1.data[8:], mm1.src, mm1.dst, 0.0)
    b.drain()
    assert b.engine.ctx.admission.half_open == 5
    transfer(a, b, 0.0, in_flight=deliver(mm4, a, 0.0))
    assert a.sa().state == "ESTABLISHED"
    mine = [s for s in b.engine.list_sas() if s.state == "ESTABLISHED"]
    assert len(mine) == 1


def test_spoofed_mm1s_filling_half_open_max_do_not_lock_a_configured_peer_out() -> None:
    """No COOKIE in IKEv1: spoofed MM1s from many addresses fill half_open_max and used to
    refuse every configured peer's MM1 too (half_open_limit) until they timed out, 30 s.
    A peer a connection names passes the global cap; other addresses do not."""
    a, _ = make_pair()
    rw = (  # a roaming connection: the spoofed addresses find one, as on a hub
        '[connections.rw]\nversion = 1\nlocal_addrs = ["192.0.2.2"]\nremote_addrs = ["%any"]\n'
        'proposals = ["aes256-sha256-modp3072"]\nlocal = { auth = "psk", id = "192.0.2.2" }\n'
        'remote = { auth = "psk", id = "%any" }\n[connections.rw.children.c]\n'
        'local_ts = ["10.2.0.0/24"]\nremote_ts = ["10.9.0.0/24"]\n'
        'esp_proposals = ["aes256-sha256"]\n'
    )
    text = v1conf(B, A, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"',
                  extra_daemon="half_open_max = 4")  # fmt: skip
    b = Node(engine(text + "\n" + rw, 2))  # type: ignore[arg-type]
    a.engine.initiate("gw", 0.0, "net")
    (mm1,) = a.drain()
    for i in range(6):  # from six other addresses: four held, two refused
        src = (f"203.0.113.{i + 1}", 500)
        b.engine.receive_datagram(bytes([i + 1]) * 8 + mm1.data[8:], src, mm1.dst, 0.0)
    b.drain()
    assert b.engine.ctx.counters.dropped == {"half_open_limit": 2}
    assert b.engine.ctx.admission.half_open == 4
    transfer(a, b, 0.0, in_flight=[mm1])  # the configured peer, at the cap
    assert a.sa().state == "ESTABLISHED"
    assert b.engine.ctx.counters.dropped == {"half_open_limit": 2}
