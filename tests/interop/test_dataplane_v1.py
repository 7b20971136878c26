"""ESP data plane through piked's IKEv1 SAs: gateways with LANs behind them.

  lefthost .2 -- 10.1.0.1 left 192.0.2.1 == wan0 == 192.0.2.2 right 10.2.0.1 -- righthost .2
                         (piked)                    (strongSwan kernel-netlink, or piked)

Main Mode PSK + Quick Mode, piked against strongSwan and piked, plain and UDP-encapsulated,
are in test_dataplane.py (parametrized ``ikev1``/``ikev2``; the interop tier runs them).
Here the IKEv1-only scenarios: NAT in the middle, traps, Quick Mode rekeys and
reauthentication under traffic, Aggressive Mode PSK both roles, and DPD against a piked
killed by PID and started again (``dpd_action = restart`` with ``keyingtries``,
``dpd_action = trap``). Marked ``kernel_interop``: tests/guest/test_ikev1_tier.py runs them
inside User-Mode-Linux.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from lib.pikeconf import TomlValue

from .conftest import Gateways, MakeCharon, MakePiked
from .netns import Lab
from .piked import PikedNode
from .strongswan import StrongswanNode
from .strongswan_v1 import ikev1_connection
from .test_dataplane import (  # noqa: F401  (esp_gw/shared_gw are fixtures)
    SECRET_V1,
    _spi,
    check_counters_moved,
    conn_v1,
    counters_of,
    esp_gw,
    piked_child,
    ping,
    shared_gw,
    traffic_both_ways,
)
from .test_lifecycle_dataplane import nat_gateways

BRANCH, HQ = "branch1.example.net", "hq.example.net"
SECRET = SECRET_V1

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]

conn = conn_v1


@pytest.fixture
def gw(esp_gw: Gateways) -> Gateways:  # noqa: F811  (test_dataplane's topology and checks)
    return esp_gw


@pytest.fixture
def nat_lab_v1(run_prefix: str) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}v1n-") as la:
        yield la


def test_nat_in_the_middle_ikev1(
    nat_lab_v1: Lab, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    """piked (192.168.1.2) behind a masquerading NAT (192.0.2.1) initiates to charon:
    NAT-D shows the NAT, Main Mode floats to 4500, the Quick Mode negotiates
    UDP-encapsulated tunnel mode, keepalives keep the mapping, traffic crosses."""
    gw, _, how = nat_gateways(nat_lab_v1)
    if not gw.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_ikev1_tier.py runs this in UML")
    esp = "aes256-sha256"
    charon_conn = ikev1_connection(
        "192.0.2.2",
        "192.0.2.1",
        local_ts="10.2.0.0/24",
        remote_ts="10.1.0.0/24",
        proposals=("aes256-sha256-modp3072",),
        esp_proposals=(esp,),
    )
    charon = make_charon(gw.right, "charon", charon_conn, SECRET, libipsec=False)
    piked_conn = ikev1_connection(
        "192.168.1.2",
        "192.0.2.2",
        local_ts="10.1.0.0/24",
        remote_ts="10.2.0.0/24",
        proposals=("aes256-sha256-modp3072",),
        esp_proposals=(esp,),
    )
    piked = make_piked(gw.left, "piked", piked_conn, SECRET, start=False)
    piked.daemon["keepalive"] = "2s"
    piked.start()
    piked.poll_via_socket = True
    t0 = time.monotonic()
    piked.initiate("hq")
    p = piked.wait_established("hq", timeout=30, child="lan")
    c = charon.wait_established("hq", timeout=30, child="lan")
    took = time.monotonic() - t0
    assert (p.local_port, p.remote_port) == (4500, 4500), p
    assert (c.remote_host, c.remote_port) == ("192.0.2.1", 4500), c
    raw = json.loads(str(p.raw["json"]))
    assert raw["nat_local"] and not raw["nat_remote"], raw
    states = gw.left.run(["ip", "xfrm", "state"]).stdout
    assert states.count("encap type espinudp sport 4500 dport 4500") == 2, states
    before = counters_of(piked_child(piked, cli=False))
    traffic_both_ways(gw)
    check_counters_moved(piked, before)
    print(f"IKEv1 through NAT ({how}): up in {took:.2f}s, floated to 4500, ESP in UDP")


def test_ikev1_trap_acquire(gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked) -> None:
    """``start_action = "trap"``: policies only until the first packet; the kernel's ACQUIRE
    makes piked run Main Mode + Quick Mode with the trap's reqid, and pings cross."""
    esp = "aes256-sha256"
    charon = make_charon(gw.right, "charon", conn("right", esp), SECRET, libipsec=False)
    trapped = conn("left", esp)
    trapped.children[0].start_action = "trap"
    piked = make_piked(gw.left, "piked", trapped, SECRET)
    piked.poll_via_socket = True
    assert "reqid" in gw.left.run(["ip", "xfrm", "policy"]).stdout
    assert piked.ike_sa("hq") is None
    host = gw.left_lan.host
    assert host is not None
    t0 = time.monotonic()
    while not ping(host, gw.right_lan.host_ip):
        assert time.monotonic() - t0 < 30, piked.log_tail(40)
    took = time.monotonic() - t0
    assert "kernel ACQUIRE reqid" in piked.log_text()
    p = piked.wait_established("hq", timeout=10, child="lan")
    charon.wait_established("hq", timeout=10, child="lan")
    assert p.version == 1
    traffic_both_ways(gw)
    print(f"IKEv1 trap: first ping to ping answered in {took:.2f}s")


def test_ikev1_quick_mode_refusal_names_what_we_asked(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    """charon has other ESP proposals: it refuses piked's Quick Mode (NO_PROPOSAL_CHOSEN in
    an Informational), and piked's one WARNING names the selectors and ESP proposals it
    asked for, as IKEv2's does; ``pikectl initiate`` exits 1."""
    make_charon(gw.right, "charon", conn("right", "aes128-sha256"), SECRET, libipsec=False)
    piked = make_piked(gw.left, "piked", conn("left", "aes256-sha384"), SECRET)
    out = piked.initiate("hq", check=False, wait=20)
    assert out.returncode == 1, out
    said = [line for line in piked.log_text().splitlines() if "peer sent error notify" in line]
    assert len(said) == 1 and "WARNING" in said[0], said
    assert said[0].endswith(
        "peer sent error notify NO_PROPOSAL_CHOSEN; we asked for lan: local_ts 10.1.0.0/24,"
        " remote_ts 10.2.0.0/24, ESP aes256-sha384-noesn"
    ), said
    print(f"IKEv1 Quick Mode refused: {said[0].split('WARNING', 1)[1].strip()}")


def _lan(node: PikedNode | StrongswanNode) -> list[tuple[str, str]]:
    sa = node.ike_sa("hq")
    if sa is None:
        return []
    return [
        (c.spi_in, c.spi_out) for c in sa.children if c.name == "lan" and c.state == "INSTALLED"
    ]


@pytest.mark.parametrize("rekeyer", ["piked", "strongswan"])
def test_ikev1_quick_mode_rekey_under_traffic(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked, rekeyer: str
) -> None:
    """The side that set the child up rekeys it with a new Quick Mode at rekey_time, then
    deletes the old pair; the other side follows; traffic crosses the new pair."""
    esp = "aes256-sha256"
    theirs = conn("right", esp)
    if rekeyer == "strongswan":
        theirs.children[0].rekey_time = "4s"
        theirs.children[0].extra.update(life_time="30s", rand_time="0s")
    charon = make_charon(gw.right, "charon", theirs, SECRET, libipsec=False)
    piked = make_piked(gw.left, "piked", conn("left", esp), SECRET, start=False)
    if rekeyer == "piked":
        piked.extra = {"hq.lan": {"rekey_time": "4s", "life_time": "60s", "rand_time": 0}}
    piked.start()
    piked.poll_via_socket = True
    if rekeyer == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq")
    piked.wait_established("hq", timeout=30, child="lan")
    charon.wait_established("hq", timeout=30, child="lan")
    (first,) = _lan(piked)
    t0 = time.monotonic()
    while True:
        mine, peers = _lan(piked), _lan(charon)
        if rekeyer == "piked":
            # piked deletes the old pair once the new one is in
            done = len(mine) == 1 and mine[0] != first and peers == [mine[0][::-1]]
        else:
            # charon's IKEv1 rekey keeps the old pair (REKEYED) until its life_time ends,
            # and piked the pairs it answered: charon's new pair is one of piked's
            done = (
                len(peers) == 1
                and peers[0] != first[::-1]
                and peers[0][::-1] in mine
                and len(mine) >= 2
            )
        if done:
            break
        if time.monotonic() - t0 > 40:
            keep = ("QUICK_MODE", "rekey", "CHILD_SA", "DELETE", "INFORMATIONAL", "error")
            clog = [ln for ln in charon.log_text().splitlines() if any(k in ln for k in keep)]
            raise AssertionError((first, mine, peers, "\n".join(clog[-60:])))
        time.sleep(0.3)
    took = time.monotonic() - t0
    traffic_both_ways(gw)
    print(f"IKEv1 CHILD rekey by {rekeyer}: {first} -> {mine} after {took:.2f}s, traffic ok")


def test_ikev1_reauthentication_under_traffic(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    """IKEv1 has no phase-1 rekey: at rekey_time piked builds a new ISAKMP SA and its Quick
    Mode, then deletes the old SA; charon ends with the new one only, traffic crosses it."""
    esp = "aes256-sha256"
    charon = make_charon(gw.right, "charon", conn("right", esp), SECRET, libipsec=False)
    piked = make_piked(gw.left, "piked", conn("left", esp), SECRET, start=False)
    piked.extra = {"hq": {"rekey_time": "5s"}}
    piked.start()
    piked.poll_via_socket = True
    piked.initiate("hq")
    old = piked.wait_established("hq", timeout=30, child="lan")
    charon.wait_established("hq", timeout=30, child="lan")
    t0 = time.monotonic()
    while True:
        p, c = piked.list_sas(), charon.list_sas()
        spis = {(s.initiator_spi, s.responder_spi) for s in p}
        if (
            len(p) == len(c) == 1
            and (old.initiator_spi, old.responder_spi) not in spis
            and (c[0].initiator_spi, c[0].responder_spi) in spis
            and _lan(piked)
            and _lan(charon) == [m[::-1] for m in _lan(piked)]
        ):
            break
        assert time.monotonic() - t0 < 40, (p, c)
        time.sleep(0.3)
    took = time.monotonic() - t0
    traffic_both_ways(gw)
    print(f"IKEv1 reauthentication: new ISAKMP SA and CHILD_SA {took:.2f}s after the first")


@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_ikev1_aggressive_mode_psk_dataplane(
    gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked, initiator: str
) -> None:
    """Aggressive Mode PSK (``aggressive = true`` both ends, FQDN identities) then Quick
    Mode into the kernel: pings and UDP cross, piked's counters match the kernel's."""
    esp = "aes256-sha256"
    charon = make_charon(
        gw.right, "charon", conn("right", esp, aggressive=True), SECRET, libipsec=False
    )
    piked = make_piked(gw.left, "piked", conn("left", esp, aggressive=True), SECRET)
    piked.poll_via_socket = True
    t0 = time.monotonic()
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    p = piked.wait_established("hq", timeout=30, child="lan")
    c = charon.wait_established("hq", timeout=30, child="lan")
    took = time.monotonic() - t0
    assert p.version == c.version == 1
    assert (p.local_id, p.remote_id) == (BRANCH, HQ)
    assert "Aggressive Mode" in piked.log_text()
    assert "AGGRESSIVE" in charon.log_text()
    pc, cc = p.child("lan"), c.child("lan")
    assert pc is not None and cc is not None
    assert (_spi(pc.spi_in), _spi(pc.spi_out)) == (_spi(cc.spi_out), _spi(cc.spi_in))
    before = counters_of(piked_child(piked, cli=False))
    traffic_both_ways(gw)
    check_counters_moved(piked, before)
    print(f"IKEv1 Aggressive Mode PSK tunnel up ({initiator} initiated) in {took:.2f}s")


# -- DPD actions between two piked: the responder is killed (SIGKILL by PID, no Delete) ----

# fast retransmits: a dead peer is found (and a restart attempt given up) in seconds
FAST: dict[str, TomlValue] = {
    "log_level": "debug",
    "retransmit_timeout": "0.5s",
    "retransmit_tries": 2,
}


def _dpd_pair(
    gw: Gateways, make_piked: MakePiked, action: str, *, trap: bool = False
) -> tuple[PikedNode, PikedNode]:
    esp = "aes256-sha256"
    mine = conn("left", esp)
    mine.dpd_delay = "1s"
    mine.children[0].dpd_action = action
    if trap:
        mine.children[0].start_action = "trap"
    left = make_piked(gw.left, "left", mine, SECRET, start=False)
    # keyingtries 0: the restart keeps trying while the peer is down
    left.extra = {"hq": {"dpd_timeout": "3s", "keyingtries": 0}}
    left.daemon.update(FAST)
    right = make_piked(gw.right, "right", conn("right", esp), SECRET, start=False)
    right.daemon.update(FAST)
    left.start()
    right.start(timeout=60)  # a busy UML guest can take long to answer pikectl
    left.poll_via_socket = right.poll_via_socket = True
    return left, right


def _kill(node: PikedNode) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(timeout=5)


def _wait_log(node: PikedNode, text: str, timeout: float) -> float:
    t0 = time.monotonic()
    while text not in node.log_text():
        assert time.monotonic() - t0 < timeout, (text, node.log_tail(40))
        time.sleep(0.2)
    return time.monotonic() - t0


def _pings(gw: Gateways, timeout: float) -> float:
    host = gw.left_lan.host
    assert host is not None
    t0 = time.monotonic()
    while not ping(host, gw.right_lan.host_ip):
        assert time.monotonic() - t0 < timeout, "no ping answered"
    return time.monotonic() - t0


def test_two_piked_ikev1_dpd_restart(gw: Gateways, make_piked: MakePiked) -> None:
    """``dpd_action = restart``: the responder piked is killed; the initiator finds it dead
    by DPD, keeps initiating (``keyingtries = 0``) while it is down, and once it is started
    again a new ISAKMP SA and CHILD_SA are up and pings cross."""
    left, right = _dpd_pair(gw, make_piked, "restart")
    left.initiate("hq")
    old = left.wait_established("hq", timeout=30, child="lan")
    right.wait_established("hq", timeout=30, child="lan")
    traffic_both_ways(gw)
    _kill(right)
    t0 = time.monotonic()
    dead = _wait_log(left, "DPD: peer did not answer", 20)
    # a restart attempt went unanswered and the next one started: keyingtries at work
    _wait_log(left, "keyingtries: attempt 2", 20)
    down = time.monotonic() - t0
    right.start(timeout=60)  # a busy UML guest can take long to answer pikectl
    t1 = time.monotonic()
    while True:
        sa = left.ike_sa("hq")
        if sa is not None and sa.initiator_spi != old.initiator_spi:
            child = sa.child("lan")
            if sa.state == "ESTABLISHED" and child is not None and child.state == "INSTALLED":
                break
        assert time.monotonic() - t1 < 30, (sa, left.log_tail(40))
        time.sleep(0.2)
    right.wait_established("hq", timeout=10, child="lan")
    took = _pings(gw, 10)
    traffic_both_ways(gw)
    back = time.monotonic() - t1
    print(
        f"IKEv1 dpd_action=restart: peer found dead {dead:.2f}s after the kill, "
        f"restarting for {down:.2f}s; tunnel back and pinging {back:.2f}s after the peer "
        f"restarted (first ping {took:.2f}s)"
    )


def test_two_piked_ikev1_dpd_trap(gw: Gateways, make_piked: MakePiked) -> None:
    """``dpd_action = trap``: once the killed peer is found dead the child's policies stay
    in the kernel as trap policies with no SAs; when the peer is back, the next ping's
    ACQUIRE negotiates the tunnel again and pings cross."""
    left, right = _dpd_pair(gw, make_piked, "trap", trap=True)
    host = gw.left_lan.host
    assert host is not None
    first = _pings(gw, 30)  # the trap brings it up
    left.wait_established("hq", timeout=10, child="lan")
    right.wait_established("hq", timeout=10, child="lan")
    _kill(right)
    t0 = time.monotonic()
    _wait_log(left, "DPD: peer did not answer", 20)
    while left.ike_sa("hq") is not None:
        assert time.monotonic() - t0 < 20, left.ike_sa("hq")
        time.sleep(0.2)
    dead = time.monotonic() - t0
    policies = gw.left.run(["ip", "xfrm", "policy"]).stdout
    assert "10.1.0.0/24 dst 10.2.0.0/24" in policies, policies
    assert "10.2.0.0/24 dst 10.1.0.0/24" in policies, policies
    assert gw.left.run(["ip", "xfrm", "state"]).stdout.strip() == ""
    right.start(timeout=60)  # a busy UML guest can take long to answer pikectl
    t1 = time.monotonic()
    again = _pings(gw, 30)
    left.wait_established("hq", timeout=10, child="lan")
    right.wait_established("hq", timeout=10, child="lan")
    traffic_both_ways(gw)
    print(
        f"IKEv1 dpd_action=trap: first ping answered after {first:.2f}s; peer found dead "
        f"{dead:.2f}s after the kill, policies back to trap; after the peer restarted the "
        f"next ping was answered in {again:.2f}s ({time.monotonic() - t1:.2f}s to traffic)"
    )
