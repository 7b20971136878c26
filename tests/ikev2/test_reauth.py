"""IKEv2 reauthentication (reauth_time): a new IKE SA from scratch, make-before-break —
two engines, fake clock, exact expectations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pike.crypto.ids import EncrId
from pike.ikev2.ike_sa import IkeSa
from pike.policy.ipsec import Lifetime
from pike.sa.actions import (
    Action,
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    InstallChildSa,
    InstallInboundSa,
    RemoveInboundSa,
    SendDatagram,
    SignRequest,
)
from pike.wire.codec import decode_message, decrypt_message
from pike.wire.constants import ExchangeType, NotifyType
from pike.wire.header import decode_header

from .pair import Node, conf, deliver, make_pair, nothing_in_flight, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
VOICE_A = """
[connections.gw.children.voice]
local_ts = ["10.1.9.0/24"]
remote_ts = ["10.2.9.0/24"]
esp_proposals = ["aes128gcm16"]
"""
VOICE_B = (
    VOICE_A.replace("10.1.9", "10.X.9").replace("10.2.9", "10.1.9").replace("10.X.9", "10.2.9")
)


def up(
    extra_a: str = 'reauth_time = "20m"', voice: bool = False, esp: str = '"aes128gcm16"'
) -> tuple[Node, Node]:
    a_text = conf(*A, extra_conn=extra_a, esp=esp)
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    if voice:
        a_text = a_text.replace("[secrets.gw]", VOICE_A + "\n[secrets.gw]")
        b_text = b_text.replace("[secrets.gw]", VOICE_B + "\n[secrets.gw]")
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    if voice:
        a.engine.initiate("gw", 0.0, "voice")
        transfer(a, b)
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    return a, b


def only_sa(node: Node) -> IkeSa:
    (sa,) = node.engine.sas.values()
    return sa


def reauth_now(a: Node) -> float:
    t = only_sa(a).reauth_at
    assert t is not None
    a.engine.handle_timer(t)
    return t


def order(node: Node) -> list[str]:
    """The kernel-facing actions in order: +name (install), -name (delete), ike-."""
    out = []
    for e in node.events:
        if isinstance(e, InstallChildSa):
            out.append(f"+{e.child}:{e.inbound.spi:08x}")
        elif isinstance(e, DeleteChildSa):
            out.append(f"-{e.child}:{e.inbound.spi:08x}")
        elif isinstance(e, IkeSaDeleted):
            out.append(f"ike-{e.unique_id}:{e.reason}")
    return out


def test_reauth_time_with_jitter_only_on_the_side_that_has_it() -> None:
    a, b = up()
    # reauth_time 1200 s minus up to rand_time: strongSwan's default, over_time (10 % of
    # reauth_time, 120 s; rekey_time defaults to 0 with reauth_time, so no IKE rekey).
    t = only_sa(a).reauth_at
    assert t is not None and 1080.0 <= t <= 1200.0
    assert only_sa(a).rekey_at is None
    assert only_sa(b).reauth_at is None
    assert a.engine.get_timer() == t
    a.engine.handle_timer(t - 0.001)
    assert a.drain() == []
    a.engine.handle_timer(t)
    (init,) = a.drain()
    hdr = decode_header(init.data)
    assert hdr.exchange == ExchangeType.IKE_SA_INIT and not hdr.is_response
    assert hdr.spi_i != only_sa(b).spi_i
    assert len(a.engine.sas) == 2


def test_reauth_make_before_break_new_spis_old_deleted_last() -> None:
    a, b = up(voice=True)
    old_a, old_b = only_sa(a), only_sa(b)
    old_spis = (old_a.spi_i, old_a.spi_r)
    old_in = {c.name: c.spi_in for c in old_a.children}
    old_in_b = {c.name: c.spi_in for c in old_b.children}
    reqids = {c.name: c.reqid for c in old_a.children}
    reqids_b = {c.name: c.reqid for c in old_b.children}
    a.events.clear()
    b.events.clear()
    t = reauth_now(a)
    # IKE_SA_INIT, IKE_AUTH (+net), CREATE_CHILD_SA (+voice), INFORMATIONAL D(IKE old)
    transfer(a, b, t)
    new_a, new_b = only_sa(a), only_sa(b)
    assert (new_a.spi_i, new_a.spi_r) == (new_b.spi_i, new_b.spi_r) != old_spis
    assert new_a.initiator and new_a.state.value == "ESTABLISHED" == new_b.state.value
    assert old_a.state.value == old_b.state.value == "DESTROYED"
    ca = {c.name: c for c in new_a.children}
    cb = {c.name: c for c in new_b.children}
    assert sorted(ca) == sorted(cb) == ["net", "voice"]
    for name in ca:
        assert ca[name].state.value == "INSTALLED"
        assert ca[name].spi_in == cb[name].spi_out and ca[name].spi_out == cb[name].spi_in
        assert ca[name].spi_in != old_in[name]
        assert ca[name].reqid == reqids[name]  # same policies in the kernel
    for node, new, old, gone in ((a, ca, old_a, old_in), (b, cb, old_b, old_in_b)):
        steps = order(node)
        # both new children in before anything old goes; the old IKE SA goes last
        assert steps[:2] == [f"+net:{new['net'].spi_in:08x}", f"+voice:{new['voice'].spi_in:08x}"]
        assert sorted(steps[2:4]) == sorted(f"-{n}:{spi:08x}" for n, spi in gone.items())
        why = "peer_deleted" if node is b else "reauthenticated"
        assert steps[4] == f"ike-{old.unique_id}:{why}"
        assert len(steps) == 5, steps
        assert all(d.keep_policies for d in node.events if isinstance(d, DeleteChildSa))
    # The responder reuses the old reqids (the kernel's policy templates stay valid for
    # packets of the old SAs) and holds its new outbound SAs back until the old ones go:
    # the initiator installs its new inbound SAs only once our IKE_AUTH answer is in.
    assert {c.name: c.reqid for c in new_b.children} == reqids_b
    for e in b.events:
        if isinstance(e, InstallChildSa):
            assert e.defer_outbound
    kernel = ("InstallChildSa", "InstallOutboundSa", "DeleteChildSa")
    kinds = [type(e).__name__ for e in b.events if type(e).__name__ in kernel]
    assert kinds[:2] == ["InstallChildSa", "InstallChildSa"]
    assert kinds[2:6] == ["InstallOutboundSa", "DeleteChildSa"] * 2, kinds
    # the initiator's new outbound SAs go in at once
    assert not any(e.defer_outbound for e in a.events if isinstance(e, InstallChildSa))
    established = [e for e in a.events if isinstance(e, IkeSaEstablished)]
    assert len(established) == 1 and not established[0].rekey
    assert nothing_in_flight(a) and nothing_in_flight(b)


def test_reauth_sends_no_initial_contact() -> None:
    a, b = up()
    t = reauth_now(a)
    (init,) = a.drain()
    (init_resp,) = deliver([init], b, t)
    (auth,) = deliver([init_resp], a, t)
    hdr = decode_header(auth.data)
    peer = b.engine.sas[hdr.spi_r]
    assert peer.cipher_in is not None
    msg = decode_message(auth.data)
    inner = decrypt_message(auth.data, msg, peer.cipher_in)
    assert inner.exchange == ExchangeType.IKE_AUTH
    assert inner.notify(NotifyType.INITIAL_CONTACT) is None
    deliver([auth], b, t)
    # the responder kept the old IKE SA (INITIAL_CONTACT would have removed it)
    assert len(b.engine.sas) == 2
    assert all(sa.state.value == "ESTABLISHED" for sa in b.engine.sas.values())


def test_first_ike_auth_still_carries_initial_contact() -> None:
    a_text = conf(*A, extra_conn='reauth_time = "20m"')
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (init_resp,) = deliver([init], b, 0.0)
    (auth,) = deliver([init_resp], a, 0.0)
    peer = b.engine.sas[decode_header(auth.data).spi_r]
    assert peer.cipher_in is not None
    inner = decrypt_message(auth.data, decode_message(auth.data), peer.cipher_in)
    assert inner.notify(NotifyType.INITIAL_CONTACT) is not None


def test_reauth_colliding_with_a_peer_child_rekey() -> None:
    a, b = up()
    t = only_sa(a).reauth_at
    assert t is not None
    # the peer rekeys the CHILD_SA on the old IKE SA as our reauthentication starts
    b.engine.rekey("gw", t, "net")
    a.engine.handle_timer(t)
    ra, rb = a.drain(), b.drain()
    resp_b = deliver(ra, b, t)  # our IKE_SA_INIT
    resp_a = deliver(rb, a, t)  # its CREATE_CHILD_SA on the old SA
    out_a = deliver(resp_b, a, t)
    out_b = deliver(resp_a, b, t)
    transfer(a, b, t, in_flight=out_a)
    transfer(b, a, t, in_flight=out_b)
    new_a, new_b = only_sa(a), only_sa(b)
    assert (new_a.spi_i, new_a.spi_r) == (new_b.spi_i, new_b.spi_r)
    ((ca,), (cb,)) = (new_a.children, new_b.children)
    assert ca.state.value == cb.state.value == "INSTALLED"
    assert (ca.spi_in, ca.spi_out) == (cb.spi_out, cb.spi_in)
    for node in (a, b):
        ins = [e for e in node.events if isinstance(e, InstallChildSa)]
        dels = [e for e in node.events if isinstance(e, DeleteChildSa)]
        # initial + rekey + reauth installed, all but the reauth one deleted again
        assert len(ins) == 3 and len(dels) == 2, order(node)
        assert {d.inbound.spi for d in dels} == {i.inbound.spi for i in ins} - {
            (ca if node is a else cb).spi_in
        }
        assert all(d.keep_policies for d in dels)
    assert nothing_in_flight(a) and nothing_in_flight(b)


def test_child_rekey_timer_is_skipped_while_reauthenticating() -> None:
    a, _b = up()
    old = only_sa(a)
    t = reauth_now(a)
    (child,) = old.children
    child.rekey_at = t + 0.5  # due while the new IKE SA is still being set up
    a.drain()
    a.engine.handle_timer(t + 0.5)
    assert a.drain() == []  # no CREATE_CHILD_SA on the old IKE SA
    assert child.state.value == "INSTALLED"


def test_reauth_survives_ike_rekey_and_fires_at_the_original_time() -> None:
    a, b = up('rekey_time = "10m"\nreauth_time = "20m"')
    first = only_sa(a)
    # jitter: min(10 % of 1200, 600 / 2) = 120 s for both timers
    assert first.rekey_at is not None and 480.0 <= first.rekey_at <= 600.0
    reauth_at = first.reauth_at
    assert reauth_at is not None and 1080.0 <= reauth_at <= 1200.0
    rekey_at = first.rekey_at
    a.engine.handle_timer(rekey_at)
    transfer(a, b, rekey_at)
    rekeyed = only_sa(a)
    assert rekeyed is not first and rekeyed.reauth_at == reauth_at
    # more IKE rekeys may come first (each successor rekeys 480-600 s after it started)
    while (nxt := a.engine.get_timer()) is not None and nxt < reauth_at:
        a.engine.handle_timer(nxt)
        transfer(a, b, nxt)
        rekeyed = only_sa(a)
        assert rekeyed.reauth_at == reauth_at
    assert a.engine.get_timer() == reauth_at
    a.engine.handle_timer(reauth_at)
    transfer(a, b, reauth_at)
    final_a, final_b = only_sa(a), only_sa(b)
    assert final_a is not rekeyed and final_a.spi_i == final_b.spi_i
    assert [c.state.value for c in final_a.children] == ["INSTALLED"]
    # the new IKE SA reauthenticates again reauth_time later (and rekeys before that)
    assert final_a.reauth_at is not None and final_a.reauth_at >= reauth_at + 1080.0


def test_failed_reauth_leaves_the_old_ike_sa() -> None:
    a, _b = up()
    old = only_sa(a)
    spis = [c.spi_in for c in old.children]
    t = reauth_now(a)
    a.drain()  # the IKE_SA_INIT is lost, as are all retransmissions
    now, steps = give_up(a, t)
    assert only_sa(a) is old and old.state.value == "ESTABLISHED"
    assert [c.spi_in for c in old.children] == spis
    assert not [e for e in a.events + steps if isinstance(e, DeleteChildSa)]
    assert old.replaced_by is None and now > t + 100


def in_order(node: Node, now: float) -> list[Action]:
    """``node``'s new actions in the order the runtime would carry them out."""
    out: list[Action] = []
    while (x := node.engine.next_action()) is not None:
        out.append(x)
        if isinstance(x, SignRequest):
            node.sign_requests.append(x)
            node.sign(x, now)
    return out


def give_up(a: Node, t: float) -> tuple[float, list[Action]]:
    """Run ``a``'s timers, nothing answering, until the new IKE SA gives up (the old one
    stays); when that was, and ``a``'s actions meanwhile."""
    now, steps = t, []
    while len(a.engine.sas) == 2:
        nxt = a.engine.get_timer()
        assert nxt is not None and nxt < t + 400
        now = nxt
        a.engine.handle_timer(now)
        steps += in_order(a, now)
    return now, steps


def hand(dgrams: list[Action], to: Node, now: float) -> None:
    for d in dgrams:
        if isinstance(d, SendDatagram):
            to.engine.receive_datagram(d.data, d.src, d.dst, now)


def _reauth_to_ike_auth(a: Node, b: Node) -> tuple[float, list[Action]]:
    """Reauthenticate until our IKE_AUTH request is out; a's actions since IKE_SA_INIT."""
    t = reauth_now(a)
    hand(in_order(a, t), b, t)
    hand(b.drain(), a, t)
    return t, in_order(a, t)


def test_reauth_puts_our_inbound_sa_in_before_ike_auth_goes_out() -> None:
    # The peer (charon) answers IKE_AUTH and sends on its new SA at once: with our inbound
    # SA already in the kernel, nothing of that is dropped.
    a, b = up()
    old_reqid = only_sa(a).children[0].reqid
    t, steps = _reauth_to_ike_auth(a, b)
    kinds = [type(x).__name__ for x in steps]
    (auth,) = [x for x in steps if isinstance(x, SendDatagram)]
    assert decode_header(auth.data).exchange == ExchangeType.IKE_AUTH
    assert kinds.index("InstallInboundSa") < steps.index(auth), kinds
    (ahead,) = [x for x in steps if isinstance(x, InstallInboundSa)]
    # it outlives every retransmission of IKE_AUTH (165.06 s by default), and no more
    assert ahead.inbound.lifetime == Lifetime(hard_seconds=195)
    assert ahead.inbound.reqid == old_reqid  # the old child's policies take it
    hand([auth], b, t)
    hand(b.drain(), a, t)
    steps = in_order(a, t)
    (install,) = [x for x in steps if isinstance(x, InstallChildSa)]
    # the install updates that very SA: same SPI, keys and reqid; the real lifetimes now
    assert replace(install.inbound, lifetime=ahead.inbound.lifetime) == ahead.inbound
    assert install.inbound.lifetime.hard_seconds > 195
    assert not [x for x in steps if isinstance(x, RemoveInboundSa)]


def test_inbound_sa_installed_ahead_goes_when_reauth_fails() -> None:
    a, b = up()
    t, steps = _reauth_to_ike_auth(a, b)
    (ahead,) = [x for x in steps if isinstance(x, InstallInboundSa)]
    now, more = give_up(a, t)  # the IKE_AUTH request and all its retransmissions are lost
    (removed,) = [x for x in more if isinstance(x, RemoveInboundSa)]
    assert not [x for x in steps if isinstance(x, RemoveInboundSa)]
    assert removed.inbound == ahead.inbound
    assert now - t == pytest.approx(165.06112)  # within the SA's own lifetime
    assert only_sa(a).state.value == "ESTABLISHED"  # the old IKE SA and its child stay


TWO_ESP = '"aes128gcm16", "aes256gcm16"'


def _finish(a: Node, b: Node, t: float, steps: list[Action]) -> list[Action]:
    """Deliver the IKE_AUTH request in ``steps``; a's actions for the answer."""
    hand(steps, b, t)
    hand(b.drain(), a, t)
    return in_order(a, t)


def test_with_several_proposals_the_peers_last_choice_goes_in_ahead() -> None:
    # Two ESP proposals: the peer picks; it picked aes128gcm16 for the child being
    # replaced, so that is what goes into the kernel ahead, and it was right.
    a, b = up(esp=TWO_ESP)
    t, steps = _reauth_to_ike_auth(a, b)
    (ahead,) = [x for x in steps if isinstance(x, InstallInboundSa)]
    assert len(ahead.inbound.encr_key) == 16 + 4  # AES-128-GCM key and salt
    after = _finish(a, b, t, steps)
    (install,) = [x for x in after if isinstance(x, InstallChildSa)]
    assert replace(install.inbound, lifetime=ahead.inbound.lifetime) == ahead.inbound
    assert not [x for x in after if isinstance(x, RemoveInboundSa)]


def test_a_wrong_guess_is_replaced_once_the_answer_is_in() -> None:
    # As if the peer had chosen aes256gcm16 last time and now answers aes128gcm16.
    a, b = up(esp=TWO_ESP)
    (old,) = only_sa(a).children
    assert old.chosen is not None
    old.chosen = replace(old.chosen, encr_key_length=256)
    t, steps = _reauth_to_ike_auth(a, b)
    (ahead,) = [x for x in steps if isinstance(x, InstallInboundSa)]
    assert len(ahead.inbound.encr_key) == 32 + 4
    after = _finish(a, b, t, steps)
    kinds = [type(x).__name__ for x in after]
    assert kinds.index("RemoveInboundSa") < kinds.index("InstallChildSa"), kinds
    (removed,) = [x for x in after if isinstance(x, RemoveInboundSa)]
    (install,) = [x for x in after if isinstance(x, InstallChildSa)]
    assert removed.inbound == ahead.inbound
    assert install.inbound.spi == ahead.inbound.spi and len(install.inbound.encr_key) == 20


def test_no_inbound_sa_ahead_when_the_last_choice_is_no_longer_offered() -> None:
    a, b = up(esp=TWO_ESP)
    (old,) = only_sa(a).children
    assert old.chosen is not None
    old.chosen = replace(old.chosen, encr_id=EncrId.CHACHA20_POLY1305, encr_key_length=None)
    _t, steps = _reauth_to_ike_auth(a, b)
    assert not [x for x in steps if isinstance(x, InstallInboundSa)]
    assert [decode_header(x.data).exchange for x in steps if isinstance(x, SendDatagram)] == [
        ExchangeType.IKE_AUTH
    ]
