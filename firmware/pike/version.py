"""pike's version, as installed (``piked --version``, ``pikectl --version``, status)."""

from __future__ import annotations

FALLBACK = "0.1.0"  # pyproject.toml's, for a tree that is not installed


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("pike")
    except Exception:  # not installed as a distribution (running from a tree)
        return FALLBACK
