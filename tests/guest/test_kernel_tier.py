"""Run the kernel tier (pytest -m kernel tests/kernel) inside the UML guest, from the host.

So a plain ``pytest tests`` on a host without ESP still exercises ESP for real.
"""

from __future__ import annotations

import pytest

from guest.tier import Tier, run_tier

TIER = Tier(
    "kernel tier",
    "kernel",
    ("tests/kernel",),
    # ~250 s idle: lifecycle tests start piked gateways (~4 s each), the 1000-SA scale
    # test, the clock jump; room for a loaded machine and the other guests beside it
    timeout=900.0,
    seconds=250.0,
    deselected_ok=True,  # tests/kernel also holds host-tier tests (other marks)
)


@pytest.mark.guest_tier(TIER)
def test_kernel_tier_in_uml() -> None:
    run_tier(TIER)
