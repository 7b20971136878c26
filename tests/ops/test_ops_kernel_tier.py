"""Run tests/ops/test_metrics_dataplane.py (Prometheus scraping piked while ESP flows)
inside the User-Mode-Linux guest, which has ESP (this host's kernel may not)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from guest.uml import GuestError, run_in_guest, uml_binary

REPO = Path(__file__).resolve().parents[2]
TESTS = "tests/ops/test_metrics_dataplane.py"


def test_metrics_dataplane_in_uml() -> None:
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    if os.geteuid() != 0:
        pytest.skip("UML kernel tier needs root (network namespaces inside the guest)")
    try:
        uml_binary()
    except GuestError as e:
        pytest.skip(str(e))
    python = REPO / ".venv/bin/python"
    command = [
        str(python if python.exists() else sys.executable),
        *("-m", "pytest", "-m", "kernel_interop", TESTS, "-q", "-s", "-p", "no:cacheprovider"),
    ]
    result = run_in_guest(command, cwd=str(REPO), timeout=480.0)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(f"\nmetrics kernel tier in UML: total {result.total_seconds:.2f}s: {summary}")
    print("\n".join(line for line in lines if re.match(r"^\s+[\d.]+s\s", line) or "probes" in line))
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert re.search(r"\b1 passed", summary), result.stdout[-20000:]
    assert "skipped" not in summary, result.stdout  # ESP must be there in the guest
