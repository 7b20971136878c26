"""The terminal's width for argparse's help, found without ``shutil``.

argparse's formatter imports ``shutil`` (with ``bz2`` and ``lzma``) for
``shutil.get_terminal_size`` whenever a parser is built, not only for ``--help``: piked's
idle RSS and every pikectl call paid for it (issue #12). This finds the width as
``shutil.get_terminal_size`` does: ``$COLUMNS``, else the terminal of stdout, else 80.
"""

from __future__ import annotations

import os
import sys


def columns() -> int:
    try:
        width = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 0
    return width or 80


def help_width() -> int:
    """What argparse's formatter would use: the columns less its margin of 2."""
    return columns() - 2
