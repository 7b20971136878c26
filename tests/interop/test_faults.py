"""Host tier: faults against strongSwan 5.9 (issue 13, item 5), IKE side.

piked on ``left`` (branch1.example.net), charon on ``right`` (hq.example.net); the host
kernel has no ESP, so the IKE SA is what is proven (a CHILD_SA is refused).

- **Peer reboot**, IKEv2 and IKEv1: charon SIGKILLed (by PID) with an IKE SA up and
  started again; its new IKE_AUTH (Main Mode's last message) carries INITIAL_CONTACT (it
  knows of no SA with piked), and piked ends the IKE SA the peer forgot: one IKE SA left
  on each side, the new one.
- **Link flap**: left's wan0 down and up again. Shorter than DPD's retransmissions: the
  same IKE SA survives, nobody declares the peer dead. Longer: piked's DPD gives up
  (``dpd_action = restart``), piked initiates again while the link is still down (the
  sends fail: counted, not fatal), and once it is up the tunnel is back with one IKE SA
  on each side (charon drops the old one on piked's INITIAL_CONTACT): no duplicates.

Kernel tier (``kernel_interop``, in UML via tests/guest/test_interop_tier.py): the long
link flap with ESP: the CHILD_SA comes back with the IKE SA, pings cross again, and the
kernel holds exactly one SA pair and one set of policies on each side (nothing stale).

piked's own crash (SIGKILL and restart, the kernel's stale SAs) is the kernel tier's
tests/kernel/test_crash_recovery_kernel.py; the in-memory INITIAL_CONTACT rules are
tests/sa/test_initial_contact.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .piked import PikedNode
from .strongswan import IkeSaInfo, StrongswanNode
from .test_lifecycle_dataplane import settled, warm_up, xfrm_state_count
from .test_lifecycle_interop import FAST, SECRET, conn, spis
from .test_self_healing import psk_tunnel

pytestmark = pytest.mark.interop


def _hq(node: PikedNode | StrongswanNode) -> list[IkeSaInfo]:
    return [s for s in node.list_sas() if s.name == "hq"]


def _one_and_the_same(piked: PikedNode, charon: StrongswanNode) -> tuple[str, str] | None:
    """The SPIs when each side holds exactly one IKE SA ``hq``, established, the same."""
    p, c = _hq(piked), _hq(charon)
    one = len(p) == len(c) == 1 and p[0].state == c[0].state == "ESTABLISHED"
    return spis(p[0]) if one and spis(p[0]) == spis(c[0]) else None


@pytest.mark.parametrize("version", [2, 1])
def test_peer_reboot_initial_contact(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    make, secret = psk_tunnel(version)
    theirs = make("right")
    if version == 1:
        # charon sends IKEv1's INITIAL-CONTACT only when it knows the peer's id (none:
        # %any, a wildcard; the forgotten ISAKMP SA then lasts until DPD or its lifetime)
        theirs.remote_id = "192.0.2.1"
    charon = make_charon(gateways.right, "charon", theirs, secret, libipsec=gateways.libipsec)
    piked = make_piked(gateways.left, "piked", make("left"), secret)
    piked.poll_via_socket = True
    charon.initiate_ike("hq")
    old = wait_for("first IKE SA", lambda: _one_and_the_same(piked, charon), 10)
    assert charon.pid is not None and charon.proc is not None
    os.kill(charon.pid, signal.SIGKILL)  # the peer reboots: it forgets its SAs
    charon.proc.wait(timeout=5)
    charon.start()
    t0 = time.monotonic()
    charon.initiate_ike("hq")
    new = wait_for("only the new IKE SA", lambda: _one_and_the_same(piked, charon), 10)
    took = time.monotonic() - t0
    print(f"\nIKEv{version} peer reboot: one IKE SA {took:.2f} s after the rebooted peer asked")
    assert new != old
    assert "deleted (initial_contact)" in piked.log_text(), piked.log_tail(40)
    time.sleep(0.5)  # nothing else comes back
    assert _one_and_the_same(piked, charon) == new


@pytest.mark.parametrize("down", ["short", "long"])
def test_link_flap(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, down: str
) -> None:
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left", dpd_delay="1s"), SECRET, start=False)
    piked.daemon.update(FAST)  # retransmissions 0.5, 0.9, 1.6 s: DPD gives up after ~4 s
    piked.extra = {"hq": {"dpd_action": "restart", "keyingtries": 0}}
    piked.start()
    piked.poll_via_socket = True
    piked.initiate("hq")
    old = wait_for("first IKE SA", lambda: _one_and_the_same(piked, charon), 10)
    left = gateways.left
    left.ip("link", "set", "wan0", "down")
    t0 = time.monotonic()
    if down == "short":
        time.sleep(1.0)  # one DPD round, its first retransmission still to come
    else:
        wait_for("DPD gave up", lambda: "peer is dead" in piked.log_text(), 15)
        time.sleep(1.0)  # the new initiation's first sends go nowhere
    left.ip("link", "set", "wan0", "up")
    was_down = time.monotonic() - t0
    back = wait_for("one IKE SA each side", lambda: _one_and_the_same(piked, charon), 20)
    took = time.monotonic() - t0 - was_down
    time.sleep(2.5)  # DPD keeps running; nothing else appears
    assert _one_and_the_same(piked, charon) == back
    log = piked.log_text()
    print(f"\nlink flap ({down}): down {was_down:.1f} s, one IKE SA {took:.2f} s after link up")
    if down == "short":
        assert back == old and "peer is dead" not in log
    else:
        assert back != old
        assert "Traceback" not in log
    assert piked.proc is not None and piked.proc.poll() is None


def _flap_until_dead(gateways: Gateways, piked: PikedNode) -> float:
    """wan0 down until piked's DPD gives up, a second more, then up; seconds down."""
    gateways.left.ip("link", "set", "wan0", "down")
    t0 = time.monotonic()
    wait_for("DPD gave up", lambda: "peer is dead" in piked.log_text(), 15)
    time.sleep(1.0)
    gateways.left.ip("link", "set", "wan0", "up")
    # down flushed the static route to the other LAN; the network manager of a real
    # gateway puts it back, as this does (piked installs no routes)
    gateways.left.ip("route", "replace", gateways.right_lan.subnet, "via", "192.0.2.2")
    return time.monotonic() - t0


def _out_policies(gateways: Gateways) -> list[str]:
    out = gateways.left.run(["ip", "xfrm", "policy", "list", "dir", "out"]).stdout
    return [ln for ln in out.splitlines() if ln.startswith("src 10.1.0.0/24 dst 10.2.0.0/24")]


@pytest.mark.kernel_interop
def test_link_flap_esp(gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon) -> None:
    if not gateways.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    charon = make_charon(gateways.right, "charon", conn("right"), SECRET, libipsec=False)
    piked = make_piked(gateways.left, "piked", conn("left", dpd_delay="1s"), SECRET, start=False)
    piked.daemon.update(FAST)
    piked.extra = {"hq": {"dpd_action": "restart", "keyingtries": 0}}
    piked.start()
    piked.poll_via_socket = True
    piked.initiate("hq", wait=20)
    first, _ = settled(piked, charon)
    warm_up(gateways)
    was_down = _flap_until_dead(gateways, piked)
    t0 = time.monotonic()
    again, _ = settled(piked, charon)
    took = time.monotonic() - t0
    warm_up(gateways)  # ESP across again, through the new CHILD_SA
    print(f"\nlink flap with ESP: down {was_down:.1f} s, tunnel back {took:.2f} s after link up")
    assert spis(again) != spis(first)
    for ns in (gateways.left, gateways.right):
        assert xfrm_state_count(ns) == 2, ns.run(["ip", "xfrm", "state"]).stdout
    assert len(_out_policies(gateways)) == 1, _out_policies(gateways)
