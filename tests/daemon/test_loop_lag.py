"""The event loop's lag as operators see it: ``pikectl status`` and the
``pike_event_loop_lag_seconds`` metric show a loop blocked on purpose (issue 13)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from pike.cli.piked import _engine
from pike.cli.sa_text import format_status
from pike.daemon.control import request
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon

from .helpers import gateway_pair


def _metric(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_a_blocked_loop_shows_in_status_and_metrics(tmp_path: Path) -> None:
    cfg, _ = gateway_pair(tmp_path)
    d = Daemon(cfg, NoKernel("test"), _engine, ipv6=False)
    sock = cfg.daemon.control_socket

    async def ask() -> dict[str, Any]:
        resp = await asyncio.get_running_loop().run_in_executor(None, request, sock, "status")
        assert resp["ok"], resp
        return dict(resp["result"])

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], str]:
        task = asyncio.create_task(d.run())
        await asyncio.wait_for(d.ready.wait(), 5)
        await asyncio.sleep(1.1)  # two probe periods on an idle loop
        idle = await ask()
        time.sleep(1.0)  # what a datagram that costs 1 s on the loop does
        await asyncio.sleep(0.1)  # the overdue probe runs first and notes how late
        blocked = await ask()
        scraped = generate_latest(d.ops.registry("test")).decode()
        d.request_stop()
        await asyncio.wait_for(task, 5)
        return idle, blocked, scraped

    idle, blocked, scraped = asyncio.run(scenario())
    assert idle["event_loop_lag"]["recent"] < 0.3
    # the probe sleeps 0.5 s: it wakes at least 1.0 - 0.5 s late
    assert 0.45 <= blocked["event_loop_lag"]["recent"] <= blocked["event_loop_lag"]["worst"]
    assert _metric(scraped, "pike_event_loop_lag_seconds") >= 0.45
    assert _metric(scraped, "pike_event_loop_lag_max_seconds") >= 0.45
    assert "event loop lag: " in format_status(blocked)
