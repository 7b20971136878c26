"""Host tier: piked against strongSwan 5.9 (charon + swanctl) in network namespaces.

``left`` (192.0.2.1, branch1.example.net, LAN 10.1.0.0/24) runs piked, ``right``
(192.0.2.2, hq.example.net, LAN 10.2.0.0/24) runs charon with kernel-libipsec when this
kernel has no ESP (which also makes charon fake NAT, so IKE floats to UDP 4500).  Where the
kernel has no ESP, piked cannot install CHILD_SAs: the IKE_SA must still come up on both
sides and the CHILD_SA be refused the way strongSwan refuses it (issue 2, item 5).

The scenarios both versions share are parametrized ``ikev1`` / ``ikev2``. IKEv1: Main Mode
with a PSK and ID = IP address, Quick Mode with and without PFS, both roles. Where this
kernel has no ESP, charon runs kernel-libipsec (and so fakes NAT: Main Mode floats to UDP
4500 and the Quick Mode negotiates UDP encapsulation) while piked cannot install its
CHILD_SA: the ISAKMP SA must be up on both sides with the same cookies, and piked refuse
the Quick Mode with NO_PROPOSAL_CHOSEN in either role so that charon keeps no half
(quick_mode_checks.py). The Quick Modes the UML tiers do not run otherwise (after Main
Mode with certificates, both roles; PFS; piked choosing among charon's ESP proposals) are
also marked ``kernel_interop``: tests/guest/test_ikev1_tier.py runs them with ESP, where
both halves are installed with the same SPIs. Quick Mode after Main or Aggressive Mode
with a PSK, both roles, with traffic, rekey, Delete and DPD: test_dataplane_v1.py,
test_dataplane.py and test_self_healing.py in the guest tiers.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ikev2.x509gen import Issued, issue, make_ca, write
from lib.pikeconf import TomlValue

from .conftest import Gateways, MakeCharon, MakePiked, Require
from .piked import PikedNode, render_piked_toml
from .quick_mode_checks import installed_alike, refused_without_esp
from .strongswan import Child, Connection, IkeSaInfo, Secret, StrongswanNode
from .strongswan_v1 import ikev1_connection, ikev1_exchanges

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
@pytest.mark.parametrize(
    "version",
    [pytest.param(1, id="ikev1"), pytest.param(2, id="ikev2")],
)
def test_strongswan_initiates_to_piked(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    """IKEv2; IKEv1 Main Mode + Quick Mode with a PSK."""
    if version == 1:
        piked, charon = _pair_v1(gateways, make_piked, make_charon)
        t0 = time.monotonic()
        charon.initiate("lan", ike="hq", check=False)
        _check_v1(gateways, piked, charon, piked_initiated=False)
        print(f"charon -> piked Main Mode + Quick Mode: {time.monotonic() - t0:.2f} s")
        assert "Main Mode from 192.0.2.2" in piked.log_text()
        return
    piked, charon = _pair(gateways, make_piked, make_charon)
    res = charon.initiate("lan", ike="hq", check=False)
    if gateways.esp_in_kernel:
        assert res.returncode == 0, res.stdout + res.stderr
    _check_established(gateways, piked, charon)
    if not gateways.esp_in_kernel:
        assert "NO_PROP" in charon.log_text()


@pytest.mark.interop
@pytest.mark.parametrize(
    "version",
    [pytest.param(1, id="ikev1"), pytest.param(2, id="ikev2")],
)
def test_piked_initiates_to_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int
) -> None:
    """IKEv2; IKEv1 Main Mode + Quick Mode with a PSK."""
    if version == 1:
        piked, charon = _pair_v1(gateways, make_piked, make_charon)
        t0 = time.monotonic()
        piked.initiate("hq")
        _check_v1(gateways, piked, charon, piked_initiated=True)
        print(f"piked -> charon Main Mode + Quick Mode: {time.monotonic() - t0:.2f} s")
    else:
        piked, charon = _pair(gateways, make_piked, make_charon)
        piked.initiate("hq")
        _check_established(gateways, piked, charon)
    # pikectl list-sas --json and the control socket tell the same
    via_cli = piked.list_sas_json()
    via_socket = piked.control("list-sas")
    assert [(d["name"], d["spi_i"]) for d in via_cli] == [
        (d["name"], d["spi_i"]) for d in via_socket
    ]
    assert [(d["name"], d["version"]) for d in via_cli] == [("hq", version)]
    text = piked.pikectl("list-sas").stdout
    assert f"IKEv{version}" in text, text


@pytest.mark.interop
def test_piked_start_action_start(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    piked, charon = _pair(gateways, make_piked, make_charon, start_action="start")
    _check_established(gateways, piked, charon)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("version", "who"),
    [
        pytest.param(1, "piked", id="ikev1-piked"),
        pytest.param(2, "strongswan", id="ikev2-strongswan"),
        pytest.param(2, "piked", id="ikev2-piked"),
    ],
)
def test_terminate_deletes_on_both_sides(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, version: int, who: str
) -> None:
    if version == 1:
        piked, charon = _pair_v1(gateways, make_piked, make_charon)
        piked.initiate("hq")
        _check_v1(gateways, piked, charon, piked_initiated=True)
    else:
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


# -- IKEv1 (Main, Aggressive and Quick Mode; tests/interop/strongswan_v1.py) ------------

PSK_V1 = "pike-ikev1-interop-psk-4Tq9"


def _pair_v1(
    gw: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    *,
    esp: tuple[str, ...] = ("aes256-sha256",),
    proposals: tuple[str, ...] = ("aes256-sha256-modp3072",),
    dpd_delay: str | None = None,
    start_piked: bool = True,
    aggressive: bool = False,
    charon_esp: tuple[str, ...] | None = None,
    charon_proposals: tuple[str, ...] | None = None,
) -> tuple[PikedNode, StrongswanNode]:
    # Aggressive Mode sends the identities in the clear: names, as its users configure
    ids: dict[str, Any] = {"local_id": HQ, "remote_id": BRANCH} if aggressive else {}
    pids: dict[str, Any] = {"local_id": BRANCH, "remote_id": HQ} if aggressive else {}
    charon = make_charon(
        gw.right,
        "charon",
        ikev1_connection(
            "192.0.2.2",
            "192.0.2.1",
            local_ts="10.2.0.0/24",
            remote_ts="10.1.0.0/24",
            proposals=charon_proposals or proposals,
            esp_proposals=charon_esp or esp,
            dpd_delay=dpd_delay,
            aggressive=aggressive,
            **ids,
        ),
        Secret("hq", PSK_V1),
        libipsec=gw.libipsec,
    )
    piked = make_piked(
        gw.left,
        "piked",
        ikev1_connection(
            "192.0.2.1",
            "192.0.2.2",
            local_ts="10.1.0.0/24",
            remote_ts="10.2.0.0/24",
            proposals=proposals,
            esp_proposals=esp,
            dpd_delay=dpd_delay,
            aggressive=aggressive,
            **pids,
        ),
        Secret("hq", PSK_V1),
        start=start_piked,
    )
    return piked, charon


def _check_v1(
    gw: Gateways,
    piked: PikedNode,
    charon: StrongswanNode,
    piked_initiated: bool,
    ids: tuple[str, str] = ("192.0.2.1", "192.0.2.2"),
) -> None:
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert p.version == c.version == 1
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    assert (p.local_id, p.remote_id) == ids
    assert (c.local_id, c.remote_id) == ids[::-1]
    if gw.esp_in_kernel:
        installed_alike(piked, charon)
    else:
        refused_without_esp(piked, charon, piked_initiated)


@pytest.mark.interop
@pytest.mark.kernel_interop
def test_quick_mode_with_pfs_both_ways(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """PFS (modp2048) in Quick Mode: KE both ways, charon's CHILD_SA has the group."""
    piked, charon = _pair_v1(
        gateways,
        make_piked,
        make_charon,
        esp=("aes128-sha256-modp2048",),
        proposals=("aes128-sha256-modp2048",),
    )
    piked.initiate("hq")
    _check_v1(gateways, piked, charon, piked_initiated=True)
    # both Quick Mode messages with data carried a KE payload
    quick = [x for x in ikev1_exchanges(charon.log_text()) if "QUICK_MODE" in x]
    assert "< QUICK_MODE [ HASH SA No KE ID ID ]" in quick, quick
    assert "> QUICK_MODE [ HASH SA No KE ID ID ]" in quick, quick
    if gateways.esp_in_kernel:  # else piked deleted it (quick_mode_checks)
        c = charon.ike_sa("hq")
        cc = c.child("lan") if c is not None else None
        assert cc is not None and cc.raw.get("dh-group") == "MODP_2048", c


FAST: dict[str, TomlValue] = {
    "log_level": "debug",
    "retransmit_timeout": "0.5s",
    "retransmit_tries": 2,
}


@pytest.mark.interop
def test_dpd_of_a_killed_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """RFC 3706: piked probes with R-U-THERE after dpd_delay of silence; charon answers
    (R-U-THERE-ACK) while alive; once it is killed (SIGKILL by PID, no Delete) piked gives
    the ISAKMP SA up after its retransmission schedule (dpd_action = clear)."""
    piked, charon = _pair_v1(gateways, make_piked, make_charon, dpd_delay="1s", start_piked=False)
    piked.daemon.update(FAST)
    piked.start()
    piked.poll_via_socket = True
    piked.initiate("hq")
    _check_v1(gateways, piked, charon, piked_initiated=True)
    time.sleep(2.5)  # two DPD rounds answered: the SA stays
    assert piked.ike_sa("hq") is not None
    assert "R_U_THERE_ACK" in charon.log_text() or "DPD" in charon.log_text()
    assert charon.pid is not None and charon.proc is not None
    os.kill(charon.pid, signal.SIGKILL)
    charon.proc.wait(timeout=5)
    t0 = time.monotonic()
    deadline = t0 + 20
    while piked.ike_sa("hq") is not None:
        assert time.monotonic() < deadline, piked.ike_sa("hq")
        time.sleep(0.2)
    took = time.monotonic() - t0
    print(f"\nIKEv1 DPD: charon killed, piked cleared the ISAKMP SA after {took:.2f}s")
    assert "DPD: peer did not answer" in piked.log_text()


@pytest.mark.interop
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_aggressive_mode_psk(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, initiator: str
) -> None:
    """Aggressive Mode PSK_V1 with FQDN identities, both roles; charon sends QM1 right behind
    AM3, which piked as responder must not drop."""
    piked, charon = _pair_v1(gateways, make_piked, make_charon, aggressive=True)
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    _check_v1(gateways, piked, charon, initiator == "piked", (BRANCH, HQ))
    assert "Aggressive Mode" in piked.log_text()
    assert "AGGRESSIVE" in charon.log_text() or "aggressive" in charon.log_text().lower()


# -- Main Mode with certificates -------------------------------------------------------------

CERT_KINDS = {"rsa": "rsa", "ecdsa-p256": "ecdsa-p256", "ecdsa-p384": "ecdsa-p384"}
# The Quick Mode after a signature-authenticated phase 1 (SKEYID from the nonces and the DH secret)
# is the same whatever the key: one kind, both roles, also runs in the IKEv1 UML tier.
RSA_IN_UML = pytest.param("rsa", marks=pytest.mark.kernel_interop)


def _cert_pair(
    gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path, kind: str
) -> tuple[PikedNode, StrongswanNode]:
    ca = make_ca(CERT_KINDS[kind], "pike IKEv1 interop CA")
    mine: Issued = issue(ca, kind, BRANCH, [x509.DNSName(BRANCH)])
    theirs: Issued = issue(ca, kind, HQ, [x509.DNSName(HQ)])
    files = tmp_path / "charon-creds"
    cert, key = write(files, "hq", theirs)
    ca_cert, _ = write(files, "ca", ca)
    conn = ikev1_connection(
        "192.0.2.2",
        "192.0.2.1",
        local_ts="10.2.0.0/24",
        remote_ts="10.1.0.0/24",
        proposals=("aes256-sha256-modp3072",),
        esp_proposals=("aes256-sha256",),
        local_id=HQ,
        remote_id=BRANCH,
    )
    conn.local_auth = conn.remote_auth = "pubkey"
    conn.local_certs = [cert.name]
    charon = make_charon(gw.right, "charon", conn, libipsec=gw.libipsec, start=False)
    charon.start_with(cert, key, ca_cert)
    mine_conn = ikev1_connection(
        "192.0.2.1",
        "192.0.2.2",
        local_ts="10.1.0.0/24",
        remote_ts="10.2.0.0/24",
        proposals=("aes256-sha256-modp3072",),
        esp_proposals=("aes256-sha256",),
        local_id=BRANCH,
        remote_id=HQ,
    )
    piked = make_piked(gw.left, "piked", mine_conn, start=False)
    write(piked.dir, "branch", mine)
    write(piked.dir, "ca", ca)
    local = {"auth": "pubkey", "id": BRANCH, "certs": ["branch.pem"], "key": "branch.key"}
    remote = {"auth": "pubkey", "id": HQ, "cacerts": ["ca.pem"]}
    piked.extra = {"hq": {"local": local, "remote": remote}}
    piked.start()
    return piked, charon


@pytest.mark.interop
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
@pytest.mark.parametrize("kind", [RSA_IN_UML, "ecdsa-p256", "ecdsa-p384"])
def test_main_mode_certificates(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    kind: str,
    initiator: str,
) -> None:
    """Main Mode with RSA / ECDSA certificates (methods 3, 9, 10), both roles: charon
    verifies piked's signature, piked charon's, and both chains go to the CA."""
    piked, charon = _cert_pair(gateways, make_piked, make_charon, tmp_path, kind)
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    _check_v1(gateways, piked, charon, initiator == "piked", (BRANCH, HQ))
    clog = charon.log_text()
    assert f"authentication of '{BRANCH}' with" in clog and "successful" in clog, clog[-3000:]


@pytest.mark.interop
def test_ikev1_and_ikev2_side_by_side_on_the_same_sockets(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """One piked, one charon, two connections between the same addresses: ``hq1`` IKEv1,
    ``hq2`` IKEv2. piked's runtime hands each datagram to the engine its header's major
    version names; both come up, and list-sas shows both versions."""

    def conns(left: bool) -> list[Connection]:
        me, peer = ("192.0.2.1", "192.0.2.2") if left else ("192.0.2.2", "192.0.2.1")
        lnet, rnet = ("10.1", "10.2") if left else ("10.2", "10.1")
        v1 = ikev1_connection(
            me,
            peer,
            name="hq1",
            local_ts=f"{lnet}.0.0/24",
            remote_ts=f"{rnet}.0.0/24",
            proposals=("aes256-sha256-modp3072",),
            esp_proposals=("aes256-sha256",),
        )
        ids = (BRANCH, HQ) if left else (HQ, BRANCH)
        v2 = Connection(
            "hq2",
            [me],
            [peer],
            proposals=("aes128gcm16-prfsha256-x25519",),
            local_id=ids[0],
            remote_id=ids[1],
            children=[Child("lan", [f"{lnet}.2.0/24"], [f"{rnet}.2.0/24"], ("aes128gcm16",))],
        )
        return [v1, v2]

    charon = make_charon(
        gateways.right, "charon", *conns(False), Secret("any", PSK_V1), libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", *conns(True), Secret("any", PSK_V1))
    piked.initiate("hq1")
    piked.initiate("hq2")
    for name, version in (("hq1", 1), ("hq2", 2)):
        p = piked.wait_established(name, timeout=15)
        c = charon.wait_established(name, timeout=15)
        assert p.version == c.version == version
        assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    text = piked.pikectl("list-sas").stdout
    assert "IKEv1" in text and "IKEv2" in text, text


@pytest.mark.interop
@pytest.mark.parametrize(
    "initiator", ["piked", pytest.param("strongswan", marks=pytest.mark.kernel_interop)]
)
def test_several_proposals_one_in_common(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, initiator: str
) -> None:
    """charon offers two phase-1 and two ESP proposals, piked accepts the second of each
    (as responder it picks; as initiator charon picks from piked's one)."""
    piked, charon = _pair_v1(
        gateways,
        make_piked,
        make_charon,
        charon_proposals=("aes128-sha512-modp4096", "aes256-sha256-modp3072"),
        charon_esp=("aes128gcm16", "aes256-sha256"),
    )
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    _check_v1(gateways, piked, charon, initiator == "piked")
    c = charon.ike_sa("hq")
    assert c is not None
    assert c.raw.get("dh-group") == "MODP_3072", c.raw
    if gateways.esp_in_kernel:  # else no CHILD_SA is left (quick_mode_checks)
        lan = c.child("lan")
        assert lan is not None and lan.encr_alg == "AES_CBC", lan


@pytest.mark.interop
def test_strongswan_connects_to_a_wildcard_hub(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """piked as a hub whose remote id is ``*.example.net``: charon as the branch
    ``hq.example.net`` fits it (the most specific match; here the only one)."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    charon = make_charon(
        gateways.right, "charon", charon_conn(), secret, libipsec=gateways.libipsec
    )
    hub = dataclasses.replace(piked_conn(), remote_id="*.example.net")
    piked = make_piked(gateways.left, "piked", hub, secret)
    charon.initiate("lan", ike="hq", check=False)
    _check_established(gateways, piked, charon)
    sa = piked.ike_sa("hq")
    assert sa is not None and sa.remote_id == HQ
