"""Host tier: IKEv2 reauthentication (``reauth_time``) against strongSwan 5.9.

piked on ``left``, charon on ``right`` (as tests/interop/test_lifecycle_interop.py; the
host kernel has no ESP, so the IKE SA is what is proven here):

- piked with ``reauth_time = "5s"`` (either role of the first IKE SA) builds a new IKE SA
  from scratch and deletes the old one: charon ends with exactly one IKE SA, with new SPIs,
  the same as piked's, and it never saw INITIAL_CONTACT;

charon reauthenticating towards piked needs CHILD_SAs (without one it logs "unable to
reauthenticate IKE_SA, no CHILD_SA to recreate" and just deletes the IKE SA), so that
direction is in tests/interop/test_reauth_dataplane.py (UML, real ESP).
"""

from __future__ import annotations

import time

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .test_lifecycle_interop import SECRET, both_agree, conn, establish, one_sa, spis

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_piked_reauthenticates(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, initiator: str
) -> None:
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left"), SECRET, start=False)
    piked.extra = {"hq": {"reauth_time": "5s"}}
    piked.poll_via_socket = True
    piked.start()
    old = establish(piked, charon, initiator)
    t0 = time.monotonic()
    wait_for("reauthenticated on both sides", lambda: both_agree(piked, charon, old), 15)
    took = time.monotonic() - t0
    p = one_sa(piked)
    assert p is not None
    new = spis(p)
    assert set(new).isdisjoint(old)
    # reauth_time 5 s after the IKE SA came up, no jitter (10 % of 5 s, whole seconds:
    # strongSwan's default rand_time; rekey_time is 0, its default with reauth_time)
    assert 2.5 <= took <= 8.0, took
    plog, clog = piked.log_text(), charon.log_text()
    assert "reauthenticated as" in plog, plog[-3000:]
    # charon's log of each IKE_AUTH request: only a first contact carries N(INIT_CONTACT)
    auths = [ln for ln in clog.splitlines() if "parsed IKE_AUTH request 1 [" in ln]
    contacts = [ln for ln in auths if "INIT_CONTACT" in ln]
    assert len(auths) >= (2 if initiator == "piked" else 1), auths
    assert len(contacts) == (1 if initiator == "piked" else 0), auths
    # charon never kept a second IKE SA: exactly one, with piked's new SPIs
    c = [s for s in charon.list_sas() if s.name == "hq"]
    assert len(c) == 1 and spis(c[0]) in (new, spis(one_sa(piked) or p)), c
    print(f"\npiked reauthenticated ({initiator} initiated) {took:.2f}s after up: {old} -> {new}")
