"""The daemon's clock: the engines' monotonic time, wall time, and the engine's one timer.

The engines are sans-I/O and take ``now`` from the runtime; the runtime takes it from a
``Clock``. ``LoopClock``, the default, is what piked has always used: the event loop's
clock (``loop.time()``) and ``time.time()``. ``VirtualClock`` runs ahead of it by an
offset that a test moves (``advance``): timers armed through it fire as if that much time
had passed, while sockets, the kernel and the control socket keep working in real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

_BASE_TIME = asyncio.BaseEventLoop.time  # return time.monotonic()


class Timer(Protocol):
    def when(self) -> float: ...
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """The engines' clock (seconds, only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for what people read (uptime, established at)."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once ``monotonic()`` reaches ``when``."""
        ...


class LoopClock:
    """The real clock: ``loop.time()`` (asyncio's monotonic clock) and ``time.time()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Asked for every datagram: asyncio's own loops tell time.monotonic() through a
        # method of Python; called directly, without that frame. Another loop's clock
        # (uvloop, a test's) as it tells it.
        self.monotonic: Callable[[], float] = (
            time.monotonic if getattr(loop.time, "__func__", None) is _BASE_TIME else loop.time
        )
        # asked for metrics at every CHILD_SA install of a hub: the function itself
        self.wall: Callable[[], float] = time.time

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._loop.call_at(when, callback)


class _VirtualTimer:
    def __init__(self, clock: VirtualClock, when: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._when = when
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self.arm()

    def when(self) -> float:
        return self._when

    def arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._clock.loop.call_at(self._when - self._clock.offset, self._fire)

    def cancel(self) -> None:
        self._clock.timers.discard(self)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._clock.timers.discard(self)
        self._handle = None
        self._callback()


class VirtualClock:
    """The loop's clock plus an offset that only grows: ``advance(seconds)`` brings every
    timer that falls due in that span forward to now (they run in order of their time).
    For tests of the real daemon that would otherwise wait out lifetimes. What others
    stamp stays real (a real kernel's last-use times): only fakes should meet it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, wall_start: float | None = None):
        self.loop = loop
        self.offset = 0.0
        # Wall time moves with the offset; a fixed start makes it reproducible.
        self._wall_base = time.time() if wall_start is None else wall_start
        self._loop_base = loop.time()
        self.timers: set[_VirtualTimer] = set()

    def monotonic(self) -> float:
        return self.loop.time() + self.offset

    def wall(self) -> float:
        return self._wall_base + (self.monotonic() - self._loop_base)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        t = _VirtualTimer(self, when, callback)
        self.timers.add(t)
        return t

    def next_due(self) -> float | None:
        return min((t.when() for t in self.timers), default=None)

    async def run_for(self, seconds: float, *, settle: float = 0.1) -> None:
        """Let ``seconds`` pass, jumping from one due timer to the next. Each jump gets
        ``settle`` real seconds for the I/O it starts (an exchange over loopback), less
        than any retransmission timeout, so only a datagram really lost is resent."""
        end = self.monotonic() + seconds
        while (due := self.next_due()) is not None and due <= end:
            self.advance(max(0.0, due - self.monotonic()))
            await asyncio.sleep(settle)
        self.advance(max(0.0, end - self.monotonic()))
        await asyncio.sleep(settle)

    def jump_wall(self, seconds: float) -> None:
        """What settimeofday (an NTP step, an RTC set by hand) does: the wall clock jumps
        ``seconds`` either way; the monotonic clock and the timers do not move."""
        self._wall_base += seconds

    def advance(self, seconds: float) -> None:
        """Move time ``seconds`` ahead; due timers run from the loop, soonest first."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.offset += seconds
        for t in sorted(self.timers, key=lambda t: t.when()):
            t.arm()
