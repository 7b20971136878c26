"""The branch office's WAN against strongSwan in a kernel with ESP (issue 14): redundant hubs,
route-based tunnels over an XFRM interface and over a VTI, BGP (FRR) across the tunnel.

Hubs (piked branch with two uplinks, one charon hub on each):

  lefthost .2 -- 10.1.0.1 left wan0 192.0.2.1    == 192.0.2.2    hub1 -- 10.2.0.0/24 host1
                              wan1 198.51.100.1 == 198.51.100.2 hub2 -- 10.2.0.0/24 host2

  hub1's charon is killed (SIGKILL): piked's DPD finds it dead and the branch is up on hub2
  within dpd_delay + one retransmission sequence; list-sas names the active hub.

Route-based (piked left, charon right, make_gateways without LAN routes): policies
0.0.0.0/0 bound to the tunnel interface, routes decide what enters it:
- XFRM interface ``ipsec0`` (if_id 7) made by piked; piked's updown script routes the far
  LAN into it;
- VTI ``vti0`` (marks 42) made by piked, its address set by the updown script, and bgpd
  (FRR) on both sides learning the other LAN over the tunnel: the learned route steers the
  LAN traffic into the tunnel.

Marked ``kernel_interop``: tests/guest/test_interop_tier.py runs them in the UML guest.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lib.pikeconf import TomlValue
from lib.prereq import Require

from .conftest import MakeCharon, MakePiked
from .frr import BgpSpeaker, frr_available
from .lifecycle_tools import wait_for
from .netns import HostNet, Lab, Namespace
from .piked import PikedNode
from .strongswan import Child, Connection, Secret, kernel_has_esp
from .topology import branch_hq, make_gateways

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]

PSK = "pike-route-based-psk"
BRANCH, HQ = "branch1.example.net", "hq.example.net"
SECRET = Secret("hq", PSK, [BRANCH, HQ])
ANY4 = ["0.0.0.0/0"]
HUB1, HUB2 = "192.0.2.2", "198.51.100.2"
DPD_DELAY = 2.0
# retransmit_timeout 1 s, base 1.5, 2 retries: 1 + 1.5 + 2.25 s until the peer is dead
FAST = {"retransmit_timeout": 1.0, "retransmit_base": 1.5, "retransmit_tries": 2}
SEQUENCE = 4.75
UPDOWN = """#!/bin/sh
env | grep ^PLUTO_ | sort > "{dir}/$PLUTO_VERB.env"
case "$PLUTO_VERB" in
  up-client) {up} ;;
  down-client) {down} ;;
esac
"""


@pytest.fixture
def esp(lab: Lab) -> None:
    probe = lab.add_ns("probe")
    if not kernel_has_esp(probe):
        pytest.skip(
            "KERNEL TIER SKIPPED: no ESP in this kernel; tests/guest/test_interop_tier.py runs "
            "these inside User-Mode-Linux"
        )


def hub_conn(local: str, remote: str) -> Connection:
    return Connection(
        "branch",
        [local],
        [remote],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=HQ,
        remote_id=BRANCH,
        children=[Child("lan", ["10.2.0.0/24"], ["10.1.0.0/24"], ("aes128gcm16",))],
    )


def piked_lan(node: PikedNode) -> dict[str, Any] | None:
    """The IKE SA whose ``lan`` child is INSTALLED, from the control socket."""
    for sa in node.control("list-sas") or []:
        if sa["state"] == "ESTABLISHED" and any(
            c["name"] == "lan" and c["state"] == "INSTALLED" for c in sa["children"]
        ):
            return dict(sa)
    return None


def host_of(net: HostNet) -> Namespace:
    assert net.host is not None
    return net.host


def child_packets(sa: dict[str, Any]) -> tuple[int, int]:
    (c,) = [c for c in sa["children"] if c["name"] == "lan"]
    return int(c["packets_in"]), int(c["packets_out"])


def test_branch_moves_to_the_second_hub_when_the_first_dies(
    lab: Lab, esp: None, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    left = lab.add_ns("left", forwarding=True)
    hubs = [lab.add_ns("hub1", forwarding=True), lab.add_ns("hub2", forwarding=True)]
    lab.link(left, hubs[0], "192.0.2.1/24", f"{HUB1}/24", a_dev="wan0", b_dev="wan0")
    lab.link(left, hubs[1], "198.51.100.1/24", f"{HUB2}/24", a_dev="wan1", b_dev="wan0")
    lefthost = lab.add_host_net(left, "10.1.0.0/24", name="lefthost")
    ends = list(zip(hubs, (HUB1, HUB2), ("192.0.2.1", "198.51.100.1"), strict=True))
    for i, (hub, _addr, via) in enumerate(ends):
        lab.add_host_net(hub, "10.2.0.0/24", name=f"host{i + 1}")
        hub.ip("route", "add", "10.1.0.0/24", "via", via)
    # No local_addrs: the branch speaks to each hub from the uplink the route gives
    # (192.0.2.1 to hub1, 198.51.100.1 to hub2), IKE and the kernel's SAs alike.
    left.ip("route", "add", "10.2.0.0/24", "via", HUB1)  # any route: the policy picks the hub
    charons = [
        make_charon(hub, f"hub{i + 1}", hub_conn(addr, via), SECRET)
        for i, (hub, addr, via) in enumerate(ends)
    ]
    branch = Connection(
        "hq",
        [],
        [HUB1, HUB2],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=BRANCH,
        remote_id=HQ,
        dpd_delay=f"{DPD_DELAY:g}s",
        children=[
            Child(
                "lan",
                ["10.1.0.0/24"],
                ["10.2.0.0/24"],
                ("aes128gcm16",),
                start_action="start",
                dpd_action="restart",
            )
        ],
    )
    piked = make_piked(left, "branch", branch, SECRET, start=False)
    piked.daemon.update(FAST)
    piked.start()
    first = wait_for("branch up on hub1", lambda: piked_lan(piked), 30.0)
    assert (first["local_addr"], first["remote_addr"]) == ("192.0.2.1", HUB1)
    assert first["hub"] == {"active": HUB1, "index": 0, "count": 2}
    assert host_of(lefthost).ping("10.2.0.2", count=2)

    proc = charons[0].proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)  # hub1 dies without a word
    t0 = time.monotonic()
    moved = wait_for(
        "branch up on hub2",
        lambda: (sa := piked_lan(piked)) and sa["remote_addr"] == HUB2 and sa,
        DPD_DELAY + SEQUENCE + 20.0,
        step=0.05,
    )
    failover = time.monotonic() - t0
    print(
        f"hub failover: up on hub2 {failover:.2f}s after hub1 was killed "
        f"(dpd_delay {DPD_DELAY:g}s + retransmission sequence {SEQUENCE:g}s)"
    )
    # DPD probes after dpd_delay of silence, gives up after one sequence, and the new IKE
    # SA goes to hub2 at once (its handshake and this poll: ~0.6 s in an idle UML guest,
    # 3.15 s once when the guest shared the 2 cores with the host suite and benchmarks)
    assert failover <= DPD_DELAY + SEQUENCE + 4.0, failover
    assert moved["hub"] == {"active": HUB2, "index": 1, "count": 2}
    assert moved["local_addr"] == "198.51.100.1", moved  # the uplink toward hub2
    state = left.run(["ip", "xfrm", "state"]).stdout
    assert f"src 198.51.100.1 dst {HUB2}" in state and "src 0.0.0.0" not in state, state
    before = child_packets(moved)
    assert host_of(lefthost).ping("10.2.0.2", count=2)
    after = child_packets(piked_lan(piked) or moved)
    assert after[0] >= before[0] + 2 and after[1] >= before[1] + 2
    text = piked.pikectl("list-sas").stdout
    assert f"@ {HUB2}[4500] hub 2/2 ({HUB2})" in text or f"@ {HUB2}[500] hub 2/2 ({HUB2})" in text
    wrong = piked.pikectl("initiate", "--timeout", "0", "--peer", "203.0.113.9", "hq", check=False)
    assert wrong.returncode != 0 and "is not one of hq's remote_addrs" in wrong.stderr


# -- route-based ----------------------------------------------------------------------------


def routed(side: str, child_keys: dict[str, Any]) -> tuple[Connection, dict[str, Any]]:
    """``hq`` between the gateways with 0.0.0.0/0 selectors; piked's extra child keys."""
    left = side == "left"
    conn = branch_hq(side, ("aes128gcm16-prfsha256-x25519",), ("aes128gcm16",))
    conn.children = [
        Child(
            "lan",
            ANY4,
            ANY4,
            ("aes128gcm16",),
            start_action="start" if left else "none",
            extra={} if left else child_keys,
        )
    ]
    return conn, child_keys


def updown_script(tmp_path: Path, up: str, down: str) -> Path:
    path = tmp_path / "updown.sh"
    path.write_text(UPDOWN.format(dir=tmp_path, up=up, down=down))
    path.chmod(0o755)
    return path


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def start_hq_charon(make_charon: MakeCharon, right: Namespace, keys: dict[str, Any]) -> None:
    conn, _ = routed("right", keys)
    node = make_charon(right, "hq", conn, SECRET, start=False)
    node.charon_settings["install_routes"] = "no"  # routes are the test's (as on a router)
    node.start()


@pytest.fixture
def routed_gw(lab: Lab, esp: None) -> Iterator[Any]:
    yield make_gateways(lab, lan_routes=False)


def test_xfrm_interface_made_by_piked_routes_what_updown_sends_into_it(
    routed_gw: Any, make_charon: MakeCharon, make_piked: MakePiked, tmp_path: Path
) -> None:
    gw = routed_gw
    made = gw.right.ip("link", "add", "ipsec0", "type", "xfrm", "if_id", "7", check=False)
    if made.returncode != 0:
        pytest.skip(f"NEEDS THE PIKE UML KERNEL: XFRM interfaces ({made.stderr.strip()})")
    gw.right.ip("link", "set", "ipsec0", "up")
    gw.right.ip("route", "add", "10.1.0.0/24", "dev", "ipsec0")
    start_hq_charon(make_charon, gw.right, {"if_id_in": 7, "if_id_out": 7})
    script = updown_script(
        tmp_path,
        'ip route add 10.2.0.0/24 dev "$PLUTO_INTERFACE"',
        'ip route del 10.2.0.0/24 dev "$PLUTO_INTERFACE"',
    )
    conn, _ = routed("left", {})
    keys: dict[str, TomlValue] = {
        "if_id_in": 7,
        "if_id_out": 7,
        "interface": "ipsec0",
        "updown": str(script),
    }
    piked = make_piked(gw.left, "branch", conn, SECRET, start=False)
    piked.extra["hq.lan"] = keys
    piked.start()
    sa = wait_for("tunnel up", lambda: piked_lan(piked), 30.0)
    route = wait_for(
        "updown's route",
        lambda: gw.left.ip("route", "show", "10.2.0.0/24").stdout.strip(),
        10.0,
    )
    assert "dev ipsec0" in route
    link = gw.left.ip("-d", "link", "show", "ipsec0").stdout
    assert "xfrm if_id 0x7" in link, link
    up = env_file(tmp_path / "up-client.env")
    assert up["PLUTO_INTERFACE"] == "ipsec0" and up["PLUTO_IF_ID_OUT"] == "7"
    assert (up["PLUTO_ME"], up["PLUTO_PEER"]) == ("192.0.2.1", "192.0.2.2")
    assert up["PLUTO_CONNECTION"] == "lan" and up["PLUTO_PEER_CLIENT"] == "0.0.0.0/0"
    before = child_packets(sa)
    assert host_of(gw.left_lan).ping("10.2.0.2", count=3)
    after = child_packets(piked_lan(piked) or sa)
    assert after[0] >= before[0] + 3 and after[1] >= before[1] + 3
    # routed past ipsec0, traffic stays clear: the policies are the interface's only
    before = child_packets(piked_lan(piked) or sa)
    assert gw.left.ping("192.0.2.2", count=2)
    assert child_packets(piked_lan(piked) or sa)[1] == before[1]
    piked.terminate("hq")
    wait_for("down-client", lambda: (tmp_path / "down-client.env").exists(), 10.0)
    wait_for("route gone", lambda: not gw.left.ip("route", "show", "10.2.0.0/24").stdout, 10.0)
    piked.stop()
    assert gw.left.ip("link", "show", "ipsec0", check=False).returncode != 0  # removed


def test_vti_made_by_piked_with_bgp_learning_the_far_lan(
    routed_gw: Any,
    make_charon: MakeCharon,
    make_piked: MakePiked,
    tmp_path: Path,
    require: Require,
) -> None:
    require(frr_available(), "FRR (Debian package frr) not installed")
    gw = routed_gw
    gw.right.ip(
        "link", "add", "vti0", "type", "vti", "local", "192.0.2.2", "remote", "192.0.2.1",
        "key", "42",
    )  # fmt: skip
    gw.right.sysctl("net.ipv4.conf.vti0.disable_policy", 1)
    gw.right.ip("addr", "add", "169.254.10.2/30", "dev", "vti0")
    gw.right.ip("link", "set", "vti0", "up")
    start_hq_charon(make_charon, gw.right, {"mark_in": 42, "mark_out": 42})
    script = updown_script(tmp_path, 'ip addr add 169.254.10.1/30 dev "$PLUTO_INTERFACE"', "true")
    conn, _ = routed("left", {})
    piked = make_piked(gw.left, "branch", conn, SECRET, start=False)
    vti: dict[str, TomlValue] = {
        "mark_in": 42,
        "mark_out": 42,
        "interface": "vti0",
        "updown": str(script),
    }
    piked.extra["hq.lan"] = vti
    piked.start()
    sa = wait_for("tunnel up", lambda: piked_lan(piked), 30.0)
    wait_for("vti0 address", lambda: "169.254.10.1" in " ".join(gw.left.addrs("vti0")), 10.0)
    link = gw.left.ip("-d", "link", "show", "vti0").stdout
    assert "remote 192.0.2.2 local 192.0.2.1 ikey 0.0.0.42 okey 0.0.0.42" in link, link
    assert env_file(tmp_path / "up-client.env")["PLUTO_MARK_IN"] == "42/0xffffffff"
    # no LAN routes anywhere: only BGP across the tunnel can tell each side the other LAN
    assert not gw.left.ip("route", "show", "10.2.0.0/24").stdout.strip()
    speakers = [
        BgpSpeaker(gw.left, tmp_path, "branch", 65001, "169.254.10.1", "169.254.10.2", 65002,
                   ("10.1.0.0/24",)),
        BgpSpeaker(gw.right, tmp_path, "hq", 65002, "169.254.10.2", "169.254.10.1", 65001,
                   ("10.2.0.0/24",)),
    ]  # fmt: skip
    try:
        for s in speakers:
            s.start()
        learned, took = speakers[0].wait_route("10.2.0.0/24")
        speakers[1].wait_route("10.1.0.0/24")
        print(f"BGP across the VTI: 10.2.0.0/24 learned in {took:.2f}s: {learned}")
        assert "via 169.254.10.2 dev vti0" in learned
        before = child_packets(piked_lan(piked) or sa)
        assert before[0] > 0 and before[1] > 0  # the BGP session itself rides the tunnel
        assert host_of(gw.left_lan).ping("10.2.0.2", count=3)
        after = child_packets(piked_lan(piked) or sa)
        assert after[0] >= before[0] + 3 and after[1] >= before[1] + 3
    finally:
        for s in speakers:
            s.stop()
            print(s.log_tail())
