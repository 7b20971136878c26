"""Run the IKEv1 ESP data-plane tests (tests/interop/test_dataplane_v1.py) inside the UML
guest: piked's IKEv1 SAs in a real ESP kernel against strongSwan (kernel-netlink) and
against piked, traffic both ways, counters checked."""

from __future__ import annotations

import re

from tier import run_tier

TIMEOUT = 600.0
TESTS = ("tests/interop/test_dataplane_v1.py",)


def test_ikev1_tier_in_uml() -> None:
    run_tier(
        "IKEv1 tier",
        "kernel_interop",
        TESTS,
        TIMEOUT,
        show=lambda line: (
            ("bytes" in line and "packets" in line)
            or "IKEv1 tunnel up" in line
            or re.match(r"traffic:", line) is not None
        ),
    )
