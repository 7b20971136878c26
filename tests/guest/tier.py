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

from guest.uml import GuestError, run_in_guest, uml_binary
from lib.prereq import unavailable

REPO = Path(__file__).resolve().parents[2]


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
        uml_binary()
    except GuestError as e:
        unavailable(str(e))
    python = REPO / ".venv/bin/python"
    command = [
        str(python if python.exists() else sys.executable),
        *("-m", "pytest", "-m", marker, *paths, "-q", "-s", "-p", "no:cacheprovider"),
    ]
    result = run_in_guest(command, cwd=str(REPO), timeout=timeout)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(
        f"\n{label} in UML: boot {result.boot_seconds:.2f}s, "
        f"total {result.total_seconds:.2f}s: {summary}"
    )
    print("\n".join(line for line in lines if show(line)))
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, output
    count = re.search(r"(\d+) passed", summary)
    assert count and int(count.group(1)) > 0, output
    if passed is not None:
        assert int(count.group(1)) == passed, summary
    assert "skipped" not in summary, output  # ESP must be there in the guest
    if not deselected_ok:
        assert "deselected" not in summary, summary  # every test named is of this tier
    return lines
