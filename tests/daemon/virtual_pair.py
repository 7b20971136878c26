"""Two piked daemons without a kernel on one VirtualClock: hours of timers in seconds."""

from __future__ import annotations

import asyncio
import os

from pike.cli.piked import _engine
from pike.daemon.clock import VirtualClock
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon
from pike.policy.config import Config
from pike.sa.context import Random


def virtual_pair(
    cfg_a: Config, cfg_b: Config, clock: VirtualClock, random: Random = os.urandom
) -> tuple[Daemon, Daemon]:
    """Daemons for ``cfg_a`` and ``cfg_b`` (made in that order: a seeded ``random`` gives
    each the same bytes every run), not started."""
    a = Daemon(cfg_a, NoKernel("test"), _engine, ipv6=False, clock=clock, random=random)
    b = Daemon(cfg_b, NoKernel("test"), _engine, ipv6=False, clock=clock, random=random)
    return a, b


async def run_ready(d: Daemon) -> asyncio.Task[int]:
    """``d`` running, once it is ready (sockets bound, connections loaded)."""
    task = asyncio.create_task(d.run())
    await asyncio.wait_for(d.ready.wait(), 5)
    return task


async def stop_all(*runs: tuple[Daemon, asyncio.Task[int]]) -> list[int]:
    """Stop every daemon and wait for them: their exit codes, in order."""
    for d, _ in runs:
        d.request_stop()
    return list(await asyncio.wait_for(asyncio.gather(*(t for _, t in runs)), 5))
