"""A rate limit for log lines an unauthenticated peer can set off once a message (drops,
half-open SAs, refusals), in both IKE versions: a flood must not fill the journal or
spend the event loop on logging. The counters in metrics stay exact; only lines go."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

LINES_PER_SECOND = 10  # per reason: enough to see what goes on, few enough under a flood


@dataclass
class _Window:
    start: float
    level: int
    lines: int = 0
    suppressed: int = 0


@dataclass
class LogLimit:
    """At most ``per_second`` lines a second for each reason (a fixed set of names, so
    the table stays small); the lines over it are counted and summed up in one line
    ("suppressed K similar lines") with the reason's next line after its second, or at
    the engine's next timer (``flush``). Time is the engine's clock."""

    per_second: int = LINES_PER_SECOND
    _windows: dict[str, _Window] = field(default_factory=dict)

    def log(
        self,
        logger: logging.Logger,
        level: int,
        reason: str,
        now: float,
        msg: str,
        *args: object,
    ) -> None:
        window = self._windows.get(reason)
        if window is None or now >= window.start + 1.0 or now < window.start:
            if window is not None:
                _summary(logger, reason, window)
            window = self._windows[reason] = _Window(now, level)
        if window.lines < self.per_second:
            window.lines += 1
            logger.log(level, msg, *args)
        else:
            window.suppressed += 1

    def flush(self, logger: logging.Logger, now: float) -> None:
        """The summaries of reasons whose second is over (a flood that stopped)."""
        for reason, window in list(self._windows.items()):
            if now >= window.start + 1.0 or now < window.start:
                _summary(logger, reason, window)
                del self._windows[reason]


def _summary(logger: logging.Logger, reason: str, window: _Window) -> None:
    if window.suppressed:
        logger.log(
            window.level,
            "suppressed %d similar lines (%s) in one second",
            window.suppressed,
            reason,
        )
