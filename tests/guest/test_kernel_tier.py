"""Run the kernel tier (pytest -m kernel tests/kernel) inside the UML guest, from the host.

So a plain ``pytest tests`` on a host without ESP still exercises ESP for real.
"""

from __future__ import annotations

from guest.tier import run_tier

# ~250 s idle: lifecycle tests start piked gateways (~4 s each), the 1000-SA scale test,
# the clock jump; room for a loaded machine
TIMEOUT = 900.0


def test_kernel_tier_in_uml() -> None:
    # tests/kernel also holds host-tier tests (other marks): those are deselected here
    run_tier("kernel tier", "kernel", ["tests/kernel"], TIMEOUT, deselected_ok=True)
