"""pike.sa.log_limit: the log lines an unauthenticated peer sets off once a message
(drops, half-open SAs and their timeouts) are at most LINES_PER_SECOND a second per
reason, the rest summed up in one "suppressed K similar lines" line; the counters in
metrics stay exact. In IKEv1 as in IKEv2; in memory, on the engines' clock."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import Node
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
    limit.flush(log, 101.5)  # within the second: nothing to sum up yet, none suppressed
    limit.flush(log, 102.0)
    assert len(_said(caplog, "suppressed")) == 1


def test_a_flood_that_stops_is_summed_up_at_the_next_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "test.log_limit")
    limit = LogLimit(per_second=2)
    for _ in range(5):
        limit.log(log, logging.WARNING, "no_config", 7.0, "no connection")
    limit.flush(log, 7.9)
    assert not _said(caplog, "suppressed")
    limit.flush(log, 8.0)
    (summary,) = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert summary.getMessage() == "suppressed 3 similar lines (no_config) in one second"
    assert summary.levelno == logging.WARNING  # at the level of the lines it stands for
    limit.flush(log, 20.0)
    assert len(_said(caplog, "suppressed")) == 1


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
