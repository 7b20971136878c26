"""pike's version, as installed (``piked --version``, ``pikectl --version``, status)."""

from __future__ import annotations

import functools
import glob
import os
import sys

FALLBACK = "0.1.0"  # pyproject.toml's, for a tree that is not installed


@functools.cache
def version() -> str:
    """The ``Version:`` of the installed distribution's METADATA, read directly:
    ``importlib.metadata`` would load the e-mail parser, zipfile and csv into every piked
    (1.2 MiB of idle RSS) for one log line."""
    for entry in sys.path:
        for meta in glob.glob(os.path.join(glob.escape(entry or "."), "pike-*.dist-info/METADATA")):
            try:
                with open(meta, encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.removeprefix("Version:").strip()
                        if not line.strip():
                            break  # the headers end at the first empty line
            except OSError:
                continue
    return FALLBACK  # not installed as a distribution (running from a tree)
