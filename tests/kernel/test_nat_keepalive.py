"""NAT traversal through a third namespace that masquerades (nftables), two piked:

    lefthost 10.1.0.2 -- left 192.168.1.2 -- nat 192.168.1.1 | 192.0.2.1 (masquerade)
                                                           -- right 192.0.2.2 -- righthost

(nftables masquerade; where the kernel has no nat chain type, stateless tc act_nat of
the private address.) Left is behind the NAT: NAT detection floats IKE to 4500, and left
(only left: right is not behind a NAT) sends a one-octet 0xFF keepalive every
``keepalive`` (1 s here), which arrives at right from the NAT's address. On a kernel with
ESP (kernel tier, UML) the CHILD_SA is UDP-encapsulated and pings between the hosts cross the NAT.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from interop.topology import make_nat_gateways
from interop.udp_capture import CAPTURE
from kernel.piked_netns import Pair, Piked, config_text, established, running
from pike.policy.ipsec import KernelCaps


def _nat_pair(lab: Lab, tmp: Path, hosts: bool) -> Pair:
    gw, _, _ = make_nat_gateways(lab, dummy_lans=not hosts)
    left, right = gw.left, gw.right
    sides = []
    for name, ns, local, remote, lts, rts, lid, rid, start in (
        ("left", left, "192.168.1.2", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", "l", "r", True),
        ("right", right, "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", "r", "l", False),
    ):
        text = config_text(
            tmp / name / "pike.sock",
            local=local,
            remote=remote,
            local_ts=lts,
            remote_ts=rts,
            daemon="keepalive = 1",
            start_action="start" if start else "none",
        )
        # identities independent of the (translated) addresses
        text = text.replace(f"{local}.example.net", f"{lid}.example.net")
        text = text.replace(f"{remote}.example.net", f"{rid}.example.net")
        sides.append(Piked(ns, tmp / name, text))
    return Pair(gw, sides[0], sides[1], extra=[])


def _scenario(lab: Lab, tmp: Path, esp: bool) -> None:
    pair = _nat_pair(lab, tmp, hosts=esp)
    with running(pair) as p:
        took = p.wait(
            lambda: established(p.left, 1 if esp else None) and established(p.right), 30, "IKE"
        )
        (ike_l,), (ike_r,) = p.left.sas(), p.right.sas()
        assert ike_l["nat_local"] and not ike_l["nat_remote"], ike_l
        assert ike_r["nat_remote"] and not ike_r["nat_local"], ike_r
        assert ike_l["local_port"] == 4500 and ike_l["remote_port"] == 4500, ike_l
        assert ike_r["remote_addr"] == "192.0.2.1", ike_r
        cap = p.gw.right.popen(
            [sys.executable, "-c", CAPTURE, "wan0", "3.6"], stdout=subprocess.PIPE
        )
        assert cap.stdout is not None and cap.stdout.readline().strip() == b"ready"
        out, _ = cap.communicate(timeout=30)
        seen = [json.loads(line) for line in out.decode().splitlines()]
        ka = [d for d in seen if d["data"] == "ff"]
        from_nat = [d for d in ka if d["src"] == "192.0.2.1" and d["dport"] == 4500]
        assert 3 <= len(from_nat) <= 5, (seen, p.dump())
        assert not [d for d in ka if d["src"] == "192.0.2.2"], "right is not behind a NAT"
        result = f"\nbehind NAT: IKE up in {took:.2f}s, {len(from_nat)} keepalives in 3.6s"
        if esp:
            host = p.gw.left_lan.host
            assert host is not None
            t0 = time.monotonic()
            while not host.ping("10.2.0.2", timeout=1.0):
                assert time.monotonic() - t0 < 15, p.dump()
            (child,) = p.right.sas()[0]["children"]
            assert int(child["packets_in"]) >= 1, child
            state = p.gw.right.ip("xfrm", "state").stdout
            assert "encap type espinudp" in state, state
            result += f", ping across the NAT after {time.monotonic() - t0:.2f}s"
        print(result)


@pytest.fixture
def lab(run_prefix: str) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}nt-") as la:
        yield la


@pytest.mark.interop
def test_keepalives_through_masquerade(lab: Lab, tmp_path: Path) -> None:
    """IKE only (any kernel): NAT detected on the right side, keepalives on the wire."""
    _scenario(lab, tmp_path, esp=False)


@pytest.mark.kernel
def test_esp_in_udp_through_masquerade(lab: Lab, tmp_path: Path, esp_kernel: KernelCaps) -> None:
    _scenario(lab, tmp_path, esp=True)
