"""Logging to stderr in a journald-friendly form.

Under systemd (``JOURNAL_STREAM`` set) each line starts with the syslog priority
(``<3>``), which journald turns into the entry's level, and carries no timestamp
(journald adds its own). On a terminal, lines get a time and a level name.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("debug", "info", "warning", "error", "critical")
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        # One entry per line: a multi-line traceback would lose its priority prefix.
        text = super().format(record).replace("\n", "\n" + f"<{prio}>")
        return f"<{prio}>{text}"


def setup_logging(level: str, *, journal: bool | None = None) -> None:
    if journal is None:
        journal = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(sys.stderr)
    if journal:
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # --log-level debug is about pike; third-party debug chatter (asyncio's selector)
    # stays at warnings.
    root.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.getLogger("pike").setLevel(level.upper())
