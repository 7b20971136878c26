"""Run the kernel tier (pytest -m kernel tests/kernel) inside the UML guest, from the host.

So a plain ``pytest tests`` on a host without ESP still exercises ESP for real.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from uml import GuestError, run_in_guest, uml_binary

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 360.0  # the lifecycle tests start piked gateways in the guest (~4 s each)


def test_kernel_tier_in_uml() -> None:
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
        *("-m", "pytest", "-m", "kernel", "tests/kernel", "-q", "-p", "no:cacheprovider"),
    ]
    result = run_in_guest(command, cwd=str(REPO), timeout=TIMEOUT)
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(
        f"\nkernel tier in UML: boot {result.boot_seconds:.2f}s, "
        f"total {result.total_seconds:.2f}s: {summary[0]}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", summary[0])
    assert passed and int(passed.group(1)) > 0, result.stdout
    assert "skipped" not in summary[0], result.stdout  # ESP must be there in the guest
