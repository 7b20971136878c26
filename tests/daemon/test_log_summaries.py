"""piked writes the "suppressed K similar lines" summary of a flood that stopped on its own
timer (no further datagram, no SA timer pending), and at shutdown the summary of the
flood's last second. Real engines and sockets over loopback, on a ``VirtualClock``."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

import pytest

from pike.cli.piked import _engine
from pike.daemon.clock import VirtualClock
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon
from pike.sa.log_limit import LINES_PER_SECOND

from .helpers import loopback_gateway

JUNK = bytes(40)  # no IKE header a decoder takes: dropped as "truncated" or the like


def _summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("suppressed")]


async def _flood(daemon: Daemon, port: int, n: int) -> None:
    """``n`` junk datagrams to piked's IKE port, until its counters show each dropped."""
    dropped = daemon.engine.ctx.counters.dropped  # type: ignore[attr-defined]
    before = sum(dropped.values())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(JUNK, ("127.0.0.1", port))
    deadline = time.monotonic() + 5
    while sum(dropped.values()) < before + n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert sum(dropped.values()) == before + n


def test_a_flood_is_summed_up_by_the_timer_and_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg, ike, _natt = loopback_gateway(tmp_path)  # start_action none: no SA, no timer

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        clock = VirtualClock(asyncio.get_running_loop())
        daemon = Daemon(cfg, NoKernel("test"), _engine, ipv6=False, clock=clock)
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 5)
        await _flood(daemon, ike, 3 * LINES_PER_SECOND)
        during = _summaries(caplog)
        await clock.run_for(1.5)  # the flood's second is over; nothing else comes
        after = _summaries(caplog)
        await clock.run_for(5.0)
        await _flood(daemon, ike, 3 * LINES_PER_SECOND)  # and piked stops within its second
        daemon.request_stop()
        assert await asyncio.wait_for(task, 5) == 0
        return during, after, _summaries(caplog)

    during, after, stopped = asyncio.run(scenario())
    assert during == []
    (summary,) = after
    assert summary.startswith(f"suppressed {2 * LINES_PER_SECOND} similar lines (")
    assert stopped == [summary, summary]  # the second flood's, written at shutdown
    messages = [r.getMessage() for r in caplog.records]
    assert messages.index(stopped[-1], messages.index(summary) + 1) < messages.index("stopped")
