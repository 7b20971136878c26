"""Bad input: never an exception out of the engine, never state left behind, always counted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pike.sa.actions import MessageDropped

from .pair import Node, deliver, make_pair, transfer


def handshake() -> tuple[Node, Node, list[bytes]]:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    msgs = [d.data for d in a.outbox] + [d.data for d in b.outbox]
    return a, b, msgs


_, _, MESSAGES = handshake()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(MESSAGES)))
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    else:
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(mutated(), st.binary(max_size=200)))
def test_mutated_datagrams_to_fresh_responder_leave_no_state(data: bytes) -> None:
    _, b = make_pair()
    b.engine.receive_datagram(data, ("192.0.2.1", 500), ("192.0.2.2", 500), 0.0)
    b.drain()
    # Whatever was created is half-open and goes away by itself.
    b.engine.handle_timer(31.0)
    b.drain()
    assert b.engine.list_sas() == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_datagrams_never_break_an_established_sa(data: bytes) -> None:
    a, b, _ = handshake()
    for node in (a, b):
        node.engine.receive_datagram(data, ("192.0.2.1", 500), ("192.0.2.2", 500), 1.0)
        node.drain()
    # A mutation may be a valid new IKE_SA_INIT (a new half-open SA); the tunnel stays up.
    for node in (a, b):
        states = [s.state for s in node.engine.list_sas() if s.unique_id == 1]
        assert states == ["ESTABLISHED"]


def test_garbage_is_counted_with_a_reason() -> None:
    _, b = make_pair()
    b.engine.receive_datagram(b"\x00" * 10, ("192.0.2.1", 500), ("192.0.2.2", 500), 0.0)
    b.drain()
    (drop,) = b.of(MessageDropped)
    assert isinstance(drop, MessageDropped) and drop.reason == "truncated"
    assert b.engine.ctx.counters.dropped == {"truncated": 1}


def test_tampered_ike_auth_is_dropped_silently() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    (resp,) = deliver([req], b, 0.0)
    (auth,) = deliver([resp], a, 0.0)
    bad = bytearray(auth.data)
    bad[-1] ^= 0x01  # the ICV
    assert deliver([auth.__class__(bytes(bad), auth.src, auth.dst)], b, 0.0) == []
    assert b.engine.ctx.counters.dropped == {"integrity_check_failed": 1}
    # the genuine retransmission still completes the exchange
    transfer(a, b, 0.0, in_flight=[auth])
    assert a.sa().state == b.sa().state == "ESTABLISHED"


def test_unknown_spi_is_dropped() -> None:
    *_, msgs = handshake()
    _, fresh = make_pair()
    fresh.engine.receive_datagram(msgs[1], ("192.0.2.1", 500), ("192.0.2.2", 500), 0.0)
    fresh.drain()
    assert fresh.engine.ctx.counters.dropped == {"unknown_spi": 1}


def test_unknown_critical_payload_in_ike_sa_init_is_answered() -> None:
    from pike.wire.codec import decode_message, encode_message
    from pike.wire.constants import NotifyType
    from pike.wire.payloads import UnknownPayload

    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    msg = decode_message(req.data)
    msg.payloads.append(UnknownPayload(200, True, b"future"))
    (resp,) = deliver([req.__class__(encode_message(msg), req.src, req.dst)], b, 0.0)
    n = decode_message(resp.data).notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
    assert n is not None and n.data == bytes([200])
    assert b.engine.list_sas() == []
    assert b.engine.ctx.counters.dropped == {"unsupported_critical_payload": 1}


def test_unknown_critical_payload_inside_sk_gets_encrypted_notify() -> None:
    from pike.ikev2.tasks.ike_delete import Informational
    from pike.wire.codec import decode_message, decrypt_message, encode_message
    from pike.wire.constants import NotifyType
    from pike.wire.payloads import UnknownPayload

    a, b, _ = handshake()
    sa = next(iter(a.engine.sas.values()))
    msg = sa.new_message(37, sa.tasks.mid_out, response=False)
    msg.payloads.append(UnknownPayload(201, True, b"x"))
    data = encode_message(msg, sa.cipher_out)
    b.engine.receive_datagram(data, sa.local, sa.remote, 1.0)
    (resp,) = b.drain()
    assert sa.cipher_in is not None
    got = decrypt_message(resp.data, decode_message(resp.data), sa.cipher_in)
    n = got.notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD)
    assert n is not None and n.data == bytes([201])
    assert [s.state for s in b.engine.list_sas()] == ["ESTABLISHED"]
    del Informational
