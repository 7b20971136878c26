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


class VirtualPair:
    """Daemons ``a`` and ``b`` for two configs on one VirtualClock (made in the running
    loop, a before b: a seeded ``random`` gives each the same bytes every run)."""

    def __init__(self, cfg_a: Config, cfg_b: Config, random: Random = os.urandom) -> None:
        self.clock = VirtualClock(asyncio.get_running_loop())
        self.a, self.b = (
            Daemon(cfg, NoKernel("test"), _engine, ipv6=False, clock=self.clock, random=random)
            for cfg in (cfg_a, cfg_b)
        )
        self._runs: list[tuple[Daemon, asyncio.Task[int]]] = []

    async def start(self, d: Daemon) -> None:
        """``d`` running, once it is ready (sockets bound, connections loaded)."""
        self._runs.append((d, asyncio.create_task(d.run())))
        await asyncio.wait_for(d.ready.wait(), 5)

    async def start_both(self) -> None:
        """b first, so that a's initiation meets a ready responder."""
        await self.start(self.b)
        await self.start(self.a)

    async def stop(self) -> list[int]:
        """Stop the daemons started, the last started first, and wait for them: their exit
        codes in that order."""
        runs = self._runs[::-1]
        for d, _ in runs:
            d.request_stop()
        return list(await asyncio.wait_for(asyncio.gather(*(t for _, t in runs)), 5))
