"""Host tier: HMAC-SHA-1 against strongSwan 5.9, IKEv2 and IKEv1, both roles.

Head offices still hand out parameter sheets with SHA-1 (``aes128-sha1-modp2048``, ESP
``aes128-sha1``); RFC 8247 and RFC 8221 keep HMAC_SHA1_96 and PRF_HMAC_SHA1 as MUST-, so
pike offers them (MD5 stays refused). Here the IKE SA (IKEv2: integrity HMAC_SHA1_96 and
the implied PRF_HMAC_SHA1; IKEv1: Main Mode with the SHA-1 hash) comes up with charon
agreeing on the algorithms. ESP with hmac(sha1) through the kernel: tests/kernel/test_xfrm.py
(suite aes128-sha1, in UML).
"""

from __future__ import annotations

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .strongswan import Connection, Secret
from .topology import BRANCH_ID as BRANCH
from .topology import HQ_ID as HQ
from .topology import branch_hq, branch_hq_v1

pytestmark = pytest.mark.interop

PSK = "pike-sha1-psk-4"
IKE, ESP = ("aes128-sha1-modp2048",), ("aes128-sha1",)


def _v2(side: str) -> Connection:
    return branch_hq(side, IKE, ESP)


def _v1(side: str) -> Connection:
    return branch_hq_v1(side, proposals=IKE, esp_proposals=ESP)


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("initiator", ["piked", "strongswan"])
def test_sha1_proposals_with_strongswan(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    version: int,
    initiator: str,
) -> None:
    make = _v2 if version == 2 else _v1
    secret = Secret("hq", PSK, [BRANCH, HQ] if version == 2 else [])
    charon = make_charon(
        gateways.right, "charon", make("right"), secret, libipsec=gateways.libipsec
    )
    piked = make_piked(gateways.left, "piked", make("left"), secret)
    if initiator == "piked":
        piked.initiate("hq")
    else:
        charon.initiate("lan", ike="hq", check=False)
    p = piked.wait_established("hq", timeout=20)
    c = charon.wait_established("hq", timeout=20)
    assert p.version == c.version == version
    assert (p.initiator_spi, p.responder_spi) == (c.initiator_spi, c.responder_spi)
    raw = c.raw
    print(
        f"\nIKEv{version}, {initiator} initiating: charon agreed on {raw.get('encr-alg')}-"
        f"{raw.get('encr-keysize')} / {raw.get('integ-alg')} / {raw.get('prf-alg')} / "
        f"{raw.get('dh-group')}"
    )
    assert (raw.get("encr-alg"), raw.get("integ-alg")) == ("AES_CBC", "HMAC_SHA1_96"), raw
    assert raw.get("prf-alg") == "PRF_HMAC_SHA1", raw
    assert raw.get("dh-group") == "MODP_2048", raw
    if gateways.esp_in_kernel:
        c = charon.wait_established("hq", timeout=10, child="lan")
        lan = c.child("lan")
        assert lan is not None and (lan.encr_alg, lan.integ_alg) == ("AES_CBC", "HMAC_SHA1_96")
