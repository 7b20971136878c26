"""Host tier: piked against strongSwan 5.9 (charon + swanctl) in network namespaces.

``left`` (192.0.2.1, branch1.example.net, LAN 10.1.0.0/24) runs piked, ``right``
(192.0.2.2, hq.example.net, LAN 10.2.0.0/24) runs charon with kernel-libipsec when this
kernel has no ESP (which also makes charon fake NAT, so IKE floats to UDP 4500).  Where the
kernel has no ESP, piked cannot install CHILD_SAs: the IKE_SA must still come up on both
sides and the CHILD_SA be refused the way strongSwan refuses it (issue 2, item 5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Gateways, MakeCharon, MakePiked, Require
from .piked import PikedNode, render_piked_toml
from .strongswan import Child, Connection, IkeSaInfo, Secret, StrongswanNode

PSK = "pike-interop-psk-7Kd2"
BRANCH = "branch1.example.net"
HQ = "hq.example.net"
ISSUE_PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"


def piked_conn(start_action: str = "none", proposals: tuple[str, ...] = ()) -> Connection:
    return Connection(
        "hq",
        ["192.0.2.1"],
        ["192.0.2.2"],
        proposals=proposals or ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"),
        local_id=BRANCH,
        remote_id=HQ,
        children=[
            Child(
                "lan",
                ["10.1.0.0/24"],
                ["10.2.0.0/24"],
                ("aes128gcm16", "aes256-sha256"),
                start_action=start_action,
            )
        ],
    )


def charon_conn(proposals: tuple[str, ...] = ()) -> Connection:
    return Connection(
        "hq",
        ["192.0.2.2"],
        ["192.0.2.1"],
        proposals=proposals or ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"),
        local_id=HQ,
        remote_id=BRANCH,
        children=[Child("lan", ["10.2.0.0/24"], ["10.1.0.0/24"], ("aes128gcm16", "aes256-sha256"))],
    )


def test_issue_config_renders_as_written(tmp_path: Path) -> None:
    """The harness writes issue 2's example config, and piked's loader accepts it."""
    loader = pytest.importorskip("pike.policy.loader")
    conn = piked_conn(start_action="start")
    text = render_piked_toml(
        Path("/run/pike/pike.sock"), [conn], [Secret("hq", ISSUE_PSK, [BRANCH, HQ])]
    )
    expected = Path(__file__).parents[1] / "fixtures" / "issue2-example.toml"
    assert text == expected.read_text()
    path = tmp_path / "pike.toml"
    path.write_text(text)
    config = loader.load_config(str(path))
    assert "hq" in config.connections


def _pair(
    gw: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    *,
    start_action: str = "none",
    psk: str = PSK,
) -> tuple[PikedNode, StrongswanNode]:
    secret = Secret("hq", psk, [BRANCH, HQ])
    charon = make_charon(gw.right, "charon", charon_conn(), secret, libipsec=gw.libipsec)
    piked = make_piked(gw.left, "piked", piked_conn(start_action), secret)
    return piked, charon


def _check_established(gw: Gateways, piked: PikedNode, charon: StrongswanNode) -> None:
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert p.version == c.version == 2
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    assert p.remote_host == "192.0.2.2"
    assert c.remote_host == "192.0.2.1"
    if gw.esp_in_kernel:
        p = piked.wait_established("hq", timeout=10, child="lan")
        c = charon.wait_established("hq", timeout=10, child="lan")
        pc, cc = p.child("lan"), c.child("lan")
        assert pc is not None and cc is not None
        assert (pc.spi_in, pc.spi_out) == (cc.spi_out, cc.spi_in)
    else:
        # piked cannot install the CHILD_SA on this kernel: refused, IKE_SA stays up
        _assert_no_child(piked.ike_sa("hq"))
        _assert_no_child(charon.ike_sa("hq"))


def _assert_no_child(sa: IkeSaInfo | None) -> None:
    assert sa is not None and sa.state == "ESTABLISHED"
    lan = sa.child("lan")
    assert lan is None or lan.state != "INSTALLED", lan


@pytest.mark.interop
def test_strongswan_initiates_to_piked(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon)
    res = charon.initiate("lan", ike="hq", check=False)
    if gateways.esp_in_kernel:
        assert res.returncode == 0, res.stdout + res.stderr
    _check_established(gateways, piked, charon)
    if not gateways.esp_in_kernel:
        assert "NO_PROP" in charon.log_text()


@pytest.mark.interop
def test_piked_initiates_to_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon)
    piked.initiate("hq")
    _check_established(gateways, piked, charon)
    # pikectl list-sas --json and the control socket tell the same
    via_cli = piked.list_sas_json()
    via_socket = piked.control("list-sas")
    assert [(d["name"], d["spi_i"]) for d in via_cli] == [
        (d["name"], d["spi_i"]) for d in via_socket
    ]


@pytest.mark.interop
def test_piked_start_action_start(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon, start_action="start")
    _check_established(gateways, piked, charon)


@pytest.mark.interop
@pytest.mark.parametrize("who", ["strongswan", "piked"])
def test_terminate_deletes_on_both_sides(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, who: str
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon)
    charon.initiate("lan", ike="hq", check=False)
    piked.wait_established("hq", timeout=15)
    charon.wait_established("hq", timeout=15)
    if who == "strongswan":
        charon.terminate("hq")
    else:
        piked.terminate("hq")
    piked.wait_no_sas(timeout=10)
    charon.wait_no_sas(timeout=10)


@pytest.mark.interop
def test_issue_psk_encoding_matches_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon, psk=ISSUE_PSK)
    charon.initiate("lan", ike="hq", check=False)
    piked.wait_established("hq", timeout=10)
    charon.wait_established("hq", timeout=10)


@pytest.mark.interop
@pytest.mark.parametrize(
    "secret",
    [
        "plain-text-psk",
        "0x0123456789abcdef0123456789abcdef",
        "0sdGhpcyBpcyBhIHZhbGlkIGJhc2U2NCBQU0s=",
        ISSUE_PSK,  # not valid base64: both must read it strongSwan's lenient way
    ],
    ids=["text", "hex", "base64", "issue-example"],
)
def test_psk_bytes_match_strongswan(
    gateways: Gateways, make_charon: MakeCharon, require: Require, secret: str
) -> None:
    """piked's secret decoding gives the bytes charon uses (charon logs them at ike 4)."""
    try:
        from pike.policy.config_values import decode_secret
    except ImportError:
        require(False, "pike.policy.config_values.decode_secret not available")
        return
    shared = Secret("hq", secret, [BRANCH, HQ])
    right = make_charon(gateways.right, "right", charon_conn(), shared, start=False)
    right.log_levels = {"ike": 4, "cfg": 2}
    right.start()
    left = make_charon(gateways.left, "left", piked_conn(), shared)
    left.initiate_ike("hq")
    charon_bytes = right.key_dumps().get("secret", [""])[0]
    assert charon_bytes, "charon logged no PSK (log level too low?)"
    assert decode_secret(secret).hex() == charon_bytes
