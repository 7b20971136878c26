"""One host test per guest tier: boot User-Mode-Linux (which has ESP) once, run a marked
set of tests inside it, and report. The host's kernel may lack ESP; this way a plain
``pytest tests`` still exercises the data plane for real."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from guest.uml import GuestError, guest_kernel, run_in_guest
from lib.prereq import unavailable

REPO = Path(__file__).resolve().parents[2]
# tests/kernel/conftest.py's skip reason for what only pike's UML kernel has (netdevsim,
# XFRM interfaces): the one skip a tier tolerates, and only when booting Debian's kernel.
PIKE_KERNEL_SKIP = "NEEDS THE PIKE UML KERNEL"


def run_tier(
    label: str,
    marker: str,
    paths: Sequence[str],
    timeout: float,
    *,
    show: Callable[[str], bool] = lambda line: False,
    passed: int | None = None,
    deselected_ok: bool = False,
) -> list[str]:
    """Run ``pytest -m marker paths`` in the guest; assert it passed with nothing skipped or
    deselected (exactly ``passed`` tests when given). Prints the summary and the output
    lines ``show`` picks (figures worth seeing in the host log); returns the output lines."""
    if os.environ.get("PIKE_IN_GUEST"):
        pytest.skip("already inside the guest")
    if os.geteuid() != 0:
        unavailable(f"{label} needs root (network namespaces inside the guest)")
    try:
        kernel = guest_kernel()
    except GuestError as e:
        unavailable(str(e))
        raise
    python = REPO / ".venv/bin/python"
    command = [
        str(python if python.exists() else sys.executable),
        *("-m", "pytest", "-m", marker, *paths, "-q", "-s", "-rs", "-p", "no:cacheprovider"),
    ]
    result = run_in_guest(command, cwd=str(REPO), timeout=timeout)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(
        f"\n{label} in UML ({kernel.origin} kernel {kernel.path}): "
        f"boot {result.boot_seconds:.2f}s, total {result.total_seconds:.2f}s: {summary}"
    )
    print("\n".join(line for line in lines if show(line)))
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, output
    count = re.search(r"(\d+) passed", summary)
    assert count and int(count.group(1)) > 0, output
    if passed is not None:
        assert int(count.group(1)) == passed, summary
    if "skipped" in summary:  # ESP must be there in the guest; so must netdevsim in ours
        skips = [line for line in lines if line.startswith("SKIPPED")]
        assert not kernel.ours and all(PIKE_KERNEL_SKIP in line for line in skips), output
        print(
            f"!!! {label}: {len(skips)} tests SKIPPED on Debian's linux.uml:\n" + "\n".join(skips)
        )
    if not deselected_ok:
        assert "deselected" not in summary, summary  # every test named is of this tier
    return lines
