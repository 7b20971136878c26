"""The one rule for missing prerequisites: skip loudly here, fail under ``CI=true``.

A developer's machine may lack strongSwan, SoftHSM2, UML, root...: those tests skip with
the reason (shown by ``-ra``). CI installs everything (tests/lib/setup.sh), so there a
missing prerequisite is a failure, never a skip counted as a pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn

import pytest

Require = Callable[[bool, str], None]


def in_ci() -> bool:
    """True when running under CI (.ci/run sets ``CI=true``)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI=true fail instead (never returns)."""
    if in_ci():
        pytest.fail(f"prerequisite missing (CI=true, so this is a failure): {reason}")
    pytest.skip(f"prerequisite missing: {reason}")


def require(condition: bool, reason: str) -> None:
    """Nothing when ``condition`` holds; otherwise :func:`unavailable`."""
    if not condition:
        unavailable(reason)
