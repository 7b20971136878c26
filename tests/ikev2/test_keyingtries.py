"""keyingtries (strongSwan's meaning): an initiation whose retransmission sequence goes
unanswered starts again with a new IKE SA, up to keyingtries sequences in all; an answered
error is final. keyingtries = 0 (pike's own): until it works, answered errors too, each
attempt at least the backoff (10 s doubling, at most 120 s) after the one before. Fake
clock, exact attempts and times."""

from __future__ import annotations

import pytest

from pike.sa.actions import IkeSaDeleted
from pike.wire.codec import decode_message
from pike.wire.constants import ExchangeType

from .pair import Node, conf, engine, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
SEQUENCE = 165.06112  # strongSwan's defaults: 4 s x 1.8^n, 5 retransmits, then give up
FAST = 'retransmit_timeout = "1s"\nretransmit_base = 2.0\nretransmit_tries = 2'  # 1+2+4 = 7 s


def _run_alone(node: Node, until: float) -> list[tuple[float, bytes, int]]:
    """Step the clock with no peer; (time, IKE SPI_i, exchange) of every datagram sent."""
    sent: list[tuple[float, bytes, int]] = []
    now = 0.0
    while True:
        for d in node.drain():
            msg = decode_message(d.data)
            sent.append((now, msg.spi_i, msg.exchange))
        t = node.engine.get_timer()
        if t is None or t > until:
            return sent
        now = t
        node.engine.handle_timer(now)


def _attempts(sent: list[tuple[float, bytes, int]]) -> list[float]:
    """When each new IKE SA sent its first IKE_SA_INIT."""
    first: dict[bytes, float] = {}
    for t, spi, exchange in sent:
        assert exchange == ExchangeType.IKE_SA_INIT
        first.setdefault(spi, t)
    return sorted(first.values())


@pytest.mark.parametrize(("tries", "expected"), [(1, 1), (3, 3)])
def test_unanswered_initiation_is_retried_keyingtries_times(
    tries: int, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    a = Node(engine(conf(*A, extra_conn=f"keyingtries = {tries}"), 1))
    a.engine.initiate("gw", 0.0)
    sent = _run_alone(a, 10_000.0)
    starts = _attempts(sent)
    assert starts == pytest.approx([i * SEQUENCE for i in range(expected)])
    assert len(sent) == 6 * expected  # each sequence: the request and 5 retransmits
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None  # then it gives up
    gone = [e for e in a.events if isinstance(e, IkeSaDeleted)]
    assert [g.reason for g in gone] == ["retransmit_timeout"] * expected
    gave_up = [r.getMessage() for r in caplog.records if "giving up after" in r.getMessage()]
    assert (
        len(gave_up) == 1 and f"after {expected} attempt(s) (keyingtries = {tries})" in gave_up[0]
    )


def test_keyingtries_zero_keeps_trying() -> None:
    a = Node(engine(conf(*A, extra_conn="keyingtries = 0", extra_daemon=FAST), 1))
    a.engine.initiate("gw", 0.0)
    sent = _run_alone(a, 400.0)
    # each sequence takes 7 s; the backoff spaces the starts by 10, 20, 40, 80, then 120 s
    assert _attempts(sent) == pytest.approx([0.0, 10.0, 30.0, 70.0, 150.0, 270.0, 390.0])
    assert a.engine.get_timer() == 510.0  # and still at it


def test_retry_reaches_a_peer_that_comes_back() -> None:
    a_text = conf(*A, extra_conn="keyingtries = 0", extra_daemon=FAST)
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0, "net")
    sent = _run_alone(a, 25.0)  # the peer is away: attempts at 0 and 10
    assert _attempts(sent) == pytest.approx([0.0, 10.0])
    assert a.engine.get_timer() == 30.0  # the second gave up at 17; the third waits
    a.engine.handle_timer(30.0)
    transfer(a, b, 30.0)  # ... and the peer answers it
    assert a.sa().state == b.sa().state == "ESTABLISHED"
    assert [c.name for c in a.sa().children] == ["net"]


@pytest.mark.parametrize("tries", [1, 3])
def test_answered_error_is_not_retried(tries: int) -> None:
    a_text = conf(*A, extra_conn=f"keyingtries = {tries}", extra_daemon=FAST)
    b_text = conf(
        *B,
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        proposals='"aes256gcm16-prfsha384-ecp384"',
    )
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)  # <-- N(NO_PROPOSAL_CHOSEN)
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None


def test_answered_error_is_retried_after_the_backoff_with_keyingtries_0() -> None:
    """A head office that refuses now may be fixed later: with keyingtries = 0 a refused
    attempt starts again after the backoff, and comes up once the peer agrees."""
    a_text = conf(*A, extra_conn="keyingtries = 0", extra_daemon=FAST)
    refusing = conf(
        *B,
        local_ts='"10.2.0.0/24"',
        remote_ts='"10.1.0.0/24"',
        proposals='"aes256gcm16-prfsha384-ecp384"',
    )
    a, b = make_pair(a_text, refusing)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)  # <-- N(NO_PROPOSAL_CHOSEN)
    assert a.engine.list_sas() == [] and a.engine.get_timer() == 10.0
    a.engine.handle_timer(10.0)
    transfer(a, b, 10.0)  # refused again: the next one waits 20 s
    assert a.engine.list_sas() == [] and a.engine.get_timer() == 30.0
    fixed = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    _, b = make_pair(a_text, fixed)
    a.engine.handle_timer(30.0)
    transfer(a, b, 30.0)
    assert a.sa().state == b.sa().state == "ESTABLISHED"


def test_dpd_restart_retries_keyingtries_times() -> None:
    a_text = conf(*A, extra_conn='dpd_delay = "30s"\ndpd_action = "restart"\nkeyingtries = 3')
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    a, b = make_pair(a_text, b_text)
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    assert a.sa().state == "ESTABLISHED"
    a.drain()
    sent = _run_alone(a, 10_000.0)  # the peer is dead from now on
    inits = [(t, spi) for t, spi, x in sent if x == ExchangeType.IKE_SA_INIT]
    starts = sorted({spi: t for t, spi in reversed(inits)}.values())
    dead = 30.0 + SEQUENCE  # the DPD probe and its retransmits go unanswered
    assert starts == pytest.approx([dead, dead + SEQUENCE, dead + 2 * SEQUENCE])
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None
