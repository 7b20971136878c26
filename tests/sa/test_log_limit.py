"""pike.sa.log_limit: the log lines an unauthenticated peer sets off once a message
(drops, half-open SAs and their timeouts) are at most LINES_PER_SECOND a second per
reason, the rest summed up in one "suppressed K similar lines" line; the counters in
metrics stay exact. In IKEv1 as in IKEv2; in memory, on the engines' clock."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import Node, deliver, send_informational, transfer
from pike.ikev1.engine import Ikev1Engine
from pike.sa.actions import IkeSaDeleted
from pike.sa.context import HALF_OPEN_TIMEOUT
from pike.sa.log_limit import LINES_PER_SECOND, LogLimit

from .both import pair

log = logging.getLogger("test.log_limit")


def _said(caplog: pytest.LogCaptureFixture, part: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if part in r.getMessage()]


def test_lines_over_the_limit_are_counted_and_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test.log_limit")
    limit = LogLimit(per_second=3)
    for i in range(10):
        limit.log(log, logging.INFO, "unknown_spi", 100.0 + i * 0.01, "drop %d", i)
    limit.log(log, logging.INFO, "invalid_syntax", 100.5, "other reason")  # its own budget
    assert _said(caplog, "drop") == ["drop 0", "drop 1", "drop 2"]
    assert _said(caplog, "other reason") == ["other reason"]
    assert not _said(caplog, "suppressed")
    limit.log(log, logging.INFO, "unknown_spi", 101.0, "drop %d", 10)  # the next second
    assert _said(caplog, "suppressed") == ["suppressed 7 similar lines (unknown_spi) in one second"]
    assert _said(caplog, "drop")[-1] == "drop 10"
    limit.flush(101.5)  # within the second: nothing to sum up yet, none suppressed
    limit.flush(102.0)
    assert len(_said(caplog, "suppressed")) == 1


def test_a_flood_that_stops_is_summed_up_at_the_next_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test.log_limit")
    limit = LogLimit(per_second=2)
    for _ in range(5):
        limit.log(log, logging.WARNING, "no_config", 7.0, "no connection")
    assert limit.deadline() == 8.0  # when the engines' timer is to call flush
    limit.flush(7.9)
    assert not _said(caplog, "suppressed")
    limit.flush(8.0)
    (summary,) = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert summary.getMessage() == "suppressed 3 similar lines (no_config) in one second"
    assert summary.levelno == logging.WARNING  # at the level of the lines it stands for
    assert limit.deadline() is None  # nothing left to write: no timer for it
    limit.flush(20.0)
    assert len(_said(caplog, "suppressed")) == 1


def test_the_deadline_is_the_soonest_summary_and_lines_within_the_limit_set_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test")
    other = logging.getLogger("test.other")
    limit = LogLimit(per_second=2)
    limit.log(log, logging.INFO, "quiet", 0.0, "one")
    limit.log(log, logging.INFO, "quiet", 0.1, "two")
    assert limit.deadline() is None  # within the limit: no summary, no timer
    for t in (0.5, 0.6, 0.7):
        limit.log(other, logging.INFO, "later", t, "later")
    for t in (0.2, 0.3, 0.4, 0.5):
        limit.log(log, logging.INFO, "sooner", t, "sooner")
    assert limit.deadline() == 1.2  # "sooner" began at 0.2
    limit.flush(1.2)
    assert _said(caplog, "suppressed") == ["suppressed 2 similar lines (sooner) in one second"]
    assert limit.deadline() == 1.5
    # "later" has its next line first: its summary goes with it, the timer has no more to do
    limit.log(other, logging.INFO, "later", 1.5, "later again")
    assert limit.deadline() is None
    summaries = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert [(r.name, r.getMessage()) for r in summaries][1:] == [
        ("test.other", "suppressed 1 similar lines (later) in one second")  # where its lines went
    ]
    limit.flush(5.0)
    assert len(_said(caplog, "suppressed")) == 2


def test_flush_all_writes_every_pending_summary_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """piked stopping: no timer is left to write what a flood's last second held back."""
    caplog.set_level(logging.INFO, "test.log_limit")
    limit = LogLimit(per_second=1)
    for reason in ("half_open_ended", "unknown_spi"):
        for _ in range(4):
            limit.log(log, logging.INFO, reason, 3.0, reason)
    limit.flush(3.5)
    assert not _said(caplog, "suppressed")
    limit.flush_all()
    assert sorted(_said(caplog, "suppressed")) == [
        "suppressed 3 similar lines (half_open_ended) in one second",
        "suppressed 3 similar lines (unknown_spi) in one second",
    ]
    assert limit.deadline() is None
    limit.flush_all()
    limit.flush(10.0)
    assert len(_said(caplog, "suppressed")) == 2


@pytest.mark.parametrize("version", [1, 2])
def test_a_flood_of_junk_logs_a_few_lines_and_counts_every_message(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, _ = pair(version)
    junk = bytes(range(40))  # no IKE header a decoder takes
    for i in range(500):  # 250 a second for two seconds
        a.engine.receive_datagram(junk, ("198.51.100.7", 500), ("192.0.2.1", 500), i / 250)
    dropped = a.engine.ctx.counters.dropped
    assert sum(dropped.values()) == 500
    (reason,) = dropped
    lines = _said(caplog, "dropped")
    assert len(lines) == 2 * LINES_PER_SECOND
    assert "198.51.100.7[500]" in lines[0]
    assert _said(caplog, "suppressed") == [
        f"suppressed {250 - LINES_PER_SECOND} similar lines ({reason}) in one second"
    ]


@pytest.mark.parametrize("version", [1, 2])
def test_a_flood_of_first_messages_logs_a_few_half_open_lines(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """First messages (MM1, IKE_SA_INIT) from one spoofed address, each with its own SPI:
    each makes a half-open SA (or is refused by admission) that times out unanswered."""
    caplog.set_level(logging.INFO)
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    (first,) = a.drain()
    n = 200
    for i in range(n):
        data = (0xC0DE0000 + i).to_bytes(8, "big") + first.data[8:]
        b.engine.receive_datagram(data, ("192.0.2.1", 500), ("192.0.2.2", 500), i / 1000)
    opened = len(b.engine.list_sas())
    refused = sum(b.engine.ctx.counters.dropped.values())
    assert opened >= 1 and opened + refused >= n  # every message ended one way or other
    if isinstance(b.engine, Ikev1Engine):  # every MM1 makes one; the oldest go for them
        assert len(_said(caplog, "Main Mode from")) == LINES_PER_SECOND
        assert b.engine.ctx.counters.dropped == {"half_open_replaced": n - opened}
    # a few kinds of line (made, state, replaced, refused), each at most its budget
    assert len(caplog.records) <= 4 * LINES_PER_SECOND
    caplog.clear()
    b.engine.handle_timer(HALF_OPEN_TIMEOUT + 1.0)
    assert b.engine.list_sas() == []
    timed_out = _said(caplog, "timed out")
    assert len(timed_out) == min(opened, LINES_PER_SECOND)
    b.engine.handle_timer(HALF_OPEN_TIMEOUT + 2.0)  # a second later: the summary
    if opened > LINES_PER_SECOND:
        assert _said(caplog, "suppressed") == [
            f"suppressed {opened - LINES_PER_SECOND} similar lines (half_open_timeout) "
            "in one second"
        ]


@pytest.mark.parametrize("version", [1, 2])
def test_many_half_open_sas_ending_at_once_log_a_few_lines(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """piked stopping (terminate) with a flood's half-open SAs: each ends and is reported,
    a few say so in the log; the SAs that came up are logged as ever."""
    caplog.set_level(logging.INFO)
    roomy = "block_threshold = 1000\ncookie_threshold = 1000"
    a, b = pair(version, b_daemon=roomy)
    a.engine.initiate("gw", 0.0, "net")
    (first,) = a.drain()
    n = 100
    for i in range(n):
        data = (0xC0DE0000 + i).to_bytes(8, "big") + first.data[8:]
        b.engine.receive_datagram(data, ("192.0.2.1", 500), ("192.0.2.2", 500), 0.5)
    assert len(b.engine.list_sas()) == n
    caplog.clear()
    b.engine.terminate("gw", 1.0)
    assert b.engine.list_sas() == []
    assert len(_drained(b)) == n
    assert len(_said(caplog, "_SA ended: terminated")) == LINES_PER_SECOND


def _drained(n: Node) -> list[IkeSaDeleted]:
    n.drain()
    return n.of(IkeSaDeleted)


@pytest.mark.parametrize("version", [1, 2])
def test_a_flood_that_stops_is_summed_up_by_the_engines_timer(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """No further line of the reason and no SA timer: the engine's own timer (the
    runtime arms it at get_timer) writes the summary once the flood's second is over."""
    caplog.set_level(logging.INFO)
    a, _ = pair(version)
    assert a.engine.get_timer() is None
    for _ in range(30):
        a.engine.receive_datagram(bytes(40), ("198.51.100.7", 500), ("192.0.2.1", 500), 5.0)
    (reason,) = a.engine.ctx.counters.dropped
    assert a.engine.get_timer() == 6.0
    assert not _said(caplog, "suppressed")
    a.engine.handle_timer(6.0)
    assert _said(caplog, "suppressed") == [
        f"suppressed {30 - LINES_PER_SECOND} similar lines ({reason}) in one second"
    ]
    assert a.engine.get_timer() is None  # nothing else to do: no timer


@pytest.mark.parametrize("version", [1, 2])
def test_a_flood_of_answered_first_messages_logs_a_few_lines_per_reason(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """First messages (MM1, IKE_SA_INIT) each answered with a half-open SA: the
    lines they set off (IKEv2's "received"/"sending", IKEv1's "Main Mode from", the state
    changes) are at most LINES_PER_SECOND a second each; the message counters are exact."""
    caplog.set_level(logging.INFO)
    roomy = "block_threshold = 1000\ncookie_threshold = 1000\nhalf_open_max = 1000"
    a, b = pair(version, b_daemon=roomy)
    a.engine.initiate("gw", 0.0, "net")
    (first,) = a.drain()
    caplog.clear()
    n = 400  # 200 a second for two seconds
    for i in range(n):
        data = (0xC0DE0000 + i).to_bytes(8, "big") + first.data[8:]
        src = ("192.0.2.1", 1024 + i)  # a's address (b's config names it), ever new ports
        b.engine.receive_datagram(data, src, ("192.0.2.2", 500), 1.0 + i / 200)
    answers = b.drain()
    assert len(answers) == n == len(b.engine.list_sas())
    counts = b.engine.ctx.counters.conn("gw")
    assert sum(counts.messages_in.values()) == n and sum(counts.messages_out.values()) == n
    b.engine.handle_timer(10.0)  # the last second's summaries
    summed = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    lines = [r.getMessage() for r in caplog.records if "suppressed" not in r.getMessage()]
    kinds = ("received", "sending", "Main Mode from", "CREATED -> CONNECTING")
    for kind in kinds:
        said = [ln for ln in lines if kind in ln]
        # two seconds: a full budget each, or none if the version has no such line
        assert len(said) in (0, 2 * LINES_PER_SECOND), (kind, len(said))
    assert len(lines) == sum(2 * LINES_PER_SECOND for k in kinds if any(k in ln for ln in lines))
    if version == 2:
        assert any("received IKE_SA_INIT request 0 [ SA KE No" in ln for ln in lines)
        assert any("sending IKE_SA_INIT response 0 [ SA KE No" in ln for ln in lines)
        assert sorted(summed) == sorted(
            f"suppressed {200 - LINES_PER_SECOND} similar lines ({reason}) in one second"
            for reason in ("half_open_received", "half_open_sent", "half_open_state")
            for _ in range(2)
        )
    else:  # IKEv1 writes no per-message "received"/"sending" line
        assert len(lines) == 4 * LINES_PER_SECOND and len(summed) == 4


def test_an_established_ike_sas_messages_are_all_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only an unproven SA's lines are limited: once the peer authenticated, each message
    of its IKE SA is logged as before, however many there are."""
    caplog.set_level(logging.INFO)
    a, b = pair(2)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert [sa.state for sa in b.engine.list_sas()] == ["ESTABLISHED"]
    caplog.clear()
    n = 3 * LINES_PER_SECOND
    for _ in range(n):
        deliver(deliver([send_informational(a, 1.0)], b, 1.0), a, 1.0)
    assert len(_said(caplog, "received INFORMATIONAL request")) == n
    assert len(_said(caplog, "sending INFORMATIONAL response")) == n
    assert not _said(caplog, "suppressed")
    assert b.engine.get_timer() != 2.0  # and no summary to write


@pytest.mark.parametrize("version", [1, 2])
def test_a_flood_of_refused_first_messages_logs_a_few_lines_per_reason(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """First messages with proposals b does not take, each refused in the clear: IKEv2
    makes an SA that answers with an error and ends (received, answering with error,
    sending, state changes), IKEv1 refuses before it makes one; at most LINES_PER_SECOND
    lines a second each, every refusal answered and counted."""
    caplog.set_level(logging.INFO)
    a, b = pair(version, b_proposals='"aes256-sha512-ecp384"')
    a.engine.initiate("gw", 0.0, "net")
    (first,) = a.drain()
    caplog.clear()
    n = 200
    for i in range(n):
        data = (0xC0DE0000 + i).to_bytes(8, "big") + first.data[8:]
        b.engine.receive_datagram(data, ("192.0.2.1", 1024 + i), ("192.0.2.2", 500), 1.0)
    assert len(b.drain()) == n
    assert b.engine.list_sas() == []
    b.engine.handle_timer(2.0)
    lines = [r.getMessage() for r in caplog.records if "suppressed" not in r.getMessage()]
    reasons = {m.split("(")[1].split(")")[0] for m in _said(caplog, "suppressed")}
    assert len(lines) == LINES_PER_SECOND * len(reasons), lines
    assert len(_said(caplog, ": the peer offered")) <= LINES_PER_SECOND  # what we refused
    if version == 2:  # an SA each: its messages, its error answer, its state changes
        assert reasons == {
            "no_proposal_chosen",
            "half_open_received",
            "half_open_refused",
            "half_open_sent",
            "half_open_state",
        }
        assert len(_said(caplog, "answering IKE_SA_INIT with error")) == LINES_PER_SECOND
        counts = b.engine.ctx.counters.conn("gw")
        assert counts.messages_in == counts.messages_out == {"IKE_SA_INIT": n}
    else:  # refused before an SA is made: its drop shares the reason
        assert reasons == {"no_proposal_chosen"}
        assert b.engine.ctx.counters.dropped == {"no_proposal_chosen": n}


def test_many_failed_authentications_log_a_few_lines_and_count_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Peers that complete IKE_SA_INIT and then fail to authenticate (another PSK),
    3 * LINES_PER_SECOND of them in one second: "authentication of ... failed" (and the
    move to port 4500 before it) is written LINES_PER_SECOND times, the rest summed up;
    each failure is reported (the metrics' auth failures). IKEv1's responder says so in
    its drop line, limited the same way (reason auth_failed)."""
    caplog.set_level(logging.INFO)
    _, b = pair(2, b_psk="not-what-the-peers-have-0123456789")
    n = 3 * LINES_PER_SECOND
    for _ in range(n):
        a, _ = pair(2)
        a.engine.initiate("gw", 1.0, "net")
        transfer(a, b, 1.0)
    assert b.engine.list_sas() == []
    assert [e.reason for e in b.of(IkeSaDeleted)] == ["auth_failed"] * n
    assert len(_said(caplog, "authentication of 'branch.example.net' failed")) == LINES_PER_SECOND
    # IKE_AUTH comes from port 4500: each SA follows it, only a few say so
    assert len(_said(caplog, "peer moved from 192.0.2.1[500] to 192.0.2.1[4500]")) == (
        LINES_PER_SECOND
    )
    b.engine.handle_timer(2.0)
    assert f"suppressed {n - LINES_PER_SECOND} similar lines (auth_failed) in one second" in (
        _said(caplog, "suppressed")
    )
