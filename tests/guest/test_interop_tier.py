"""Run the ESP data-plane interop tests (``-m kernel_interop``) inside the UML guest.

tests/interop/test_dataplane.py, test_lifecycle_dataplane.py and test_reauth_dataplane.py need
a kernel with ESP; this host test boots User-Mode-Linux once and runs them inside it: piked <->
strongSwan (kernel-netlink) and piked <-> piked as gateways with LANs behind them, ping and UDP
both ways, counters checked; CHILD_SA and IKE SA rekeys and IKEv2 reauthentication (either side)
under a UDP stream with no loss; NAT in the middle with keepalives on the wire; close_action =
start after charon deletes the CHILD_SA or the IKE SA, and terminating one CHILD_SA;
redundant hubs (the first charon killed, the branch up on the second), route-based tunnels
over an XFRM interface and a VTI made by piked, with BGP (FRR) learning the far LAN.
"""

from __future__ import annotations

import re

from guest.tier import run_tier

TIMEOUT = 1260.0  # test_route_based_dataplane.py: ~120 s of it
TESTS = (
    "tests/interop/test_dataplane.py",
    "tests/interop/test_lifecycle_dataplane.py",
    "tests/interop/test_reauth_dataplane.py",
    "tests/interop/test_self_healing.py",
    "tests/interop/test_route_based_dataplane.py",
)


def test_interop_tier_in_uml() -> None:
    run_tier(
        "interop tier",
        "kernel_interop",
        TESTS,
        TIMEOUT,
        # test_self_healing.py also holds host tests (marker interop, run by the host
        # suite): those are deselected here, the kernel_interop ones all run
        deselected_ok=True,
        show=lambda line: (
            ("bytes" in line and "packets" in line)
            or re.match(r"(left|right)->(left|right): sent", line) is not None
            or line.startswith(("hub failover:", "BGP across"))
        ),
    )
