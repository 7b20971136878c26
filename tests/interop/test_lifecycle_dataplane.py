"""Kernel tier: the IKEv2 lifecycle with real ESP, against strongSwan and piked (issue 3, item 7).

  lefthost .2 -- 10.1.0.1 left 192.0.2.1 == wan0 == 192.0.2.2 right 10.2.0.1 -- righthost .2
                         (piked)                    (charon kernel-netlink, or piked)

- CHILD_SA rekey under a continuous UDP stream: 200 numbered datagrams/s from lefthost to
  righthost and back for 12 s; in the middle piked rekeys the CHILD_SA, the peer rekeys it,
  and one side rekeys the IKE SA. The receivers count: zero datagrams lost, none refused by
  the sender. With PFS (``aes128gcm16-x25519``, ``aes256-sha256-modp3072``) the rekey
  CREATE_CHILD_SA carries KE. The CHILD_SA keeps working on the new IKE SA.
- NAT in the middle: a ``nat`` namespace masquerades left (192.168.1.2) behind 192.0.2.1
  (nftables, or stateless tc act_nat where the kernel has no nat chain type); IKE floats to
  4500, the SAs are UDP-encapsulated, piked's keepalives (one octet 0xFF to 4500, every 2 s)
  are seen on the NAT's inside interface, and a UDP stream crosses both ways.
- NAT mapping change: charon behind the NAT, piked public; the NAT moves charon from
  192.0.2.1 to 192.0.2.3; charon's next request (a CHILD_SA rekey) comes from the new
  address, piked moves its SAs there (RFC 7296 §2.23), and the stream crosses again.

Marked ``kernel_interop``: tests/guest/test_interop_tier.py runs this file inside the UML
guest (in the same boot as test_dataplane.py).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import UDPSTREAM, wait_for
from .netns import Lab, Namespace, kill_pid
from .piked import PikedNode
from .strongswan import Connection, IkeSaInfo, Secret, StrongswanNode
from .topology import branch_hq, make_gateways, make_nat_gateways, tc_nat
from .udp_capture import CAPTURE

PSK = "pike-lifecycle-dataplane-psk"
LEFT_ID, RIGHT_ID = "branch1.example.net", "hq.example.net"
SECRET = Secret("hq", PSK, [LEFT_ID, RIGHT_ID])
RATE = 200.0  # datagrams per second, each way
SECONDS = 12.0
REKEY_AT = (3.0, 6.0, 9.0)
# ``pikectl rekey`` (tests/interop/test_lifecycle_interop.py) costs seconds of Python start-up
# in the guest: here the same request goes over the control socket, so the rekeys land on time
LAN = {"conn": "hq", "child": "lan"}
HQ = {"conn": "hq"}

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]


def conn(side: str, esp: str, *, local: str | None = None, remote: str | None = None) -> Connection:
    proposals = ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072")
    return branch_hq(side, proposals, (esp,), local=local, remote=remote)


@pytest.fixture(scope="module")
def shared_gw(run_prefix: str) -> Iterator[Gateways]:
    with Lab.create(f"{run_prefix}ld-") as la:
        yield make_gateways(la)


@pytest.fixture
def esp_gw(shared_gw: Gateways) -> Iterator[Gateways]:
    if not shared_gw.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    yield shared_gw
    for ns in (shared_gw.left, shared_gw.right):
        ns.run(["ip", "xfrm", "state", "flush"])
        ns.run(["ip", "xfrm", "policy", "flush"])


# -- the stream ----------------------------------------------------------------------------


def _start_receiver(ns: Namespace, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", UDPSTREAM, "recv", str(port), "3", str(SECONDS + 60)]
    proc = ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == b"ready", (line, proc.stderr.read() if proc.stderr else b"")
    return proc


def _result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_pid(proc.pid)
        out, err = proc.communicate(timeout=5)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    return data


def stream_with(
    gw: Gateways,
    actions: list[tuple[float, str, Callable[[], object]]],
    seconds: float = SECONDS,
) -> dict[str, Any]:
    """Both-way UDP stream for ``seconds``; ``actions`` run at their offsets meanwhile."""
    lhost, rhost = gw.left_lan.host, gw.right_lan.host
    assert lhost is not None and rhost is not None
    rx_r = _start_receiver(rhost, 6000)
    rx_l = _start_receiver(lhost, 6001)
    send = [sys.executable, "-c", UDPSTREAM, "send"]
    tx_l = lhost.popen(
        [*send, gw.right_lan.host_ip, "6000", str(RATE), str(seconds)], stdout=subprocess.PIPE
    )
    tx_r = rhost.popen(
        [*send, gw.left_lan.host_ip, "6001", str(RATE), str(seconds)], stdout=subprocess.PIPE
    )
    stats0 = {ns.short: xfrm_stat(ns) for ns in (gw.left, gw.right)}
    t0 = time.monotonic()
    done: list[str] = []
    for at, what, fn in actions:
        delay = t0 + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fn()
        done.append(f"{what} at {time.monotonic() - t0:.2f}s")
    sent_lr = _result(tx_l, SECONDS + 60)
    sent_rl = _result(tx_r, SECONDS + 60)
    got_lr = _result(rx_r, 30)
    got_rl = _result(rx_l, 30)
    res: dict[str, Any] = {
        "left->right": (sent_lr, got_lr),
        "right->left": (sent_rl, got_rl),
        "actions": done,
    }
    for way in ("left->right", "right->left"):
        sent, got = res[way]
        print(
            f"{way}: sent {sent['sent']} in {sent['seconds']:.2f}s "
            f"(send errors {sent['send_errors']}), received {got['received']}, "
            f"lost {sent['sent'] - got['received']}, duplicates {got['duplicates']}, "
            f"reordered {got['reordered']}, receive buffer drops {got['rcvbuf_errors']}"
        )
    print("; ".join(done))
    for ns in (gw.left, gw.right):
        grew = {k: v - stats0[ns.short].get(k, 0) for k, v in xfrm_stat(ns).items()}
        grew = {k: v for k, v in grew.items() if v}
        if grew:
            print(f"{ns.short} /proc/net/xfrm_stat grew: {grew}")
    return res


def xfrm_stat(ns: Namespace) -> dict[str, int]:
    """The namespace's XFRM error counters (why the kernel dropped IPsec packets)."""
    out = ns.run(["cat", "/proc/net/xfrm_stat"], check=False).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def assert_no_loss(res: dict[str, Any]) -> None:
    for way in ("left->right", "right->left"):
        sent, got = res[way]
        assert sent["send_errors"] == 0, (way, sent)
        assert got["received"] == sent["sent"], (way, sent, got)
        assert got["missing_count"] == 0 and got["duplicates"] == 0, (way, got)


def warm_up(gw: Gateways) -> None:
    host = gw.left_lan.host
    assert host is not None
    wait_for("ping across", lambda: host.ping(gw.right_lan.host_ip, timeout=1.0), 15, 0)


# -- helpers -------------------------------------------------------------------------------


def _spi(v: str) -> int:
    return int(v.removeprefix("0x"), 16)


def child_spis(sa: IkeSaInfo) -> tuple[int, int]:
    c = sa.child("lan")
    assert c is not None and c.state == "INSTALLED", sa
    return (_spi(c.spi_in), _spi(c.spi_out))


def ike_spis(sa: IkeSaInfo) -> tuple[str, str]:
    return (sa.initiator_spi.removeprefix("0x"), sa.responder_spi.removeprefix("0x"))


def settled(a: PikedNode | StrongswanNode, b: PikedNode | StrongswanNode) -> tuple[Any, Any]:
    """Both sides have one ESTABLISHED IKE SA, one INSTALLED ``lan``, and they agree."""

    def check() -> tuple[IkeSaInfo, IkeSaInfo] | None:
        sa_a = [s for s in a.list_sas() if s.name == "hq"]
        sa_b = [s for s in b.list_sas() if s.name == "hq"]
        if len(sa_a) != 1 or len(sa_b) != 1:
            return None
        x, y = sa_a[0], sa_b[0]
        if x.state != "ESTABLISHED" or y.state != "ESTABLISHED" or ike_spis(x) != ike_spis(y):
            return None
        cx = [c for c in x.children if c.name == "lan"]
        cy = [c for c in y.children if c.name == "lan"]
        if len(cx) != 1 or len(cy) != 1 or {cx[0].state, cy[0].state} != {"INSTALLED"}:
            return None
        if (_spi(cx[0].spi_in), _spi(cx[0].spi_out)) != (_spi(cy[0].spi_out), _spi(cy[0].spi_in)):
            return None
        return x, y

    return wait_for("both sides settled on one IKE SA and one CHILD_SA", check, 30, 0.2)


def xfrm_state_count(ns: Namespace) -> int:
    """ESP SAs in the kernel, without the larval ones (SPI 0) that an ACQUIRE leaves for
    a while when a packet met a policy in a moment without an SA."""
    out = ns.run(["ip", "xfrm", "state"]).stdout
    return out.count("proto esp") - out.count("proto esp spi 0x00000000")


# -- CHILD_SA rekey under a stream ---------------------------------------------------------


@pytest.mark.parametrize(
    ("esp", "ike_rekeyer"),
    [("aes128gcm16-x25519", "strongswan"), ("aes256-sha256-modp3072", "piked")],
)
def test_rekey_under_stream_strongswan(
    esp_gw: Gateways, make_charon: MakeCharon, make_piked: MakePiked, esp: str, ike_rekeyer: str
) -> None:
    charon = make_charon(esp_gw.right, "charon", conn("right", esp), SECRET, libipsec=False)
    piked = make_piked(esp_gw.left, "piked", conn("left", esp), SECRET)
    piked.poll_via_socket = True
    piked.initiate("hq")
    p0, _ = settled(piked, charon)
    warm_up(esp_gw)

    def ike_rekey() -> object:
        if ike_rekeyer == "piked":
            return piked.control("rekey", HQ)
        return charon.swanctl("--rekey", "--ike", "hq")

    res = stream_with(
        esp_gw,
        [
            (REKEY_AT[0], "piked rekeys lan", lambda: piked.control("rekey", LAN)),
            (REKEY_AT[1], "charon rekeys lan", lambda: charon.swanctl("--rekey", "--child", "lan")),
            (REKEY_AT[2], f"{ike_rekeyer} rekeys the IKE SA", ike_rekey),
        ],
    )
    p1, _ = settled(piked, charon)
    assert_no_loss(res)
    assert ike_spis(p1) != ike_spis(p0)
    first, last = child_spis(p0), child_spis(p1)
    assert first[0] != last[0] and first[1] != last[1]
    plog, clog = piked.log_text(), charon.log_text()
    rekeys = re.findall(r"CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]", plog)
    assert len(rekeys) >= 2, plog[-5000:]  # one sent, one received, each with KE (PFS)
    group = {"x25519": "CURVE_25519", "modp3072": "MODP_3072"}[esp.rsplit("-", 1)[1]]
    pfs = re.findall(rf"selected proposal: ESP:\S*/{group}/", clog)
    assert pfs, clog[-3000:]  # charon chose that group for the rekeys
    assert xfrm_state_count(esp_gw.left) == 2, esp_gw.left.run(["ip", "xfrm", "state"]).stdout
    print(
        f"piked <-> strongSwan {esp}: CHILD_SA {first[0]:08x}/{first[1]:08x} -> "
        f"{last[0]:08x}/{last[1]:08x}, IKE SA {ike_spis(p0)} -> {ike_spis(p1)}"
    )


def test_rekey_under_stream_two_piked(esp_gw: Gateways, make_piked: MakePiked) -> None:
    esp = "aes128gcm16-x25519"
    left = make_piked(esp_gw.left, "left", conn("left", esp), SECRET)
    right = make_piked(esp_gw.right, "right", conn("right", esp), SECRET)
    left.poll_via_socket = right.poll_via_socket = True
    left.initiate("hq")
    l0, _ = settled(left, right)
    warm_up(esp_gw)
    res = stream_with(
        esp_gw,
        [
            (REKEY_AT[0], "left rekeys lan", lambda: left.control("rekey", LAN)),
            (REKEY_AT[1], "right rekeys lan", lambda: right.control("rekey", LAN)),
            (REKEY_AT[2], "right rekeys the IKE SA", lambda: right.control("rekey", HQ)),
        ],
    )
    l1, _ = settled(left, right)
    assert_no_loss(res)
    assert ike_spis(l1) != ike_spis(l0)
    first, last = child_spis(l0), child_spis(l1)
    assert first[0] != last[0] and first[1] != last[1]
    for ns in (esp_gw.left, esp_gw.right):
        assert xfrm_state_count(ns) == 2, ns.run(["ip", "xfrm", "state"]).stdout
    print(
        f"piked <-> piked {esp}: CHILD_SA {first[0]:08x}/{first[1]:08x} -> "
        f"{last[0]:08x}/{last[1]:08x}, IKE SA {ike_spis(l0)} -> {ike_spis(l1)}"
    )


# -- NAT in the middle ---------------------------------------------------------------------


nat_gateways = make_nat_gateways  # also imported by test_dataplane_v1


@pytest.fixture
def nat_lab(run_prefix: str) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}ln-") as la:
        yield la


def test_nat_in_the_middle_strongswan(
    nat_lab: Lab, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    gw, nat, how = nat_gateways(nat_lab)
    if not gw.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    esp = "aes128gcm16"
    charon = make_charon(gw.right, "charon", conn("right", esp), SECRET, libipsec=False)
    piked = make_piked(
        gw.left, "piked", conn("left", esp, local="192.168.1.2"), SECRET, start=False
    )
    piked.daemon["keepalive"] = "2s"
    piked.start()
    piked.poll_via_socket = True
    t0 = time.monotonic()
    piked.initiate("hq")
    p, c = settled(piked, charon)
    took = time.monotonic() - t0
    assert (p.local_port, p.remote_port) == (4500, 4500), p
    assert c.remote_host == "192.0.2.1" and c.remote_port == 4500, c
    raw = json.loads(str(p.raw["json"]))
    assert raw["nat_local"] and not raw["nat_remote"], raw
    states = gw.left.run(["ip", "xfrm", "state"]).stdout
    assert states.count("encap type espinudp sport 4500 dport 4500") == 2, states

    cap = nat.popen(
        [sys.executable, "-c", CAPTURE, "priv0", "5.0", "500,4500", "8"], stdout=subprocess.PIPE
    )
    assert cap.stdout is not None and cap.stdout.readline().strip() == b"ready"
    out, _ = cap.communicate(timeout=30)
    seen = [json.loads(line) for line in out.decode().splitlines()]
    keepalives = [
        d
        for d in seen
        if d["data"] == "ff"
        and d["len"] == 1
        and (d["src"], d["sport"], d["dst"], d["dport"]) == ("192.168.1.2", 4500, "192.0.2.2", 4500)
    ]
    assert 2 <= len(keepalives) <= 4, seen
    gaps = [round(b["t"] - a["t"], 2) for a, b in itertools.pairwise(keepalives)]

    warm_up(gw)
    res = stream_with(gw, [], seconds=4.0)
    assert_no_loss(res)
    lan = piked.wait_established("hq", child="lan").child("lan")
    assert lan is not None and lan.packets_in >= 800 and lan.packets_out >= 800, lan
    print(
        f"NAT ({how}): IKE + CHILD_SA up in {took:.2f}s, floated to 4500, ESP in UDP; "
        f"{len(keepalives)} keepalives 0xFF 192.168.1.2:4500 -> 192.0.2.2:4500 in 5 s "
        f"(gaps {gaps}); stream crossed with no loss"
    )


def test_nat_mapping_change_strongswan_behind_nat(
    nat_lab: Lab, make_charon: MakeCharon, make_piked: MakePiked
) -> None:
    gw, nat, _ = nat_gateways(nat_lab, stateless=True)
    if not gw.esp_in_kernel:
        pytest.skip("no ESP in this kernel: tests/guest/test_interop_tier.py runs this in UML")
    esp = "aes128gcm16"
    charon_conn = conn("left", esp, local="192.168.1.2")
    charon = make_charon(gw.left, "charon", charon_conn, SECRET, libipsec=False)
    piked = make_piked(gw.right, "piked", conn("right", esp, remote="192.0.2.0/24"), SECRET)
    piked.poll_via_socket = True
    charon.initiate("lan", ike="hq")
    p, _ = settled(piked, charon)
    assert (p.remote_host, p.remote_port) == ("192.0.2.1", 4500), p
    res = stream_with(gw, [], seconds=2.0)
    assert_no_loss(res)

    nat.ip("addr", "add", "192.0.2.3/24", "dev", "pub0")
    tc_nat(nat, "192.0.2.3")
    t0 = time.monotonic()
    charon.swanctl("--rekey", "--child", "lan")

    def moved() -> IkeSaInfo | None:
        sa = piked.ike_sa("hq")
        return sa if sa is not None and sa.remote_host == "192.0.2.3" else None

    wait_for("piked follows the new mapping", moved, 15)
    p, _ = settled(piked, charon)
    took = time.monotonic() - t0
    assert "peer moved from 192.0.2.1[4500] to 192.0.2.3[4500]" in piked.log_text()
    states = gw.right.run(["ip", "xfrm", "state"]).stdout
    assert "src 192.0.2.2 dst 192.0.2.3" in states and "192.0.2.1" not in states, states
    res = stream_with(gw, [], seconds=2.0)
    assert_no_loss(res)
    print(
        f"NAT mapping change 192.0.2.1 -> 192.0.2.3: piked moved its SAs and "
        f"both settled on the rekeyed CHILD_SA {took:.2f}s after swanctl --rekey started; "
        "stream crossed again with no loss"
    )
