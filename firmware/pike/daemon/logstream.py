"""``pikectl log``: piked's log lines, live, to whoever follows them over the control socket.

``LogHub`` is a logging handler on the root logger; each follower gets the records at or
above its level in a bounded buffer of its own. A follower that reads slower than piked
logs loses the oldest lines (and is told how many), never holds memory or the event
loop: logging must not wait for a client. Records from the signing threads are handed
to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Any

from pike.daemon.control import ControlError

FOLLOWER_LINES = 1000  # per follower: a burst of debug lines (a rekey) fits
MAX_FOLLOWERS = 8  # the socket is for operators; each costs a buffer
LEVELS = ("debug", "info", "warning", "error", "critical")
Entry = dict[str, Any]


class Follower:
    """One client's view of the log: a bounded buffer and the count of lines it lost."""

    def __init__(self, level: int, capacity: int = FOLLOWER_LINES) -> None:
        self.level = level
        self._buf: collections.deque[Entry] = collections.deque(maxlen=capacity)
        self._dropped = 0
        self._wake = asyncio.Event()

    def push(self, entry: Entry) -> None:
        """On the loop: keep ``entry``, dropping the oldest line when full."""
        if len(self._buf) == self._buf.maxlen:
            self._dropped += 1
        self._buf.append(entry)
        self._wake.set()

    async def next(self) -> list[Entry]:
        """The lines since the last call (``{"dropped": N}`` first if some were lost)."""
        await self._wake.wait()
        self._wake.clear()
        out: list[Entry] = [{"dropped": self._dropped}] if self._dropped else []
        self._dropped = 0
        out.extend(self._buf)
        self._buf.clear()
        return out


class LogHub(logging.Handler):
    """Installed on the root logger while piked runs (``Ops.start``/``close``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._followers: set[Follower] = set()

    def follow(self, args: dict[str, Any]) -> Follower:
        """A new follower for the control command ``log`` (``{"level": "info"}``)."""
        level = args.get("level", "info")
        if level not in LEVELS:
            raise ControlError(f"level must be one of {', '.join(LEVELS)}")
        if len(self._followers) >= MAX_FOLLOWERS:
            raise ControlError(f"{MAX_FOLLOWERS} clients follow the log already")
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        f = Follower(logging.getLevelName(str(level).upper()))
        self._followers.add(f)
        return f

    def add(self, f: Follower) -> None:
        """Another kind of follower (``pike.daemon.initiations.Watch``), not counted
        against ``MAX_FOLLOWERS``: it ends with its initiation."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._followers.add(f)

    def unfollow(self, f: Follower) -> None:
        self._followers.discard(f)

    def emit(self, record: logging.LogRecord) -> None:
        loop = self._loop
        if not self._followers or loop is None:
            return
        try:
            entry: Entry = {
                "time": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        except Exception:  # a bad format string: the stderr handler reports it
            return
        for f in list(self._followers):
            if record.levelno < f.level:
                continue
            if threading.get_ident() == self._loop_thread:
                f.push(entry)
            else:
                try:
                    loop.call_soon_threadsafe(f.push, entry)
                except RuntimeError:  # the loop is closed: piked is stopping
                    return
