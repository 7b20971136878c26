"""IKEv1 first messages of a flood, in memory: each unproven ISAKMP SA's lines (its first
message, its state changes, each retransmission of our answer, giving up) go through the
shared rate limit (pike.sa.log_limit) as IKEv2's messages of an unproven SA do; the
counters stay exact."""

from __future__ import annotations

import logging

import pytest

from pike.sa.context import HALF_OPEN_TIMEOUT
from pike.sa.log_limit import LINES_PER_SECOND
from sa.both import pair

ROOMY = "block_threshold = 1000\nhalf_open_max = 1000"


def test_retransmitted_answers_of_a_flood_log_a_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Aggressive Mode first messages no AM3 follows: each half-open SA retransmits its
    AM2 until it gives up; those lines are LINES_PER_SECOND a second, each retransmission
    is counted and sent."""
    caplog.set_level(logging.INFO)
    a, b = pair(1, extra_conn="aggressive = true", b_daemon=ROOMY)
    a.engine.initiate("gw", 0.0, "net")
    (first,) = a.drain()
    n = 3 * LINES_PER_SECOND
    for i in range(n):
        data = (0xC0DE0000 + i).to_bytes(8, "big") + first.data[8:]
        b.engine.receive_datagram(data, ("192.0.2.1", 1024 + i), ("192.0.2.2", 500), 0.0)
    assert len(b.drain()) == n == len(b.engine.list_sas())
    caplog.clear()
    sent = 0
    while (t := b.engine.get_timer()) is not None and t <= HALF_OPEN_TIMEOUT + 1:
        b.engine.handle_timer(t)
        sent += len(b.drain())
    retransmits = b.engine.ctx.counters.conn("gw").retransmits
    assert retransmits >= 2 * n and sent == retransmits  # each timer: all SAs at once
    said = [r.getMessage() for r in caplog.records]
    lines = [m for m in said if ": retransmit " in m]
    summed = [m for m in said if "similar lines (half_open_sent)" in m]
    rounds = retransmits // n
    assert len(lines) == rounds * LINES_PER_SECOND
    assert len(summed) == rounds
    assert sum(int(m.split()[1]) for m in summed) == retransmits - len(lines)
