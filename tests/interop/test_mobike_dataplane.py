"""Kernel tier: MOBIKE (RFC 4555) with two uplinks under a UDP stream, both roles.

  lefthost -- left (branch)  wan0 192.0.2.1    ==== 192.0.2.2    wan0  right (hub) -- righthost
                             wan1 198.51.100.1 ==== 198.51.100.2 wan1

The branch reaches the hub's address 192.0.2.2 over wan0 (connected route) and, with a
higher metric, over wan1 (backup route), and the LANs the same way. A numbered UDP stream
crosses both ways while the branch's primary uplink goes down (``ip link set wan0 down``:
the kernel removes its routes, the route to the hub now leaves from 198.51.100.1) and comes
back. The branch (initiator) moves the IKE SA with UPDATE_SA_ADDRESSES and the hub follows;
both kernels move the CHILD_SA in place (piked: XFRM_MSG_MIGRATE). Asserted: the same IKE
SA and CHILD_SA SPIs all along (no new IKE_SA_INIT), the hub sees the backup address while
the primary is down and the primary again after, and what the stream lost in each direction
fits in 3 s per change. piked's branch follows the routing table back to the primary;
strongSwan keeps a path that still works, so its test takes the backup down as well.

piked branch against a charon hub (``mobike = yes``), and a charon branch roaming against
a piked hub (responder). Marked ``kernel_interop``: tests/guest/test_interop_tier.py runs
this file inside the UML guest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .piked import PikedNode
from .strongswan import StrongswanNode
from .test_lifecycle_dataplane import (
    RATE,
    SECRET,
    child_spis,
    conn,
    ike_spis,
    settled,
    stream_with,
    warm_up,
)
from .topology import LEFT_LAN, RIGHT_LAN

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]
ESP = "aes128gcm16"
SECONDS = 12.0
DOWN_AT, UP_AT = 3.0, 7.0
OUTAGE = 3.0  # seconds of stream a path change may cost, per direction, at most
BACKUP_L, BACKUP_R = "198.51.100.1", "198.51.100.2"


@pytest.fixture
def gw(gateways: Gateways) -> Gateways:
    """The standard gateways plus the second uplink wan1 and backup routes over it."""
    if not gateways.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    left, right = gateways.left, gateways.right
    gateways.lab.link(left, right, f"{BACKUP_L}/24", f"{BACKUP_R}/24", a_dev="wan1", b_dev="wan1")
    left.ip("route", "add", "192.0.2.0/24", "via", BACKUP_R, "metric", "100")
    left.ip("route", "add", RIGHT_LAN, "via", BACKUP_R, "metric", "100")
    right.ip("route", "add", LEFT_LAN, "via", BACKUP_L, "metric", "100")
    return gateways


def _down(gw: Gateways) -> None:
    gw.left.ip("link", "set", "wan0", "down")


def _up(gw: Gateways) -> None:
    gw.left.ip("link", "set", "wan0", "up")
    # link down removed the primary route to the hub's LAN; the connected one comes back
    gw.left.ip("route", "replace", RIGHT_LAN, "via", "192.0.2.2", "metric", "0")


def _remote_of(node: PikedNode | StrongswanNode) -> str:
    (sa,) = [s for s in node.list_sas() if s.name == "hq"]
    return str(sa.remote_host)


def _roam_under_stream(
    gw: Gateways,
    branch: PikedNode | StrongswanNode,
    hub: PikedNode | StrongswanNode,
    *,
    backup_down: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The stream with the primary down at DOWN_AT and back at UP_AT (``backup_down``: and
    the backup down a second later, for a branch that stays on a working path, as
    strongSwan does); what the hub saw as the branch's address in between and after. Same
    SAs all along."""
    b0, h0 = settled(branch, hub)
    warm_up(gw)
    seen: list[str] = []

    def down() -> None:
        _down(gw)

    def check_backup() -> None:
        wait_for("hub follows to the backup", lambda: _remote_of(hub) == BACKUP_L, 3.0, 0.1)
        seen.append(_remote_of(hub))

    def up() -> None:
        _up(gw)

    def backup_gone() -> None:
        gw.left.ip("link", "set", "wan1", "down")

    actions: list[tuple[float, str, Callable[[], object]]] = [
        (DOWN_AT, "wan0 down", down),
        (DOWN_AT + 0.5, "hub on backup", check_backup),
        (UP_AT, "wan0 up", up),
    ]
    if backup_down:
        actions.append((UP_AT + 1.0, "wan1 down", backup_gone))
    res = stream_with(gw, actions, SECONDS)
    wait_for("hub back on the primary", lambda: _remote_of(hub) == "192.0.2.1", 5.0, 0.1)
    seen.append(_remote_of(hub))
    b1, h1 = settled(branch, hub)
    assert ike_spis(b1) == ike_spis(b0) == ike_spis(h1) == ike_spis(h0)
    assert child_spis(b1) == child_spis(b0)
    assert child_spis(h1) == child_spis(h0)
    for way in ("left->right", "right->left"):
        sent, got = res[way]
        lost = sent["sent"] - got["received"]
        print(f"{way}: {lost} lost in two path changes ({lost / RATE:.2f} s of stream)")
        assert lost <= 2 * OUTAGE * RATE, res
    return res, seen


def test_piked_branch_roams_against_strongswan_hub(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    hub = make_charon(
        gw.right, "charon", replace(conn("right", ESP), mobike=True), SECRET, libipsec=False
    )
    branch = make_piked(gw.left, "piked", conn("left", ESP), SECRET)
    branch.poll_via_socket = True
    branch.initiate("hq")
    res, seen = _roam_under_stream(gw, branch, hub)
    assert seen == [BACKUP_L, "192.0.2.1"], seen
    plog = branch.log_text()
    assert plog.count("path changed from") == 2, plog[-4000:]
    assert "MOBIKE negotiated" in plog
    assert "migrated in the kernel" in plog and "cannot migrate" not in plog
    clog = hub.log_text()
    assert clog.count("IKE_SA_INIT") <= 2, clog[-4000:]  # the one request and answer
    assert "UPD_SA_ADDR" in clog or "UPDATE_SA_ADDRESSES" in clog
    print(f"piked branch roamed twice against charon: {res['actions']}")


def test_strongswan_branch_roams_against_piked_hub(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    hub = make_piked(gw.right, "piked", conn("right", ESP), SECRET)
    hub.poll_via_socket = True
    # no local_addrs: charon picks the source the route to the hub gives
    left = replace(conn("left", ESP), local_addrs=(), mobike=True)
    branch = make_charon(gw.left, "charon", left, SECRET, libipsec=False)
    branch.initiate("lan", ike="hq")
    # strongSwan keeps a path that still works when the primary returns: the backup goes too
    res, seen = _roam_under_stream(gw, branch, hub, backup_down=True)
    assert seen == [BACKUP_L, "192.0.2.1"], seen
    plog = hub.log_text()
    assert plog.count("path changed from") == 2, plog[-4000:]
    assert "migrated in the kernel" in plog and "cannot migrate" not in plog
    print(f"charon branch roamed twice against the piked hub: {res['actions']}")
