"""Run the ESP data-plane interop tests (``-m kernel_interop``) inside the UML guest.

tests/interop/test_dataplane.py, test_lifecycle_dataplane.py and test_reauth_dataplane.py need
a kernel with ESP; this host test boots User-Mode-Linux once and runs them inside it: piked <->
strongSwan (kernel-netlink) and piked <-> piked as gateways with LANs behind them, ping and UDP
both ways, counters checked; CHILD_SA and IKE SA rekeys and IKEv2 reauthentication (either side)
under a UDP stream with no loss; NAT in the middle with keepalives on the wire; close_action =
start after charon deletes the CHILD_SA or the IKE SA, and terminating one CHILD_SA; a link
flap long enough for DPD to give up (the tunnel back, one SA pair in each kernel).
"""

from __future__ import annotations

import re

from guest.tier import run_tier

TIMEOUT = 1080.0
TESTS = (
    "tests/interop/test_dataplane.py",
    "tests/interop/test_lifecycle_dataplane.py",
    "tests/interop/test_reauth_dataplane.py",
    "tests/interop/test_self_healing.py",
    "tests/interop/test_faults.py",
)


def test_interop_tier_in_uml() -> None:
    run_tier(
        "interop tier",
        "kernel_interop",
        TESTS,
        TIMEOUT,
        # test_self_healing.py and test_faults.py also hold host tests (marker interop,
        # run by the host suite): those are deselected here, the kernel_interop ones all run
        deselected_ok=True,
        show=lambda line: (
            ("bytes" in line and "packets" in line)
            or re.match(r"(left|right)->(left|right): sent", line) is not None
        ),
    )
