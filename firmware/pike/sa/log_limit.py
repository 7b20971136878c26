"""A rate limit for log lines an unauthenticated peer can set off once a message (drops,
half-open SAs, refusals, the messages of a half-open SA), in both IKE versions: a flood
must not fill the journal or spend the event loop on logging. The counters in metrics
stay exact; only lines go."""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field

LINES_PER_SECOND = 10  # per reason: enough to see what goes on, few enough under a flood
WINDOW = 1.0  # seconds


@dataclass(eq=False)
class _Window:
    start: float
    level: int
    logger: logging.Logger  # the summary goes where the lines it stands for went
    lines: int = 0
    suppressed: int = 0


@dataclass
class LogLimit:
    """At most ``per_second`` lines a second for each reason (a fixed set of names, so
    the table stays small); the lines over it are counted and summed up in one line
    ("suppressed K similar lines") with the reason's next line after its second, or when
    the second is over (``deadline``: the engines' timer calls ``flush``), or at shutdown
    (``flush_all``). Time is the engine's clock."""

    per_second: int = LINES_PER_SECOND
    _windows: dict[str, _Window] = field(default_factory=dict)
    # (end, order, reason, window) of the windows with a summary to write, soonest first;
    # an entry whose window was summed up already (by the reason's next line) is stale and
    # skipped when it comes up, so no step looks at more than what is due
    _due: list[tuple[float, int, str, _Window]] = field(default_factory=list)
    _order: int = 0

    def log(
        self,
        logger: logging.Logger,
        level: int,
        reason: str,
        now: float,
        msg: str,
        *args: object,
    ) -> None:
        # a level that is off needs no window: its summary would be off too
        if logger.isEnabledFor(level) and self.admit(logger, level, reason, now):
            logger.log(level, msg, *args)

    def admit(self, logger: logging.Logger, level: int, reason: str, now: float) -> bool:
        """Whether a line for ``reason`` may be written now (the caller writes it); if not,
        it is counted for the summary. For lines that cost to format (payload lists)."""
        window = self._windows.get(reason)
        if window is None or now >= window.start + WINDOW or now < window.start:
            if window is not None:
                _summary(reason, window)
            window = self._windows[reason] = _Window(now, level, logger)
        if window.lines < self.per_second:
            window.lines += 1
            return True
        window.suppressed += 1
        if window.suppressed == 1:  # its summary is due when the second is over
            self._order += 1
            heapq.heappush(self._due, (window.start + WINDOW, self._order, reason, window))
        return False

    def wanted(
        self, logger: logging.Logger, level: int, reason: str, now: float, limited: bool
    ) -> bool:
        """Whether to write a line (``logger`` takes ``level``, and ``limited`` lines only
        within the limit): the test before describing what costs (payload lists)."""
        if not logger.isEnabledFor(level):
            return False
        return not limited or self.admit(logger, level, reason, now)

    def deadline(self) -> float | None:
        """When the next summary is due (for the engine's timer), None if none is."""
        while self._due and self._stale(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def flush(self, now: float) -> None:
        """The summaries of reasons whose second is over (a flood that stopped)."""
        while self._due and (self._due[0][0] <= now or self._stale(self._due[0])):
            _, _, reason, window = heapq.heappop(self._due)
            if self._windows.get(reason) is window:
                _summary(reason, window)
                del self._windows[reason]

    def flush_all(self) -> None:
        """Every summary still to write, whatever its time: piked is stopping."""
        for reason, window in self._windows.items():
            _summary(reason, window)
        self._windows.clear()
        self._due.clear()

    def _stale(self, entry: tuple[float, int, str, _Window]) -> bool:
        return self._windows.get(entry[2]) is not entry[3]


def _summary(reason: str, window: _Window) -> None:
    if window.suppressed:
        window.logger.log(
            window.level,
            "suppressed %d similar lines (%s) in one second",
            window.suppressed,
            reason,
        )
