"""Health checks that gate the watchdog ping.

One mechanism, two stages (see image/rootfs/etc/systemd/system.conf.d/watchdog.conf):

1. piked -> systemd: ``piked.service`` has ``WatchdogSec=30``; the runtime sends
   ``WATCHDOG=1`` every ``WATCHDOG_USEC/2`` **only while every health check passes**.
   A wedged or unhealthy piked stops pinging, systemd kills it (SIGABRT) and restarts it;
   repeated failures trigger ``StartLimitAction=reboot``.
2. systemd -> hardware: ``RuntimeWatchdogSec=15`` makes PID 1 feed ``/dev/watchdog``
   (the board profile's device, bcm2835-wdt on the Pis, whose maximum is ~15 s), so a
   wedged kernel or PID 1 resets the board.

piked never opens ``/dev/watchdog`` itself: only one process may hold it, and systemd
already does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("pike.board.watchdog")

Check = Callable[[], str | None]  # None: healthy; otherwise why not


@dataclass
class Health:
    """Named checks, run before each watchdog ping (cheap, non-blocking, on the loop)."""

    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def remove(self, name: str) -> None:
        self.checks.pop(name, None)

    def failures(self) -> list[str]:
        """``"name: reason"`` for every failing check (a raising check fails)."""
        out = []
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as exc:
                reason = f"check raised {type(exc).__name__}: {exc}"
            if reason is not None:
                out.append(f"{name}: {reason}")
        return out


class LoopLag:
    """Measures how late the event loop wakes a sleeping task (a blocking call on the loop,
    e.g. a PKCS#11 sign that should have gone to a thread, shows up here)."""

    def __init__(self, limit: float, period: float = 1.0, window: float = 10.0) -> None:
        self.limit = limit
        self.period = period
        self.lag = 0.0  # the worst since the last check()
        self.worst = 0.0  # the worst ever
        # The last ``window`` seconds of samples, for the metric (one scrape must not
        # reset what the watchdog's check() judges, nor the other way round).
        self._recent: deque[float] = deque(maxlen=max(1, round(window / period)))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            late = max(0.0, loop.time() - before - self.period)
            self.lag = max(self.lag, late)
            self.worst = max(self.worst, late)
            self._recent.append(late)

    @property
    def recent(self) -> float:
        """The worst lateness over the last ``window`` seconds (0 before the first sample)."""
        return max(self._recent, default=0.0)

    def check(self) -> str | None:
        if self._task is None or self._task.done():
            return "lag probe not running"
        lag, self.lag = self.lag, 0.0  # each watchdog tick judges its own interval
        if lag > self.limit:
            return f"event loop woke {lag:.1f}s late (limit {self.limit:.1f}s)"
        return None


def socket_open(get: Callable[[], socket.socket | None]) -> Check:
    """Healthy while ``get()`` returns a socket that is still open."""

    def check() -> str | None:
        s = get()
        if s is None or s.fileno() < 0:
            return "socket closed"
        return None

    return check


def unix_socket_present(path: str) -> Check:
    """Healthy while ``path`` is a Unix socket (nobody removed the control socket)."""

    def check() -> str | None:
        try:
            st = os.lstat(path)
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        return None if stat.S_ISSOCK(st.st_mode) else f"{path} is not a socket"

    return check


def thread_alive(thread: threading.Thread) -> Check:
    """Healthy while a worker thread (e.g. the kernel thread) runs."""

    def check() -> str | None:
        return None if thread.is_alive() else f"thread {thread.name} has exited"

    return check


async def feed_watchdog(ping: Callable[[], object], health: Health, interval: float) -> None:
    """Call ``ping()`` every ``interval`` seconds while ``health`` has no failures.

    Logs once when health is lost and once when it comes back, not at every tick.
    """
    failing = False
    while True:
        failures = health.failures()
        if not failures:
            if failing:
                log.warning("healthy again: feeding the watchdog")
            failing = False
            ping()
        elif not failing:
            failing = True
            log.error("unhealthy, not feeding the watchdog: %s", "; ".join(failures))
        await asyncio.sleep(interval)
