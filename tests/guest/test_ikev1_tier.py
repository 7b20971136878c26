"""Run the IKEv1 ESP data-plane tests (tests/interop/test_dataplane_v1.py) inside the UML
guest: piked's IKEv1 SAs in a real ESP kernel against strongSwan (kernel-netlink) and
against piked, traffic both ways, counters checked; Aggressive Mode, and DPD with
``dpd_action = restart``/``trap`` against a killed and restarted piked."""

from __future__ import annotations

import re

from guest.tier import run_tier

TIMEOUT = 900.0
TESTS = ("tests/interop/test_dataplane_v1.py",)


def test_ikev1_tier_in_uml() -> None:
    run_tier(
        "IKEv1 tier",
        "kernel_interop",
        TESTS,
        TIMEOUT,
        show=lambda line: (
            ("bytes" in line and "packets" in line)
            or re.search(r"IKEv1 (tunnel up|Aggressive Mode|dpd_action)", line) is not None
            or re.match(r"traffic:", line) is not None
        ),
    )
