"""ESP data plane through piked's SAs (issue 2, item 7): gateways with LANs behind them.

  lefthost .2 -- 10.1.0.1 left 192.0.2.1 == wan0 == 192.0.2.2 right 10.2.0.1 -- righthost .2
                         (piked)                    (strongSwan with kernel-netlink, or piked)

Each test brings the tunnel up (piked as initiator and as responder, per ESP proposal;
IKEv2, and IKEv1 Main Mode + Quick Mode: parametrized ``ikev1`` / ``ikev2``),
sends 3 pings each way (both directions initiated) and one UDP datagram each way between
the LAN hosts, and checks that the receiver got it, that piked's CHILD_SA counters in
``pikectl list-sas --json`` moved by at least that much, and that they are the kernel's own
(``ip -s xfrm state`` in piked's namespace shows the same bytes and packets per SPI).

Marked ``kernel_interop``: the kernel must have ESP.  On a host without ESP they skip, and
``tests/guest/test_interop_tier.py`` runs them inside the User-Mode-Linux guest.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .netns import Lab, Namespace
from .piked import PikedNode
from .strongswan import Child, Connection, Secret, StrongswanNode
from .strongswan_v1 import ikev1_connection
from .topology import make_gateways

GUEST_COMMAND = (
    "tests/guest/uml-run -- .venv/bin/pytest -m kernel_interop tests/interop/test_dataplane.py"
)
PSK = "pike-dataplane-psk"
LEFT_ID, RIGHT_ID = "branch1.example.net", "hq.example.net"
SECRET = Secret("hq", PSK, [LEFT_ID, RIGHT_ID])
PINGS = 3  # per direction
# per direction through one SA, at least: 2 x PINGS ICMP packets + 1 UDP datagram
MIN_PACKETS = 2 * PINGS + 1
ESP = ("aes128gcm16", "aes256-sha256")
SECRET_V1 = Secret("hq", "pike-ikev1-dataplane-psk")  # IKEv1: ID = IP address

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]


def conn(side: str, esp: str, *, encap: bool = False) -> Connection:
    left = side == "left"
    return Connection(
        "hq",
        ["192.0.2.1" if left else "192.0.2.2"],
        ["192.0.2.2" if left else "192.0.2.1"],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=LEFT_ID if left else RIGHT_ID,
        remote_id=RIGHT_ID if left else LEFT_ID,
        encap=encap,
        children=[
            Child(
                "lan",
                ["10.1.0.0/24" if left else "10.2.0.0/24"],
                ["10.2.0.0/24" if left else "10.1.0.0/24"],
                (esp,),
            )
        ],
    )


def conn_v1(side: str, esp: str, *, encap: bool = False, aggressive: bool = False) -> Connection:
    """The same tunnel in IKEv1: Main Mode (address identities) or Aggressive Mode."""
    left = side == "left"
    # Aggressive Mode sends the identities in the clear: names, as its users configure
    ids = (LEFT_ID, RIGHT_ID) if left else (RIGHT_ID, LEFT_ID)
    return ikev1_connection(
        "192.0.2.1" if left else "192.0.2.2",
        "192.0.2.2" if left else "192.0.2.1",
        local_ts="10.1.0.0/24" if left else "10.2.0.0/24",
        remote_ts="10.2.0.0/24" if left else "10.1.0.0/24",
        proposals=("aes256-sha256-modp3072",),
        esp_proposals=(esp,),
        encap=encap,
        aggressive=aggressive,
        local_id=ids[0] if aggressive else None,
        remote_id=ids[1] if aggressive else None,
    )


def tunnel(version: int, side: str, esp: str, *, encap: bool = False) -> tuple[Connection, Secret]:
    """``side``'s connection and secret for IKE ``version``."""
    if version == 1:
        return conn_v1(side, esp, encap=encap), SECRET_V1
    return conn(side, esp, encap=encap), SECRET


@pytest.fixture(scope="module")
def shared_gw(run_prefix: str) -> Iterator[Gateways]:
    """One topology for the whole module: creating and deleting namespaces costs seconds
    of kernel work per test under UML (and a busy guest makes tools time out)."""
    with Lab.create(f"{run_prefix}dp-") as la:
        yield make_gateways(la)


@pytest.fixture
def esp_gw(shared_gw: Gateways, request: pytest.FixtureRequest) -> Iterator[Gateways]:
    if not shared_gw.esp_in_kernel:
        pytest.skip(
            "KERNEL TIER SKIPPED: no ESP in this kernel; tests/guest/test_interop_tier.py runs "
            f"these inside User-Mode-Linux (by hand: {GUEST_COMMAND})"
        )
    yield shared_gw
    # The daemons are stopped by now (make_* teardown runs first).  piked (always on the
    # left when it runs) removes every SA and policy it installed when it stops; flush both
    # sides anyway so nothing leaks into the next test.
    left_states = shared_gw.left.run(["ip", "xfrm", "state"]).stdout.strip()
    left_policies = shared_gw.left.run(["ip", "xfrm", "policy"]).stdout.strip()
    for ns in (shared_gw.left, shared_gw.right):
        ns.run(["ip", "xfrm", "state", "flush"])
        ns.run(["ip", "xfrm", "policy", "flush"])
    if "make_piked" in request.fixturenames:
        assert not left_states and not left_policies, (left_states, left_policies)


# -- counters ------------------------------------------------------------------------------


def xfrm_counters(ns: Namespace) -> dict[int, tuple[int, int]]:
    """SPI -> (bytes, packets) from ``ip -s xfrm state`` ("lifetime current")."""
    out = ns.run(["ip", "-s", "xfrm", "state"]).stdout
    counters: dict[int, tuple[int, int]] = {}
    for block in re.split(r"^(?=src )", out, flags=re.M):
        spi = re.search(r"proto esp spi 0x([0-9a-f]+)", block)
        cur = re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        if spi and cur:
            counters[int(spi.group(1), 16)] = (int(cur.group(1)), int(cur.group(2)))
    return counters


def piked_child(node: PikedNode, *, cli: bool = True) -> dict[str, Any]:
    """The ``lan`` CHILD_SA as ``pikectl list-sas --json`` (the real CLI) shows it, or as
    the control socket gives it (``cli=False``: the same JSON without pikectl's start-up)."""
    sas = node.list_sas_json() if cli else node.control("list-sas")
    (ike,) = [sa for sa in sas if sa.get("name") == "hq"]
    (child,) = [c for c in ike["children"] if c.get("name") == "lan"]
    assert isinstance(child, dict)
    return child


def _spi(value: object) -> int:
    return int(str(value).removeprefix("0x"), 16)


def counters_of(child: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        int(child["bytes_in"]),
        int(child["bytes_out"]),
        int(child["packets_in"]),
        int(child["packets_out"]),
    )


def check_counters_moved(node: PikedNode, before: tuple[int, int, int, int]) -> dict[str, Any]:
    """piked's counters grew by the traffic sent and agree with the kernel's."""
    deadline = time.monotonic() + 5
    while True:
        child = piked_child(node)
        b_in, b_out, p_in, p_out = counters_of(child)
        moved = (p_in - before[2], p_out - before[3])
        if min(moved) >= MIN_PACKETS and b_in > before[0] and b_out > before[1]:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{node.name}: counters did not move enough: {before} -> {child}")
        time.sleep(0.2)
    kernel = xfrm_counters(node.ns)
    spi_in, spi_out = _spi(child["spi_in"]), _spi(child["spi_out"])
    assert kernel.get(spi_in) == (b_in, p_in), (f"{spi_in:08x}", kernel, child)
    assert kernel.get(spi_out) == (b_out, p_out), (f"{spi_out:08x}", kernel, child)
    print(
        f"{node.name}: in {spi_in:08x} {b_in} bytes {p_in} packets, "
        f"out {spi_out:08x} {b_out} bytes {p_out} packets (= ip -s xfrm state)"
    )
    return child


# -- traffic -------------------------------------------------------------------------------


def ping(src: Namespace, dst: str) -> bool:
    argv = ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.2", "-W", "3", dst]
    return src.run(argv, check=False, timeout=15).returncode == 0


def traffic_both_ways(gw: Gateways) -> None:
    t0 = time.monotonic()
    lhost, rhost = gw.left_lan.host, gw.right_lan.host
    assert lhost is not None and rhost is not None
    left_ip, right_ip = gw.left_lan.host_ip, gw.right_lan.host_ip
    assert ping(lhost, right_ip), "ping lefthost -> righthost"
    assert ping(rhost, left_ip), "ping righthost -> lefthost"
    out = b"pike datagram left->right\n"
    assert lhost.udp_to(rhost, right_ip, port=5001, payload=out) == out, "UDP left->right"
    back = b"pike datagram right->left\n"
    assert rhost.udp_to(lhost, left_ip, port=5002, payload=back) == back, "UDP right->left"
    print(f"traffic: {PINGS} pings + 1 UDP datagram each way in {time.monotonic() - t0:.2f}s")


def report_timings(*nodes: PikedNode | StrongswanNode) -> None:
    for node in nodes:
        items = ", ".join(f"{t.what} {t.seconds:.2f}s" for t in node.timings)
        print(f"{node.name}: {items}")


def _check_algorithms(child: dict[str, Any], esp: str) -> None:
    assert child.get("algorithms") == esp, (esp, child)


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "role", "esp"),
    [
        *(
            pytest.param(2, role, esp, id=f"ikev2-{role}-{esp}")
            for esp in ESP
            for role in ("initiator", "responder")
        ),
        pytest.param(1, "initiator", "aes256-sha256", id="ikev1-initiator-aes256-sha256"),
        pytest.param(1, "responder", "aes256-sha256", id="ikev1-responder-aes256-sha256"),
        # Quick Mode with PFS
        pytest.param(
            1, "initiator", "aes128-sha256-modp2048", id="ikev1-initiator-aes128-sha256-modp2048"
        ),
    ],
)
def test_piked_strongswan_dataplane(
    esp_gw: Gateways,
    make_charon: MakeCharon,
    make_piked: MakePiked,
    version: int,
    role: str,
    esp: str,
) -> None:
    """piked (left) <-> charon with kernel-netlink (right); real ESP, traffic both ways."""
    charon = make_charon(esp_gw.right, "charon", *tunnel(version, "right", esp), libipsec=False)
    assert "kernel-libipsec" not in charon.loaded_plugins()
    piked = make_piked(esp_gw.left, "piked", *tunnel(version, "left", esp))
    piked.poll_via_socket = True  # waits over the socket; counters below via pikectl
    t0 = time.monotonic()
    if role == "initiator":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq")
    p = piked.wait_established("hq", timeout=30, child="lan")
    c = charon.wait_established("hq", timeout=30, child="lan")
    print(f"IKEv{version} tunnel up ({role}, {esp}) in {time.monotonic() - t0:.2f}s")
    assert p.version == c.version == version
    assert p.initiator == (role == "initiator")
    pc, cc = p.child("lan"), c.child("lan")
    assert pc is not None and cc is not None
    assert (_spi(pc.spi_in), _spi(pc.spi_out)) == (_spi(cc.spi_out), _spi(cc.spi_in))
    before = counters_of(piked_child(piked, cli=False))
    traffic_both_ways(esp_gw)
    child = check_counters_moved(piked, before)
    _check_algorithms(child, esp)
    report_timings(piked, charon)


def test_two_charons_dataplane_baseline(esp_gw: Gateways, make_charon: MakeCharon) -> None:
    """Control: the topology and the traffic check with strongSwan on both ends (when this
    fails, the guest or the harness is broken, not piked)."""
    esp = "aes128gcm16"
    left = make_charon(esp_gw.left, "left", conn("left", esp), SECRET, libipsec=False)
    right = make_charon(esp_gw.right, "right", conn("right", esp), SECRET, libipsec=False)
    left.initiate("lan", ike="hq")
    right.wait_established("hq", child="lan")
    traffic_both_ways(esp_gw)
    lan = left.wait_established("hq", child="lan").child("lan")
    assert lan is not None and min(lan.packets_in, lan.packets_out) >= MIN_PACKETS, lan


@pytest.mark.parametrize(
    ("version", "esp"),
    [
        *(pytest.param(2, esp, id=f"ikev2-{esp}") for esp in ESP),
        pytest.param(1, "aes128gcm16", id="ikev1-aes128gcm16"),
    ],
)
def test_two_piked_dataplane(
    esp_gw: Gateways, make_piked: MakePiked, version: int, esp: str
) -> None:
    """piked <-> piked: both install their SAs with XFRM; traffic both ways."""
    left = make_piked(esp_gw.left, "left", *tunnel(version, "left", esp))
    right = make_piked(esp_gw.right, "right", *tunnel(version, "right", esp))
    left.poll_via_socket = right.poll_via_socket = True
    left.initiate("hq")
    left.wait_established("hq", timeout=30, child="lan")
    right.wait_established("hq", timeout=30, child="lan")
    before_l = counters_of(piked_child(left, cli=False))
    before_r = counters_of(piked_child(right, cli=False))
    traffic_both_ways(esp_gw)
    cl = check_counters_moved(left, before_l)
    cr = check_counters_moved(right, before_r)
    assert (_spi(cl["spi_in"]), _spi(cl["spi_out"])) == (_spi(cr["spi_out"]), _spi(cr["spi_in"]))
    _check_algorithms(cl, esp)
    report_timings(left, right)


@pytest.mark.parametrize(
    ("version", "encap_side"),
    [
        pytest.param(2, "piked", id="ikev2-piked"),
        pytest.param(2, "strongswan", id="ikev2-strongswan"),
        pytest.param(1, "piked", id="ikev1-piked"),
    ],
)
def test_piked_strongswan_dataplane_udp_encapsulated(
    esp_gw: Gateways,
    make_charon: MakeCharon,
    make_piked: MakePiked,
    version: int,
    encap_side: str,
) -> None:
    """``encap = true`` (fakes NAT detection) on the initiator, piked or charon: ESP in UDP
    4500 both ways; piked's NAT-T socket hands ESP-in-UDP to the kernel. IKEv1: NAT faked
    in NAT-D, Main Mode floats to 4500, Quick Mode negotiates UDP-encapsulated tunnel mode."""
    esp = "aes128gcm16" if version == 2 else "aes256-sha256"
    on_piked = encap_side == "piked"
    charon_items = tunnel(version, "right", esp, encap=not on_piked)
    charon = make_charon(esp_gw.right, "charon", *charon_items, libipsec=False)
    piked = make_piked(esp_gw.left, "piked", *tunnel(version, "left", esp, encap=on_piked))
    piked.poll_via_socket = True
    if on_piked:
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq")
    p = piked.wait_established("hq", timeout=30, child="lan")
    c = charon.wait_established("hq", timeout=30, child="lan")
    assert p.remote_port == 4500 and p.local_port == 4500, p
    if on_piked:
        assert c.raw.get("nat-remote") == "yes", c.raw
    states = esp_gw.left.run(["ip", "xfrm", "state"]).stdout
    assert states.count("encap type espinudp sport 4500 dport 4500") == 2, states
    before = counters_of(piked_child(piked, cli=False))
    traffic_both_ways(esp_gw)
    check_counters_moved(piked, before)
    report_timings(piked, charon)
