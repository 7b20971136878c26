"""Run tests/ops/test_metrics_dataplane.py (Prometheus scraping piked while ESP flows)
inside the User-Mode-Linux guest, which has ESP (this host's kernel may not)."""

from __future__ import annotations

import re

from guest.tier import run_tier


def test_metrics_dataplane_in_uml() -> None:
    run_tier(
        "metrics kernel tier",
        "kernel_interop",
        ["tests/ops/test_metrics_dataplane.py"],
        480.0,
        show=lambda line: re.match(r"^\s+[\d.]+s\s", line) is not None or "probes" in line,
        passed=1,
    )
