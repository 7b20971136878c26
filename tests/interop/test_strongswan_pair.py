"""Tests of the interop harness itself: namespaces, and two charons building tunnels."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Gateways, MakeCharon, Require
from .netns import Lab, Namespace, list_netns
from .pki import issue, make_ca, pki_available
from .strongswan import (
    Child,
    Connection,
    Secret,
    StrongswanNode,
    parse_list_sas,
    parse_raw_message,
    render_swanctl,
)

PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"
LEFT_ID = "branch1.example.net"
RIGHT_ID = "hq.example.net"


# -- parser / generator (no root needed) --------------------------------------------------

RAW_SAMPLE = (
    "list-sa event {hq {uniqueid=1 version=2 state=ESTABLISHED local-host=192.0.2.1 "
    "local-port=4500 local-id=C=CH, O=strongSwan Project, CN=moon remote-host=192.0.2.2 "
    "remote-port=4500 remote-id=hq.example.net initiator=yes initiator-spi=b9cd45263143de86 "
    "responder-spi=b2b6066be02dcfd9 encr-alg=AES_CBC encr-keysize=128 "
    "integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519 "
    "established=0 child-sas {lan-1 {name=lan uniqueid=1 state=INSTALLED mode=TUNNEL "
    "protocol=ESP spi-in=313fce9c spi-out=17abb7c7 bytes-in=168 packets-in=2 "
    "bytes-out=0 packets-out=0 local-ts=[10.1.0.0/24 10.1.1.0/24] remote-ts=[10.2.0.0/24]} "
    "lan2-2 {name=lan2 state=INSTALLING local-ts=[] remote-ts=[dynamic]}}}}\n"
    "list-sas reply {}\n"
)


def test_parse_raw_list_sas() -> None:
    [sa] = parse_list_sas(RAW_SAMPLE)
    assert sa.name == "hq"
    assert sa.state == "ESTABLISHED"
    assert sa.version == 2
    assert sa.local_id == "C=CH, O=strongSwan Project, CN=moon"
    assert sa.remote_host == "192.0.2.2"
    assert sa.remote_port == 4500
    assert sa.initiator
    assert sa.initiator_spi == "b9cd45263143de86"
    assert sa.dh_group == "CURVE_25519"
    lan = sa.child("lan")
    assert lan is not None
    assert (lan.state, lan.mode, lan.spi_in, lan.spi_out) == (
        "INSTALLED",
        "TUNNEL",
        "313fce9c",
        "17abb7c7",
    )
    assert lan.local_ts == ["10.1.0.0/24", "10.1.1.0/24"]
    assert (lan.bytes_in, lan.packets_in) == (168, 2)
    lan2 = sa.child("lan2")
    assert lan2 is not None
    assert lan2.local_ts == []
    assert lan2.remote_ts == ["dynamic"]


def test_parse_raw_empty_and_errors() -> None:
    assert parse_list_sas("list-sas reply {}\n") == []
    assert parse_raw_message("x {}") == ("x", {})
    for bad in ("x {a=1", "garbage", "x {a=[1 2}", "x {a=1}}"):
        with pytest.raises(ValueError):
            parse_raw_message(bad)


def test_render_swanctl_quotes_and_lists() -> None:
    text = render_swanctl(
        [
            Connection(
                "hq",
                ["192.0.2.1"],
                ["192.0.2.2"],
                proposals=["aes256-sha256-modp3072", "aes128gcm16-prfsha256-x25519"],
                local_id="C=CH, O=pike, CN=gw",
                children=[Child("lan", ["10.1.0.0/24"], ["10.2.0.0/24"], start_action="trap")],
            )
        ],
        [Secret("hq", 'with "quote"', [LEFT_ID, RIGHT_ID])],
    )
    assert "proposals = aes256-sha256-modp3072,aes128gcm16-prfsha256-x25519" in text
    assert 'id = "C=CH, O=pike, CN=gw"' in text
    assert 'secret = "with \\"quote\\""' in text
    assert "start_action = trap" in text
    assert text.count("{") == text.count("}")


# -- namespaces ---------------------------------------------------------------------------


@pytest.mark.interop
def test_lab_teardown_kills_and_deletes(run_prefix: str) -> None:
    la = Lab.create(f"{run_prefix}td-")
    with la:
        a = la.add_ns("a")
        b = la.add_ns("b")
        link = la.link(a, b, ["198.51.100.1/24", "2001:db8:1::1/64"], ["198.51.100.2/24"])
        assert a.ping(link.b_ip)
        assert b.ping(link.a_ip)
        host = la.add_host_net(b, "10.9.0.0/24")
        assert host.host is not None
        assert host.host.ping(host.gateway_ip)
        sleeper = a.popen(["sleep", "300"])
        stray = b.popen(["sh", "-c", "sleep 300 & wait"])
        names = [ns.name for ns in la.namespaces]
        assert all(n in list_netns() for n in names)
    assert sleeper.poll() is not None
    assert stray.poll() is not None
    assert not [n for n in list_netns() if n.startswith(f"{run_prefix}td-")]


@pytest.mark.interop
def test_lab_ipv6_link_and_host_net(run_prefix: str) -> None:
    with Lab.create(f"{run_prefix}v6-") as la:
        a = la.add_ns("a")
        b = la.add_ns("b")
        link = la.link(a, b, ["2001:db8:9::1/64"], ["2001:db8:9::2/64", "198.51.100.2/24"])
        assert link.a_ip == "2001:db8:9::1"
        assert link.b_ip == "198.51.100.2"
        assert link.b_ip6 == "2001:db8:9::2"
        assert a.ping("2001:db8:9::2")
        lan = la.add_host_net(a, "2001:db8:10::/64")
        assert lan.host is not None
        assert lan.host.ping(lan.gateway_ip)
        dummy = la.add_host_net(b, "10.3.0.0/24", dummy=True)
        assert dummy.host is None
        assert b.ping(dummy.gateway_ip)


@pytest.mark.interop
def test_lab_prefix_is_unique(run_prefix: str) -> None:
    with Lab.create(f"{run_prefix}dup-") as la:
        la.add_ns("x")
        with pytest.raises(RuntimeError):
            Lab.create(f"{run_prefix}dup-")


# -- two charons --------------------------------------------------------------------------


def _pair(
    gw: Gateways,
    make_charon: MakeCharon,
    *,
    version: int = 2,
    proposals: tuple[str, ...] = ("default",),
    esp_proposals: tuple[str, ...] = ("default",),
) -> tuple[StrongswanNode, StrongswanNode]:
    secret = Secret("hq", PSK, [LEFT_ID, RIGHT_ID])

    def charon(
        ns: Namespace, name: str, ips: tuple[str, str], ids: tuple[str, str], lans: tuple[str, str]
    ) -> StrongswanNode:
        """One side; the other is the same with each (local, remote) pair swapped."""
        child = Child("lan", [lans[0]], [lans[1]], esp_proposals)
        conn = Connection(
            "hq",
            [ips[0]],
            [ips[1]],
            version=version,
            proposals=proposals,
            local_id=ids[0],
            remote_id=ids[1],
            children=[child],
        )
        return make_charon(ns, name, conn, secret, libipsec=gw.libipsec)

    wan = (gw.wan.a_ip, gw.wan.b_ip)
    ids, lans = (LEFT_ID, RIGHT_ID), ("10.1.0.0/24", "10.2.0.0/24")
    left = charon(gw.left, "left", wan, ids, lans)
    right = charon(gw.right, "right", wan[::-1], ids[::-1], lans[::-1])
    return left, right


@pytest.mark.interop
@pytest.mark.parametrize(
    ("version", "proposals", "esp", "dh"),
    [
        (2, ("default",), ("default",), "CURVE_25519"),
        (2, ("aes256-sha256-modp3072",), ("aes256-sha256",), "MODP_3072"),
        (2, ("aes128gcm16-prfsha256-x25519",), ("aes128gcm16",), "CURVE_25519"),
        (1, ("aes256-sha256-modp3072",), ("aes256-sha256",), "MODP_3072"),
    ],
    ids=["ikev2-default", "ikev2-modp3072", "ikev2-gcm", "ikev1-modp3072"],
)
def test_psk_tunnel_between_two_charons(
    gateways: Gateways,
    make_charon: MakeCharon,
    version: int,
    proposals: tuple[str, ...],
    esp: tuple[str, ...],
    dh: str,
) -> None:
    left, right = _pair(
        gateways, make_charon, version=version, proposals=proposals, esp_proposals=esp
    )
    left.initiate("lan", ike="hq")
    for node, peer_ip, initiator in ((left, "192.0.2.2", True), (right, "192.0.2.1", False)):
        sa = node.wait_established("hq", timeout=10, child="lan")
        assert sa.version == version
        assert sa.remote_host == peer_ip
        assert sa.initiator is initiator
        assert sa.dh_group == dh
        lan = sa.child("lan")
        assert lan is not None
        assert lan.mode == "TUNNEL"
        assert lan.protocol == "ESP"
    lsa, rsa = left.ike_sa("hq"), right.ike_sa("hq")
    assert lsa is not None and rsa is not None
    assert (lsa.initiator_spi, lsa.responder_spi) == (rsa.initiator_spi, rsa.responder_spi)
    lc, rc = lsa.child("lan"), rsa.child("lan")
    assert lc is not None and rc is not None
    assert (lc.spi_in, lc.spi_out) == (rc.spi_out, rc.spi_in)
    assert lc.local_ts == rc.remote_ts == ["10.1.0.0/24"]

    # Bonus: traffic crosses the tunnel (libipsec TUN here, kernel ESP in the guest).
    lhost, rhost = gateways.left_lan.host, gateways.right_lan.host
    assert lhost is not None and rhost is not None
    assert lhost.ping(gateways.right_lan.host_ip, count=2)
    assert rhost.ping(gateways.left_lan.host_ip, count=1)
    after = left.ike_sa("hq")
    assert after is not None
    moved = after.child("lan")
    assert moved is not None and moved.packets_out >= 2 and moved.packets_in >= 2

    left.terminate("hq")
    deadline = time.monotonic() + 5
    while right.list_sas() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left.list_sas() == []
    assert right.list_sas() == []
    assert "IKE_SA hq[1] established" in left.log_text()


@pytest.mark.interop
def test_charon_stops_by_pid_and_logs(
    gateways: Gateways, make_charon: MakeCharon, require: Require
) -> None:
    node = make_charon(gateways.left, "solo", libipsec=gateways.libipsec)
    assert node.pid is not None
    assert node.vici_path.exists()
    loaded = node.loaded_plugins()
    assert "vici" in loaded
    assert ("kernel-libipsec" in loaded) is gateways.libipsec
    for plugin in ("openssl", "gcm", "gmp", "curve25519"):
        require(plugin in loaded, f"charon plugin {plugin} missing (standard-plugins package)")
    plugins = node.strongswan_conf()
    if gateways.libipsec:
        assert plugins.index("kernel-libipsec") < plugins.index("kernel-netlink")
    node.stop()
    assert node.proc is not None and node.proc.poll() is not None
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(["kill", "-0", str(node.pid)], check=True, capture_output=True)
    assert Path(node.dir / "run").is_dir()


@pytest.mark.interop
@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_pubkey_tunnel_between_two_charons(
    gateways: Gateways, make_charon: MakeCharon, require: Require, tmp_path: Path, key_type: str
) -> None:
    require(pki_available(), "strongSwan pki not installed (strongswan-pki)")
    ca = make_ca(tmp_path / "ca", key_type)
    certs = {side: issue(ca, ident) for side, ident in (("left", LEFT_ID), ("right", RIGHT_ID))}
    nodes = {}
    for side, ns, local, remote, lts, rts in (
        ("left", gateways.left, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24"),
        ("right", gateways.right, "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24"),
    ):
        me, peer = certs[side], certs["right" if side == "left" else "left"]
        conn = Connection(
            "hq",
            [local],
            [remote],
            local_auth="pubkey",
            remote_auth="pubkey",
            local_id=me.name,
            remote_id=peer.name,
            local_certs=[me.cert.name],
            children=[Child("lan", [lts], [rts])],
        )
        node = make_charon(ns, side, conn, libipsec=gateways.libipsec, start=False)
        node.start_with(me.cert, me.key, ca.cert)
        nodes[side] = node
    nodes["left"].initiate("lan", ike="hq")
    for node in nodes.values():
        node.wait_established("hq", child="lan")
    log = nodes["right"].log_text()
    assert f"authentication of '{LEFT_ID}' with" in log
    scheme = "ECDSA_WITH_SHA256_DER" if key_type == "ecdsa" else "RSA_EMSA_PKCS1_SHA2_256"
    assert scheme in log
