"""Host tier: piked against strongSwan 6.0.6 (built from source with its ``ml`` plugin) with
post-quantum key exchange: RFC 9370 additional key exchanges in IKE_INTERMEDIATE (RFC 9242).

``left`` (192.0.2.1) runs piked, ``right`` (192.0.2.2) charon 6 with kernel-libipsec where
this kernel has no ESP (IKE floats to 4500, piked refuses the CHILD_SA as in
test_piked_strongswan.py); the IKE SA must come up on both sides with the same SPIs and the
additional key exchange, and charon's log show the ML-KEM exchange.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509

from ikev2.x509gen import issue, make_ca, write
from lib.pikeconf import TomlValue
from peers.strongswan6 import strongswan6_prefix

from .conftest import Gateways, MakeCharon, MakePiked, Require, charon_nodes
from .lifecycle_tools import wait_for
from .netns import Namespace, kill_pid
from .piked import PikedNode
from .strongswan import Connection, IkeSaInfo, Secret, StrongswanNode
from .topology import branch_hq

PSK = "pike-pq-interop-psk-4Rt8"
BRANCH, HQ = "branch1.example.net", "hq.example.net"
HYBRID768 = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
HYBRID1024 = "aes256gcm16-prfsha512-x25519-ke1_mlkem1024"
CLASSIC = "aes256gcm16-prfsha384-x25519"

MakeCharon6 = Callable[..., StrongswanNode]


@pytest.fixture
def make_charon6(tmp_path: Path) -> Iterator[MakeCharon6]:
    with charon_nodes(tmp_path, strongswan6_prefix()) as make:

        def make6(
            ns: Namespace, *items: Connection | Secret, libipsec: bool, start: bool = True
        ) -> StrongswanNode:
            return make(ns, "charon6", *items, libipsec=libipsec, start=start)

        yield make6


def _hybrid768(side: str) -> Connection:
    """``hq`` with x25519 + ML-KEM-768 for the IKE SA, AES-GCM for ESP, as ``side`` sees it."""
    return branch_hq(side, (HYBRID768,), ("aes256gcm16",))


def _ppk_piked(
    gateways: Gateways, make_piked: MakePiked, secret: Secret, ppk: Secret, *, required: bool
) -> PikedNode:
    """piked on ``_hybrid768`` with the PPK ``PPK_ID`` (``ppk_required`` only if asked)."""
    piked = make_piked(gateways.left, "piked", _hybrid768("left"), secret, ppk, start=False)
    hq: dict[str, TomlValue] = {"ppk_id": PPK_ID}
    if required:
        hq["ppk_required"] = True
    piked.extra = {"hq": hq}
    piked.start()
    return piked


def _established(piked: PikedNode, charon: StrongswanNode) -> tuple[IkeSaInfo, IkeSaInfo]:
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    return p, c


@pytest.mark.interop
@pytest.mark.parametrize(
    ("initiator", "proposal", "method"),
    [
        pytest.param("piked", HYBRID768, "ML_KEM_768", id="piked-mlkem768"),
        pytest.param("strongswan", HYBRID768, "ML_KEM_768", id="strongswan-mlkem768"),
        pytest.param("piked", HYBRID1024, "ML_KEM_1024", id="piked-mlkem1024"),
        pytest.param("strongswan", HYBRID1024, "ML_KEM_1024", id="strongswan-mlkem1024"),
    ],
)
def test_hybrid_mlkem_with_strongswan6(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon6: MakeCharon6,
    initiator: str,
    proposal: str,
    method: str,
) -> None:
    secret = Secret("hq", PSK, [BRANCH, HQ])
    esp = ("aes256gcm16",)
    charon = make_charon6(
        gateways.right, branch_hq("right", (proposal,), esp), secret, libipsec=gateways.libipsec
    )
    # piked keeps the classic proposal as the fallback a peer without ML-KEM may pick
    piked = make_piked(gateways.left, "piked", branch_hq("left", (proposal, CLASSIC), esp), secret)
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    _, c = _established(piked, charon)
    assert method in str(c.raw), c.raw  # swanctl --list-sas names the additional exchange
    algorithms = piked.list_sas_json()[0]["algorithms"]
    assert algorithms == proposal, algorithms
    text = piked.pikectl("list-sas").stdout  # swanctl's notation: .../KE1_ML_KEM_768
    assert f"CURVE_25519/KE1_{method}" in text, text
    log = charon.log_text()
    assert "IKE_INTERMEDIATE" in log and method in log
    piked_log = piked.log_text()
    assert "additional key exchange 1" in piked_log
    if method == "ML_KEM_1024":
        # a 1568-octet key or ciphertext exceeds the default fragment_size (1280):
        # the IKE_INTERMEDIATE messages travel in RFC 7383 fragments both ways
        assert "IKE_INTERMEDIATE" in piked_log and " fragments" in piked_log
        assert "splitting IKE message" in log or "received fragment" in log


@pytest.mark.interop
def test_mlkem_alone_with_strongswan6(
    gateways: Gateways, make_piked: MakePiked, make_charon6: MakeCharon6
) -> None:
    """ML-KEM-768 as the only key exchange of IKE_SA_INIT, where both ends allow it."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    props = ("aes256gcm16-prfsha384-mlkem768",)
    charon = make_charon6(
        gateways.right,
        branch_hq("right", props, ("aes256gcm16",)),
        secret,
        libipsec=gateways.libipsec,
    )
    piked = make_piked(gateways.left, "piked", branch_hq("left", props, ("aes256gcm16",)), secret)
    piked.initiate("hq")
    _, c = _established(piked, charon)
    assert "ML_KEM_768" in str(c.raw)


@pytest.mark.interop
@pytest.mark.parametrize("rekeyer", ["piked", "strongswan"])
def test_ike_rekey_with_followup_ke_with_strongswan6(
    gateways: Gateways, make_piked: MakePiked, make_charon6: MakeCharon6, rekeyer: str
) -> None:
    """IKE SA rekey with the additional exchange in IKE_FOLLOWUP_KE, each side rekeying
    once: new SPIs, the same on both sides, ML-KEM again in charon's log."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    charon = make_charon6(
        gateways.right,
        _hybrid768("right"),
        secret,
        libipsec=gateways.libipsec,
    )
    piked = make_piked(gateways.left, "piked", _hybrid768("left"), secret)
    piked.poll_via_socket = True
    piked.initiate("hq")
    p, _ = _established(piked, charon)
    old = _spis(p)
    for who in (rekeyer, "strongswan" if rekeyer == "piked" else "piked"):
        if who == "piked":
            piked.pikectl("rekey", "hq")
        else:
            charon.swanctl("--rekey", "--ike", "hq")
        wait_for("IKE SA rekeyed on both sides", partial(_agree, piked, charon, old), 15)
        now = _one(piked)
        assert now is not None
        old = _spis(now)
    c = _one(charon)
    assert c is not None and "ML_KEM_768" in str(c.raw)
    assert charon.log_text().count("IKE_FOLLOWUP_KE request") >= 2
    assert piked.log_text().count("IKE_FOLLOWUP_KE") >= 2
    assert piked.list_sas_json()[0]["algorithms"] == HYBRID768


def _spis(sa: IkeSaInfo) -> tuple[str, str]:
    return (sa.initiator_spi.removeprefix("0x"), sa.responder_spi.removeprefix("0x"))


def _one(node: PikedNode | StrongswanNode) -> IkeSaInfo | None:
    sas = [s for s in node.list_sas() if s.name == "hq"]
    return sas[0] if len(sas) == 1 and sas[0].state == "ESTABLISHED" else None


def _agree(piked: PikedNode, charon: StrongswanNode, old: tuple[str, str]) -> bool:
    p, c = _one(piked), _one(charon)
    return bool(p and c and _spis(p) == _spis(c) and _spis(p) != old)


PPK_HEX = "0x" + "3c" * 32
PPK_ID = "pike-ppk-1"


@pytest.mark.interop
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_ppk_with_strongswan6(
    gateways: Gateways, make_piked: MakePiked, make_charon6: MakeCharon6, initiator: str
) -> None:
    """RFC 8784 with hybrid ML-KEM-768, ppk_required on both ends: charon logs the PPK
    in use, and AUTH (made with SK_pi'/SK_pr') verifies on both sides."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    ppk = Secret("q", PPK_HEX, [PPK_ID], kind="ppk")
    charon_conn = _hybrid768("right")
    charon_conn.extra = {"ppk_id": PPK_ID, "ppk_required": "yes"}
    charon = make_charon6(gateways.right, charon_conn, secret, ppk, libipsec=gateways.libipsec)
    piked = _ppk_piked(gateways, make_piked, secret, ppk, required=True)
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    _established(piked, charon)
    assert f"using PPK for PPK_ID '{PPK_ID}'" in charon.log_text()
    assert piked.list_sas_json()[0]["ppk"] is True
    assert "KE1_ML_KEM_768, PPK" in piked.pikectl("list-sas").stdout
    log = piked.log_text()
    assert "PPK_IDENTITY" in log
    assert PPK_HEX[2:] not in log and "3c3c3c3c" not in log  # the PPK is never logged


@pytest.mark.interop
def test_ppk_fallback_to_strongswan6_without_it(
    gateways: Gateways, make_piked: MakePiked, make_charon6: MakeCharon6
) -> None:
    """piked offers a PPK that charon lacks (ppk_required off): charon authenticates with
    NO_PPK_AUTH and the IKE SA comes up without the PPK."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    other = Secret("z", "0x" + "77" * 32, ["some-other-ppk"], kind="ppk")
    charon = make_charon6(
        gateways.right,
        _hybrid768("right"),
        secret,
        other,
        libipsec=gateways.libipsec,
    )
    ppk = Secret("q", PPK_HEX, [PPK_ID], kind="ppk")
    piked = _ppk_piked(gateways, make_piked, secret, ppk, required=False)
    piked.initiate("hq")
    _established(piked, charon)
    assert "NO_PPK_AUTH" in charon.log_text()
    assert "keys without it" in piked.log_text()


@pytest.mark.interop
def test_wireshark_keys_decrypt_a_pq_ike_sa(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon6: MakeCharon6,
    tmp_path: Path,
    require: Require,
) -> None:
    """``save_keys_dir``: the exported IKE SA keys are the final ones (after the ML-KEM
    exchange), so tshark decrypts IKE_AUTH (piked's IDi) with them, and not without."""
    require(shutil.which("tshark") is not None, "`tshark` (Debian tshark)")
    secret = Secret("hq", PSK, [BRANCH, HQ])
    make_charon6(
        gateways.right,
        _hybrid768("right"),
        secret,
        libipsec=gateways.libipsec,
    )
    piked = make_piked(
        gateways.left,
        "piked",
        _hybrid768("left"),
        secret,
        start=False,
    )
    keys = tmp_path / "keys"
    piked.daemon = {"log_level": "debug", "save_keys_dir": str(keys)}
    piked.start()
    pcap = tmp_path / "pq.pcapng"
    tshark = gateways.left.popen(["tshark", "-q", "-i", "any", "-w", str(pcap), "-f", "udp"])
    try:
        wait_for("tshark capture file", pcap.exists, 10)
        time.sleep(0.5)
        piked.initiate("hq")
        piked.wait_established("hq", timeout=20)
        time.sleep(0.5)
    finally:
        kill_pid(tshark.pid)
    table = keys / "ikev2_decryption_table"
    assert len(table.read_text().splitlines()) == 1

    def idi_seen(conf: Path) -> str:
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(conf))
        argv = ["tshark", "-r", str(pcap), "-V", "-Y", "isakmp"]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        return out.stdout

    empty = tmp_path / "ws-empty"
    empty.mkdir()
    assert BRANCH not in idi_seen(empty), "IDi readable without keys?"
    wsconf = tmp_path / "ws"
    wsconf.mkdir()
    shutil.copy(table, wsconf / "ikev2_decryption_table")
    assert BRANCH in idi_seen(wsconf), "tshark did not decrypt IKE_AUTH with the exported keys"


@pytest.mark.interop
def test_classic_fallback_with_strongswan59(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon
) -> None:
    """Debian's strongSwan 5.9 (no ML-KEM, no IKE_INTERMEDIATE) skips the hybrid proposal
    piked offers first and picks the classic one after it: the README's fallback."""
    secret = Secret("hq", PSK, [BRANCH, HQ])
    charon = make_charon(
        gateways.right,
        "charon",
        branch_hq("right", (CLASSIC,), ("aes256gcm16",)),
        secret,
        libipsec=gateways.libipsec,
    )
    piked = make_piked(
        gateways.left, "piked", branch_hq("left", (HYBRID768, CLASSIC), ("aes256gcm16",)), secret
    )
    piked.initiate("hq")
    _established(piked, charon)
    assert piked.list_sas_json()[0]["algorithms"] == CLASSIC


@pytest.mark.interop
@pytest.mark.parametrize("charon_has_it", [True, False], ids=["ppk", "no-ppk-auth"])
def test_ppk_with_certificates_with_strongswan6(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon6: MakeCharon6,
    tmp_path: Path,
    charon_has_it: bool,
) -> None:
    """ECDSA certificates, hybrid ML-KEM-768 and a PPK piked does not require: charon with
    the PPK uses it; charon without it verifies piked's NO_PPK_AUTH signature."""
    ca = make_ca("ecdsa-p256", "pike pq CA")
    mine = issue(ca, "ecdsa-p256", BRANCH, [x509.DNSName(BRANCH)])
    theirs = issue(ca, "ecdsa-p256", HQ, [x509.DNSName(HQ)])
    files = tmp_path / "charon-creds"
    cert, key = write(files, "hq", theirs)
    ca_cert, _ = write(files, "ca", ca)
    conn = _hybrid768("right")
    conn.local_auth = conn.remote_auth = "pubkey"
    conn.local_certs = [cert.name]
    ppk = Secret("q", PPK_HEX, [PPK_ID if charon_has_it else "another-ppk"], kind="ppk")
    charon = make_charon6(gateways.right, conn, ppk, libipsec=gateways.libipsec, start=False)
    charon.start_with(cert, key, ca_cert)
    piked = make_piked(
        gateways.left,
        "piked",
        _hybrid768("left"),
        Secret("q", PPK_HEX, [PPK_ID], kind="ppk"),
        start=False,
    )
    write(piked.dir, "branch", mine)
    write(piked.dir, "ca", ca)
    piked.extra = {
        "hq": {
            "ppk_id": PPK_ID,
            "local": {"auth": "pubkey", "id": BRANCH, "certs": ["branch.pem"], "key": "branch.key"},
            "remote": {"auth": "pubkey", "id": HQ, "cacerts": ["ca.pem"]},
        }
    }
    piked.start()
    piked.initiate("hq")
    _established(piked, charon)
    log = charon.log_text()
    if charon_has_it:
        assert f"using PPK for PPK_ID '{PPK_ID}'" in log
        assert piked.list_sas_json()[0]["ppk"] is True
    else:
        assert "using NO_PPK_AUTH notify" in log
        assert piked.list_sas_json()[0]["ppk"] is False
