"""ESP data plane through a post-quantum tunnel: piked <-> strongSwan 6.0.6 (kernel-netlink)
with hybrid x25519 + ML-KEM-768 for the IKE SA and the CHILD_SA (PFS with the additional
exchange), traffic both ways, then CHILD_SA rekeys from either side (IKE_FOLLOWUP_KE) and
an IKE SA rekey under a UDP stream with no loss.

Marked ``kernel_interop``: tests/guest/test_interop_tier.py runs it inside User-Mode-Linux
(it builds strongSwan 6 on the host first; the guest sees the cache).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peers.strongswan6 import strongswan6_prefix

from .conftest import Gateways, MakePiked, charon_nodes
from .lifecycle_tools import wait_for
from .strongswan import Secret, StrongswanNode
from .test_dataplane import esp_gw, shared_gw, traffic_both_ways  # noqa: F401 (fixtures)
from .test_lifecycle_dataplane import LAN, assert_no_loss, settled, stream_with, warm_up
from .topology import branch_hq

PSK = "pike-pq-dataplane-psk"
LEFT_ID, RIGHT_ID = "branch1.example.net", "hq.example.net"
IKE = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
ESP = "aes256gcm16-x25519-ke1_mlkem768"

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]


@pytest.fixture
def charon6(esp_gw: Gateways, tmp_path: Path) -> Iterator[StrongswanNode]:  # noqa: F811
    with charon_nodes(tmp_path, strongswan6_prefix()) as make:
        yield make(
            esp_gw.right,
            "charon6",
            branch_hq("right", (IKE,), (ESP,)),
            Secret("hq", PSK, [LEFT_ID, RIGHT_ID]),
            libipsec=False,
        )


def test_pq_tunnel_carries_traffic_and_rekeys_with_followup_ke(
    esp_gw: Gateways,  # noqa: F811
    make_piked: MakePiked,
    charon6: StrongswanNode,
) -> None:
    piked = make_piked(
        esp_gw.left,
        "piked",
        branch_hq("left", (IKE,), (ESP,)),
        Secret("hq", PSK, [LEFT_ID, RIGHT_ID]),
    )
    piked.poll_via_socket = True
    t0 = time.monotonic()
    piked.initiate("hq")
    p, c = settled(piked, charon6)
    print(f"hybrid ML-KEM-768 tunnel up in {time.monotonic() - t0:.2f}s")
    assert "ML_KEM_768" in str(c.raw)
    child = piked.list_sas_json()[0]["children"][0]
    assert child["algorithms"] == "aes256gcm16", child  # IKE_AUTH has no KE (RFC 9370 §2.2.3)
    traffic_both_ways(esp_gw)
    warm_up(esp_gw)
    # CHILD rekeys with PFS from both ends, then an IKE rekey, under a UDP stream
    res = stream_with(
        esp_gw,
        [
            (1.0, "piked rekeys lan", lambda: piked.control("rekey", LAN)),
            (2.5, "charon rekeys lan", lambda: charon6.swanctl("--rekey", "--child", "lan")),
            (4.0, "piked rekeys the IKE SA", lambda: piked.control("rekey", {"conn": "hq"})),
        ],
        seconds=6.0,
    )
    assert_no_loss(res)

    def rekeyed() -> object:  # polled: on a loaded machine the rekey may still be under way
        p2, _ = settled(piked, charon6)
        return p2 if p2.initiator_spi != p.initiator_spi else None

    wait_for("the IKE SA rekeyed with IKE_FOLLOWUP_KE", rekeyed, 30, 0.5)
    child = piked.list_sas_json()[0]["children"][0]
    assert child["algorithms"] == ESP, child  # rekeyed with PFS: x25519 + ML-KEM-768
    log = charon6.log_text()
    assert log.count("IKE_FOLLOWUP_KE request") >= 3, "two CHILD rekeys and one IKE rekey"
    assert piked.log_text().count("additional key exchange(s) done in IKE_FOLLOWUP_KE") >= 3
    traffic_both_ways(esp_gw)
