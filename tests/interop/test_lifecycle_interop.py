"""Host tier: the IKEv2 lifecycle against strongSwan 5.9 (issue 3, item 7), IKE side.

piked on ``left`` (192.0.2.1, branch1.example.net), charon on ``right`` (192.0.2.2,
hq.example.net). The host kernel has no ESP, so piked refuses CHILD_SAs and only the IKE SA
is proven here (tests/interop/test_lifecycle_dataplane.py does children and traffic in UML):

- IKE SA rekey initiated by piked (``pikectl rekey hq``) and by charon
  (``swanctl --rekey --ike hq``): new SPIs on both sides, one IKE SA left, the same on both;
- IKE fragmentation (RFC 7383) with an RSA-4096 chain (root, intermediate, leaf): IKE_AUTH
  goes out "in N fragments" from piked and charon reassembles it, and back, both roles;
- DPD of a killed charon (SIGKILL by PID): ``dpd_action = "clear"`` removes the IKE SA,
  ``"restart"`` initiates again and is established once charon is back.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from lib.pikeconf import TomlValue

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import rsa4096_chain, wait_for, write_chain
from .piked import PikedNode
from .strongswan import Connection, IkeSaInfo, Secret, StrongswanNode
from .topology import branch_hq

PSK = "pike-lifecycle-psk-3"
BRANCH, HQ = "branch1.example.net", "hq.example.net"
SECRET = Secret("hq", PSK, [BRANCH, HQ])
PROPOSALS = ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072")
FAST: dict[str, TomlValue] = {
    "log_level": "debug",
    "retransmit_timeout": "0.5s",
    "retransmit_tries": 2,
}

pytestmark = pytest.mark.interop


def conn(side: str, **kw: Any) -> Connection:
    return branch_hq(side, PROPOSALS, ("aes128gcm16",), **kw)


def spis(sa: IkeSaInfo) -> tuple[str, str]:
    return (sa.initiator_spi.removeprefix("0x"), sa.responder_spi.removeprefix("0x"))


def one_sa(node: PikedNode | StrongswanNode) -> IkeSaInfo | None:
    sas = [s for s in node.list_sas() if s.name == "hq"]
    if len(sas) == 1 and sas[0].state == "ESTABLISHED":
        return sas[0]
    return None


def both_agree(piked: PikedNode, charon: StrongswanNode, old: tuple[str, str]) -> bool:
    p, c = one_sa(piked), one_sa(charon)
    return bool(p and c and spis(p) == spis(c) and spis(p) != old)


def establish(piked: PikedNode, charon: StrongswanNode, who: str) -> tuple[str, str]:
    if who == "piked":
        piked.initiate("hq")
    else:
        charon.initiate_ike("hq")
    p = piked.wait_established("hq", timeout=15)
    c = charon.wait_established("hq", timeout=15)
    assert spis(p) == spis(c), (p, c)
    return spis(p)


@pytest.mark.parametrize("rekeyer", ["piked", "strongswan"])
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_ike_sa_rekey(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    initiator: str,
    rekeyer: str,
) -> None:
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left"), SECRET)
    piked.poll_via_socket = True
    old = establish(piked, charon, initiator)
    t0 = time.monotonic()
    if rekeyer == "piked":
        piked.pikectl("rekey", "hq")
    else:
        charon.swanctl("--rekey", "--ike", "hq")
    wait_for("IKE SA rekeyed on both sides", lambda: both_agree(piked, charon, old), 15)
    took = time.monotonic() - t0
    p = one_sa(piked)
    assert p is not None
    # and again the other way, on the new IKE SA
    second = spis(p)
    if rekeyer == "piked":
        charon.swanctl("--rekey", "--ike", "hq")
    else:
        piked.pikectl("rekey", "hq")
    wait_for("second IKE rekey", lambda: both_agree(piked, charon, second), 15)
    p, c = one_sa(piked), one_sa(charon)
    assert p is not None and c is not None
    assert len({old, second, spis(p)}) == 3
    print(
        f"\nIKE rekey ({initiator} initiated, {rekeyer} rekeyed first) in {took:.2f}s: "
        f"{old} -> {second} -> {spis(p)}"
    )
    plog = piked.log_text()
    assert "CREATE_CHILD_SA" in plog, plog[-3000:]


# -- fragmentation -------------------------------------------------------------------------


def _big_cert_setup(
    gw: Gateways, make_piked: MakePiked, make_charon: MakeCharon, tmp_path: Path
) -> tuple[PikedNode, StrongswanNode]:
    t0 = time.monotonic()
    chain = rsa4096_chain(BRANCH, HQ)
    print(f"\nRSA-4096 chain generated in {time.monotonic() - t0:.1f}s")
    files = write_chain(chain, tmp_path / "chain")
    charon_conn = conn(
        "right",
        local_auth="pubkey",
        remote_auth="pubkey",
        local_certs=["hq.pem"],
        extra={"fragmentation": "yes"},
    )
    charon = make_charon(gw.right, "charon", charon_conn, libipsec=gw.libipsec, start=False)
    charon.charon_settings["fragment_size"] = 1280
    charon.log_levels["net"] = 2
    charon.log_levels["enc"] = 1
    charon.start_with(files["hq"], files["hq_key"], files["root"], files["inter"])

    piked = make_piked(gw.left, "piked", conn("left"), start=False)
    piked.poll_via_socket = True
    piked.daemon["fragment_size"] = 1280
    write_chain(chain, piked.dir)  # relative names resolve against the config directory
    piked.extra = {
        "hq": {
            "local": {
                "auth": "pubkey",
                "id": BRANCH,
                "certs": ["branch.pem", "inter.pem"],
                "key": "branch.key",
            },
            "remote": {"auth": "pubkey", "id": HQ, "cacerts": ["root.pem"]},
            "fragmentation": True,
        }
    }
    piked.start()
    return piked, charon


@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_ike_fragmentation_rsa4096_chain(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    initiator: str,
) -> None:
    piked, charon = _big_cert_setup(gateways, make_piked, make_charon, tmp_path)
    t0 = time.monotonic()
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate_ike("hq")
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    took = time.monotonic() - t0
    assert spis(p) == spis(c)
    plog, clog = piked.log_text(), charon.log_text()
    sent = re.findall(r"sending IKE_AUTH (?:request|response) \d+ .* in (\d+) fragments", plog)
    assert sent and int(sent[0]) >= 3, plog[-4000:]
    # charon: splitting its own IKE_AUTH, and reassembling piked's
    split = re.findall(r"splitting IKE message \((\d+) bytes\) into (\d+) fragments", clog)
    assert split, clog[-4000:]
    assert "received fragment #" in clog and "reassembled fragmented IKE message" in clog, clog
    # piked reassembled charon's split IKE_AUTH (it logs the whole message it opened)
    assert re.search(r"received IKE_AUTH (request|response) 1 \[ ID[ir] CERT CERT", plog), plog
    assert f"authenticated peer '{HQ}'" in plog
    assert f"authentication of '{BRANCH}' with RSA" in clog
    print(
        f"IKE SA with RSA-4096 chain ({initiator} initiated) in {took:.2f}s: piked sent "
        f"IKE_AUTH in {sent[0]} fragments, charon split {split[0][0]} bytes into "
        f"{split[0][1]} fragments"
    )


# -- DPD of a killed charon ----------------------------------------------------------------


@pytest.mark.parametrize("action", ["clear", "restart"])
def test_dpd_killed_strongswan(
    gateways: Gateways, make_piked: MakePiked, make_charon: MakeCharon, action: str
) -> None:
    charon = make_charon(
        gateways.right, "charon", conn("right"), SECRET, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", conn("left", dpd_delay="1s"), SECRET, start=False)
    piked.daemon.update(FAST)
    piked.extra = {"hq": {"dpd_action": action}}
    piked.start()
    piked.poll_via_socket = True
    old = establish(piked, charon, "piked")
    assert charon.pid is not None
    os.kill(charon.pid, signal.SIGKILL)
    charon.proc.wait(timeout=5)  # type: ignore[union-attr]
    t0 = time.monotonic()
    if action == "clear":
        piked.wait_no_sas(timeout=20, ike="hq")
        took = time.monotonic() - t0
        time.sleep(1.0)
        assert piked.ike_sa("hq") is None
        print(f"\nDPD clear: charon killed, piked cleared the IKE SA after {took:.2f}s")
    else:
        wait_for(
            "piked gave up the dead IKE SA",
            lambda: "peer is dead, dpd_action=restart" in piked.log_text(),
            20,
        )
        took = time.monotonic() - t0
        charon.start()
        p = piked.wait_established("hq", timeout=30)
        c = charon.wait_established("hq", timeout=10)
        assert spis(p) == spis(c) and spis(p) != old
        assert p.initiator
        print(
            f"\nDPD restart: charon killed, dead after {took:.2f}s, re-established "
            f"{time.monotonic() - t0:.2f}s after the kill (charon restarted)"
        )
    assert "sending DPD" in piked.log_text() or "INFORMATIONAL" in piked.log_text()
