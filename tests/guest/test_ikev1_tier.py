"""Run the IKEv1 ESP data-plane tests (tests/interop/test_dataplane_v1.py) inside the UML
guest: piked's IKEv1 SAs in a real ESP kernel against strongSwan (kernel-netlink) and
against piked, traffic both ways, counters checked; Aggressive Mode, and DPD with
``dpd_action = restart``/``trap`` against a killed and restarted piked.

Also the IKEv1 Quick Modes of the host interop files that no other guest test runs
(marked ``kernel_interop`` in test_piked_strongswan.py and test_piked_certs.py): after
Main and Aggressive Mode with certificates (RSA; the Quick Mode is the same for any key),
both roles; PFS; piked choosing among charon's ESP proposals. Without ESP piked refuses
every Quick Mode with NO_PROPOSAL_CHOSEN (as it refuses an IKEv2 CHILD_SA), so on the
host those tests see only the refusal; here both halves are installed with the same
SPIs. The files' other tests run on the host and are deselected."""

from __future__ import annotations

import re

import pytest

from guest.tier import Tier, run_tier

TIER = Tier(
    "IKEv1 tier",
    "kernel_interop",
    (
        "tests/interop/test_dataplane_v1.py",
        "tests/interop/test_piked_strongswan.py",
        "tests/interop/test_piked_certs.py",
    ),
    timeout=900.0,
    seconds=190.0,
    deselected_ok=True,  # the host tests of test_piked_strongswan.py and test_piked_certs.py
    show=lambda line: (
        ("bytes" in line and "packets" in line)
        or re.search(r"IKEv1 (tunnel up|Aggressive Mode|dpd_action)", line) is not None
        or re.match(r"traffic:", line) is not None
    ),
)


@pytest.mark.guest_tier(TIER)
def test_ikev1_tier_in_uml() -> None:
    run_tier(TIER)
