"""Kernel-facing fixtures: private network namespaces and ESP detection.

Tests that need ESP use the ``esp_kernel`` fixture: on a kernel without ESP (this
development host) they skip with the probe's reason and the command that runs them in the
UML guest, which has ESP.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.kernel_netns import Namespaces
from lib.prereq import require
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import KernelCaps

GUEST_COMMAND = "tests/guest/uml-run -- .venv/bin/pytest -m kernel tests/kernel"
SHARED_KERNEL = Path(__file__).resolve().parents[2].parent / "shared/uml/linux"
PIKE_KERNEL_SKIP = "NEEDS THE PIKE UML KERNEL"  # tests/guest/tier.py tolerates only these skips


def _require_root() -> None:
    require(
        os.geteuid() == 0 and shutil.which("ip") is not None,
        "needs root and iproute2 (network namespaces)",
    )


@pytest.fixture(scope="module")
def namespaces() -> Iterator[Namespaces]:
    _require_root()
    ns = Namespaces()
    try:
        yield ns
    finally:
        ns.delete_all()


@pytest.fixture(scope="session")
def kernel_caps() -> Iterator[KernelCaps]:
    """probe() in a throwaway namespace, so nothing can touch the host's SAD."""
    _require_root()
    ns = Namespaces()
    try:
        with XfrmKernel(ns.create("probe")) as kernel:
            yield kernel.probe()
    finally:
        ns.delete_all()


@pytest.fixture(scope="session")
def esp_kernel(kernel_caps: KernelCaps) -> KernelCaps:
    if not kernel_caps.esp:
        pytest.skip(
            "KERNEL TIER SKIPPED: this kernel cannot run ESP (missing: "
            f"{', '.join(kernel_caps.missing)}); run them in the kernel tier: {GUEST_COMMAND}"
        )
    return kernel_caps


def require_pike_kernel(present: bool, what: str) -> None:
    """For features only pike's UML kernel has (netdevsim, XFRM interfaces): skip loudly on
    another kernel (Debian's linux.uml); fail under CI=true when ../shared/uml/linux is
    there, because then the guest tier should have booted it."""
    if present:
        return
    reason = (
        f"{PIKE_KERNEL_SKIP}: this kernel ({os.uname().release}, guest kernel "
        f"{os.environ.get('PIKE_GUEST_KERNEL', 'none')}) has no {what}; boot ../shared/uml/linux "
        "or build /var/cache/pike-uml/linux with tests/guest/build-uml-kernel.sh"
    )
    if os.environ.get("CI", "").lower() == "true" and SHARED_KERNEL.exists():
        pytest.fail(f"{reason} (CI=true and {SHARED_KERNEL} exists, so this is a failure)")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if any("KERNEL TIER SKIPPED" in str(getattr(r, "longrepr", "")) for r in skipped):
        terminalreporter.write_sep(
            "!",
            "ESP tests skipped on this kernel: tests/guest/test_kernel_tier.py runs them "
            f"under UML; by hand: {GUEST_COMMAND}",
            yellow=True,
        )
