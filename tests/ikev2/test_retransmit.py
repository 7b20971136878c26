"""Message IDs, retransmission with exponential backoff, duplicates and reordering."""

from __future__ import annotations

import pytest

from pike.sa.actions import IkeSaDeleted, InstallChildSa
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType

from .pair import deliver, make_pair, nothing_in_flight, transfer

# strongSwan's defaults: 4 s x 1.8^n, 5 retransmits, then give up.
SENDS = [0.0, 4.0, 11.2, 24.16, 47.488, 89.4784]
GIVE_UP = 165.06112  # 89.4784 + 4 * 1.8**5


def test_backoff_schedule_and_give_up_with_exact_timers() -> None:
    a, _ = make_pair()
    a.engine.initiate("gw", 0.0)
    first = a.drain()
    assert len(first) == 1
    now = 0.0
    for i, at in enumerate(SENDS[1:], start=1):
        timer = a.engine.get_timer()
        assert timer == pytest.approx(at)
        a.engine.handle_timer(timer - 0.001)  # not yet
        assert a.drain() == []
        a.engine.handle_timer(timer)
        (again,) = a.drain()
        assert again.data == first[0].data, f"retransmit {i} must be the same bytes"
        now = timer
    assert a.engine.get_timer() == pytest.approx(GIVE_UP)
    a.engine.handle_timer(a.engine.get_timer() or 0.0)
    assert a.drain() == []
    (gone,) = a.of(IkeSaDeleted)
    assert isinstance(gone, IkeSaDeleted) and gone.reason == "retransmit_timeout"
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None
    assert now == pytest.approx(SENDS[-1])


def test_lost_ike_auth_request_is_retransmitted_and_completes() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (init_req,) = a.drain()
    (init_resp,) = deliver([init_req], b, 0.0)
    (auth_req,) = deliver([init_resp], a, 0.0)  # lost on the wire
    assert a.engine.get_timer() == pytest.approx(4.0)
    a.engine.handle_timer(4.0)
    (again,) = a.drain()
    assert again.data == auth_req.data
    transfer(a, b, 4.0, in_flight=[again])
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert nothing_in_flight(a)


def test_lost_response_is_answered_from_cache_without_processing_twice() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (init_req,) = a.drain()
    (init_resp,) = deliver([init_req], b, 0.0)
    (auth_req,) = deliver([init_resp], a, 0.0)
    (auth_resp,) = deliver([auth_req], b, 0.0)  # response lost
    a.engine.handle_timer(4.0)
    (again,) = a.drain()
    (cached,) = deliver([again], b, 4.0)
    assert cached.data == auth_resp.data
    assert len(b.of(InstallChildSa)) == 1  # the duplicate installed nothing
    deliver([cached], a, 4.0)
    assert a.sa().state == "ESTABLISHED" and len(a.of(InstallChildSa)) == 1


def test_duplicate_ike_sa_init_gets_the_same_answer_and_one_sa() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    (r1,) = deliver([req], b, 0.0)
    (r2,) = deliver([req], b, 0.5)
    assert r1.data == r2.data
    assert len(b.engine.list_sas()) == 1


def test_duplicate_and_stale_responses_are_dropped() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (init_req,) = a.drain()
    (init_resp,) = deliver([init_req], b, 0.0)
    (auth_req,) = deliver([init_resp], a, 0.0)
    # The IKE_SA_INIT response arrives a second time, after we moved on: dropped.
    assert deliver([init_resp], a, 0.0) == []
    (auth_resp,) = deliver([auth_req], b, 0.0)
    deliver([auth_resp], a, 0.0)
    deliver([auth_resp], a, 0.0)  # duplicate response: no second establishment
    assert a.sa().state == "ESTABLISHED" and len(a.of(InstallChildSa)) == 1
    assert a.engine.ctx.counters.dropped.get("unexpected_response", 0) >= 1


def test_reordered_requests_out_of_window_are_dropped() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    from pike.ikev2.tasks.ike_delete import Informational

    sa = next(iter(a.engine.sas.values()))
    sa.tasks.queue(Informational(sa, True))
    sa.tasks.initiate(1.0)
    (probe1,) = a.drain()
    (ans1,) = deliver([probe1], b, 1.0)
    deliver([ans1], a, 1.0)
    sa.tasks.queue(Informational(sa, True))
    sa.tasks.initiate(2.0)
    (probe2,) = a.drain()
    # probe2 (id 3) arrives, then a late copy of probe1 (id 2): outside the window of 1,
    # so neither processed nor answered (RFC 7296 §2.3).
    assert decode_message(probe2.data).message_id == 3
    (ans2,) = deliver([probe2], b, 2.0)
    assert deliver([probe1], b, 2.0) == []
    assert b.engine.ctx.counters.dropped["invalid_message_id"] == 1
    # ...while a repeat of the latest request is answered from the cache.
    (again,) = deliver([probe2], b, 2.0)
    assert again.data == ans2.data
    deliver([ans2], a, 2.0)
    assert nothing_in_flight(a)


def test_half_open_responder_sa_expires() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    (req,) = a.drain()
    deliver([req], b, 0.0)
    assert len(b.engine.list_sas()) == 1
    assert b.engine.get_timer() == pytest.approx(30.0)
    b.engine.handle_timer(30.0)
    assert b.engine.list_sas() == []
    assert not b.of(IkeSaDeleted)  # never established: nothing to report


def test_exchange_types_of_a_full_handshake() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    types = [decode_message(d.data).exchange for d in a.outbox]
    assert types == [ExchangeType.IKE_SA_INIT, ExchangeType.IKE_AUTH]
