"""Run the ESP data-plane interop tests (``-m kernel_interop``) inside the UML guest.

tests/interop/test_dataplane.py and tests/interop/test_lifecycle_dataplane.py need a kernel
with ESP; this host test boots User-Mode-Linux once and runs both files inside it: piked <->
strongSwan (kernel-netlink) and piked <-> piked as gateways with LANs behind them, ping and UDP
both ways, counters checked; CHILD_SA and IKE SA rekeys under a UDP stream with no loss; NAT in
the middle with keepalives on the wire.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from uml import GuestError, run_in_guest, uml_binary

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 780.0
TESTS = ("tests/interop/test_dataplane.py", "tests/interop/test_lifecycle_dataplane.py")


def test_interop_tier_in_uml() -> None:
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    if os.geteuid() != 0:
        pytest.skip("UML interop tier needs root (network namespaces inside the guest)")
    try:
        uml_binary()
    except GuestError as e:
        pytest.skip(str(e))
    python = REPO / ".venv/bin/python"
    command = [
        str(python if python.exists() else sys.executable),
        *("-m", "pytest", "-m", "kernel_interop", *TESTS, "-q", "-s", "-p", "no:cacheprovider"),
    ]
    result = run_in_guest(command, cwd=str(REPO), timeout=TIMEOUT)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(
        f"\ninterop tier in UML: boot {result.boot_seconds:.2f}s, "
        f"total {result.total_seconds:.2f}s: {summary}"
    )
    print("\n".join(line for line in lines if "bytes" in line and "packets" in line))
    print("\n".join(line for line in lines if re.match(r"(left|right)->(left|right): sent", line)))
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, result.stdout[-20000:]
    assert "skipped" not in summary, result.stdout  # ESP must be there in the guest
    assert "deselected" not in summary, summary  # every test in the file is kernel_interop
