"""Bounded work before authentication (issue 13, pike.sa.admission): per-address
half-open limits, COOKIEs bound to address and port, no amplification from a fake
retransmission, and fragments only where negotiated, expected and small enough."""

from __future__ import annotations

from pike.sa.actions import SendDatagram
from pike.wire.codec import decode_message, encode_message
from pike.wire.constants import NotifyType
from pike.wire.payloads import NotifyPayload

from .pair import Node, conf, deliver, make_pair, transfer
from .test_fragments import big_pair

B_TEXT = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


def responder(extra: str = "") -> tuple[Node, Node]:
    b = conf(*B_TEXT, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"', extra_daemon=extra)
    return make_pair(None, b)


def init_from(a: Node) -> SendDatagram:
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    return init


def with_spi(data: bytes, n: int) -> bytes:
    return n.to_bytes(8, "big") + data[8:]


def cookie_of(d: SendDatagram) -> bytes | None:
    n = decode_message(d.data).notify(NotifyType.COOKIE)
    return n.data if n is not None else None


def echo(data: bytes, cookie: bytes) -> bytes:
    msg = decode_message(data)
    msg.payloads.insert(0, NotifyPayload(NotifyType.COOKIE, cookie))
    return encode_message(msg)


def test_header_only_retransmission_is_not_answered() -> None:
    """The cached IKE_SA_INIT response went to anyone who sent the 28-byte header of a
    half-open SA's request with its SPIi: a reflection of up to x22."""
    a, b = make_pair()
    init = init_from(a)
    (resp,) = deliver([init], b, 0.0)
    header_only = init.data[:24] + (28).to_bytes(4, "big")
    assert deliver([SendDatagram(header_only, init.src, init.dst)], b, 0.0) == []
    assert b.engine.ctx.counters.dropped == {"retransmit_mismatch": 1}
    (again,) = deliver([init], b, 0.0)  # the very same request: the very same answer
    assert again.data == resp.data


def test_a_cookie_echoing_source_is_blocked_at_block_threshold() -> None:
    """One address that echoes COOKIEs held 788 half-open SAs in 2 s; now at most
    block_threshold unproven plus block_threshold proven ones."""
    a, b = responder()
    init = init_from(a)
    held, cookies = 0, 0
    for n in range(1, 41):
        data = with_spi(init.data, n)
        answers = deliver([SendDatagram(data, init.src, init.dst)], b, float(n) / 100)
        cookie = cookie_of(answers[0]) if answers else None
        if cookie is not None:
            cookies += 1
            deliver([SendDatagram(echo(data, cookie), init.src, init.dst)], b, 0.5)
        held = len(b.engine.list_sas())
    assert held == 10  # 5 before it had to prove its address, 5 after
    assert cookies == 5
    assert b.engine.ctx.counters.dropped["half_open_blocked"] == 30
    assert b.engine.ctx.admission.half_open == 10
    b.engine.handle_timer(31.0)
    b.drain()
    assert b.engine.list_sas() == [] and b.engine.ctx.admission.half_open == 0


def test_spoofed_requests_with_a_peers_address_do_not_lock_it_out() -> None:
    a, b = responder()
    init = init_from(a)
    for n in range(1, 6):  # spoofed: same address, other SPIs, nobody reads the answers
        deliver([SendDatagram(with_spi(init.data, 1000 + n), init.src, init.dst)], b, 0.0)
    (resp,) = deliver([init], b, 0.0)
    assert cookie_of(resp) is not None  # the peer is asked to prove its address ...
    transfer(a, b, 0.0, in_flight=deliver([resp], a, 0.0))
    states = sorted(s.state for s in b.engine.list_sas())
    assert "ESTABLISHED" in states  # ... and gets in
    assert a.sa().state == "ESTABLISHED"


def test_cookie_is_bound_to_the_source_port() -> None:
    a, b = responder("cookie_threshold = 0")
    init = init_from(a)
    (resp,) = deliver([init], b, 0.0)
    cookie = cookie_of(resp)
    assert cookie is not None
    other_port = (init.src[0], 4501)
    got = deliver([SendDatagram(echo(init.data, cookie), other_port, init.dst)], b, 0.0)
    assert cookie_of(got[0]) is not None and b.engine.list_sas() == []
    got = deliver([SendDatagram(echo(init.data, cookie), init.src, init.dst)], b, 0.0)
    assert cookie_of(got[0]) is None and len(b.engine.list_sas()) == 1


def test_cookie_secret_rotates_and_the_previous_one_still_counts() -> None:
    a, b = responder("cookie_threshold = 0")
    init = init_from(a)
    (resp,) = deliver([init], b, 0.0)
    cookie = cookie_of(resp)
    assert cookie is not None
    # 150 s later (one rotation): still accepted.
    got = deliver([SendDatagram(echo(init.data, cookie), init.src, init.dst)], b, 150.0)
    assert cookie_of(got[0]) is None and len(b.engine.list_sas()) == 1
    # 300 s later (two rotations): a new COOKIE instead.
    a, b = responder("cookie_threshold = 0")
    init = init_from(a)
    (resp,) = deliver([init], b, 0.0)
    cookie = cookie_of(resp)
    assert cookie is not None
    late = deliver([SendDatagram(echo(init.data, cookie), init.src, init.dst)], b, 300.0)
    assert cookie_of(late[0]) not in (None, cookie) and b.engine.list_sas() == []


def test_global_half_open_cap_and_init_rate() -> None:
    a, b = responder("cookie_threshold = 1000\nhalf_open_max = 3\nblock_threshold = 100")
    init = init_from(a)
    for n in range(1, 6):
        src = (init.src[0], 1000 + n)
        deliver([SendDatagram(with_spi(init.data, n), src, init.dst)], b, 0.0)
    assert len(b.engine.list_sas()) == 3
    assert b.engine.ctx.counters.dropped == {"half_open_limit": 2}
    a, b = responder("init_rate = 2\nblock_threshold = 100")
    init = init_from(a)
    for n in range(1, 6):
        src = (init.src[0], 1000 + n)
        deliver([SendDatagram(with_spi(init.data, n), src, init.dst)], b, 0.0)
    assert len(b.engine.list_sas()) == 2
    assert b.engine.ctx.counters.dropped == {"init_rate_limit": 3}
    deliver([SendDatagram(with_spi(init.data, 9), (init.src[0], 1009), init.dst)], b, 1.0)
    assert len(b.engine.list_sas()) == 3  # a second later: two more allowed


def test_fragments_only_where_negotiated() -> None:
    from .test_fragments import HOSTS, A

    a_text = conf(*A, local_ts=HOSTS, extra_daemon="fragment_size = 576")
    b_text = conf(
        *B_TEXT,
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        extra_conn="fragmentation = false",
    )
    a, b = make_pair(a_text, b_text)
    init = init_from(a)
    (resp,) = deliver([init], b, 0.0)
    (auth,) = deliver([resp], a, 0.0)  # b did not announce fragmentation: one datagram
    # a fragments anyway (a hostile peer): b drops each fragment, holds nothing.
    (asa,) = a.engine.sas.values()
    asa.frag_peer = True
    from pike.wire.fragments import encode_fragments

    msg = decode_message(auth.data)
    (bsa,) = b.engine.sas.values()
    from pike.wire.codec import decrypt_message

    assert bsa.cipher_in is not None and asa.cipher_out is not None
    plain = decrypt_message(auth.data, msg, bsa.cipher_in)
    frags = encode_fragments(plain, asa.cipher_out, 500)
    assert len(frags) > 1
    for f in frags:
        b.engine.receive_datagram(f, auth.src, auth.dst, 0.0)
    assert b.engine.ctx.counters.dropped == {"fragment_not_negotiated": len(frags)}
    assert not bsa.fragments


def test_reassembled_message_is_capped_at_max_packet() -> None:
    a, b = big_pair()
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (resp,) = deliver([init], b, 0.0)
    frags = deliver([resp], a, 0.0)
    assert len(frags) == 2
    from dataclasses import replace

    cfg = b.engine.ctx.config  # max_packet below one fragment's worth (the loader: >= 1280)
    small = replace(cfg, daemon=replace(cfg.daemon, max_packet=400))
    b.engine.ctx.config = small
    deliver(frags, b, 0.0)
    assert b.engine.ctx.counters.dropped.get("message_too_large", 0) >= 1
    (bsa,) = b.engine.sas.values()
    held = (bsa.fragments or {}).values()
    assert sum(len(c) for _, _, ch in held for c in ch.values()) <= 400
    assert bsa.state.value == "CONNECTING"  # nothing answered: the message never completed


def test_fragment_of_an_unexpected_message_id_is_dropped() -> None:
    a, b = big_pair()
    a.engine.initiate("gw", 0.0)
    (init,) = a.drain()
    (resp,) = deliver([init], b, 0.0)
    (asa,) = a.engine.sas.values()
    asa.tasks.mid_out = 7  # the next request claims message ID 7: b expects 1
    a.engine.handle_timer(0.0)
    frags = deliver([resp], a, 0.0)
    deliver(frags, b, 0.0)
    assert b.engine.ctx.counters.dropped.get("fragment_unexpected_id", 0) == len(frags)
