"""piked with ``hw_offload = "auto"`` installing its CHILD_SA on a netdevsim NIC (issue 19):
list-sas, the ``pike_child_sa_offload`` metric and the driver's own SA list agree.

6.1's netdevsim cannot transmit to another namespace, so IKE cannot cross it. Policy
routing splits the two: the left gateway's address 192.0.2.1 sits on the netdevsim NIC
and the main table routes the peer through it (the SAs' device: outbound the route to
the peer, inbound the interface holding the local address), while ``ip rule``s send IKE
(UDP to port 500/4500) out through the veth to the right gateway. The control path is
real end to end (negotiation, install with XFRMA_OFFLOAD_DEV, the driver taking the SAs);
ESP packets through the NIC are not. Kernel tier, pike's UML kernel only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab, Namespace
from kernel.netdevsim import netdevsim_port
from kernel.piked_netns import LEFT, established, make_pair, running
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel

METRICS = "127.0.0.1:9612"


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}kp-") as la:
        yield la


def scrape(ns: Namespace, url: str) -> str:
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=10).read().decode())"
    return ns.run([sys.executable, "-c", code]).stdout


def test_piked_auto_offloads_its_child_sa_on_netdevsim(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(
        lab,
        tmp_path,
        left={
            "child": 'hw_offload = "auto"',
            "start_action": "start",
            "daemon": f'metrics_listen = "{METRICS}"',
        },
        hosts=False,
    )
    left = pair.gw.left
    with netdevsim_port(left.name) as nic:
        left.ip("addr", "del", f"{LEFT}/24", "dev", "wan0")
        left.ip("addr", "add", f"{LEFT}/24", "dev", nic.dev)
        left.ip("link", "set", nic.dev, "up")
        left.ip("route", "add", "192.0.2.0/24", "dev", "wan0", "table", "100")
        # IKE by its port: a route lookup without ports (``ip route get``, pike's device
        # choice) defaults to UDP, so the protocol alone would not split the two
        for port in ("500", "4500"):
            left.ip("rule", "add", "ipproto", "udp", "dport", port, "lookup", "100")
        with running(pair) as p:
            p.wait(
                lambda: established(p.left, 1) and established(p.right, 1),
                30,
                "CHILD_SA",
            )
            child = p.left.sas()[0]["children"][0]
            offload_log = [line for line in p.left.text_log().splitlines() if "offload" in line]
            assert child["offload"] == "crypto", "\n".join(offload_log)
            assert p.right.sas()[0]["children"][0]["offload"] == "no"  # hw_offload = no there
            spi_in, spi_out = int(child["spi_in"], 16), int(child["spi_out"], 16)
            held = nic.sas()
            assert held[spi_out]["dir"] == "tx" and held[spi_in]["dir"] == "rx", held
            assert ", crypto offload" in p.left.pikectl("list-sas").stdout
            text = scrape(left, f"http://{METRICS}/metrics")
            for direction in ("in", "out"):
                line = (
                    f'pike_child_sa_offload{{child="lan",connection="hq",'
                    f'direction="{direction}",offload="crypto"}} 1.0'
                )
                assert line in text, text[-3000:]
