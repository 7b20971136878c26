"""Run tests/ops/test_metrics_dataplane.py (Prometheus scraping piked while ESP flows)
inside the User-Mode-Linux guest, which has ESP (this host's kernel may not)."""

from __future__ import annotations

import re

import pytest

from guest.tier import Tier, run_tier

TIER = Tier(
    "metrics kernel tier",
    "kernel_interop",
    ("tests/ops/test_metrics_dataplane.py",),
    timeout=480.0,
    seconds=50.0,
    show=lambda line: re.match(r"^\s+[\d.]+s\s", line) is not None or "probes" in line,
    passed=1,
)


@pytest.mark.guest_tier(TIER)
def test_metrics_dataplane_in_uml() -> None:
    run_tier(TIER)
