"""Two piked in network namespaces on this host (XFRM netlink, no ESP needed):

- NAT-T keepalives on the wire: with ``encap = true`` and ``[daemon] keepalive = 1`` a
  raw socket on the peer's veth sees one-octet 0xFF UDP payloads to port 4500, about one a
  second from each side, never with the non-ESP marker;
- ``pikectl rekey hq`` replaces the IKE SA: both sides list the same new SPIs;
- ``start_action = "trap"``: trap policies are in the kernel at start, the first packet
  makes the kernel send ACQUIRE and piked brings the IKE SA up (without ESP the CHILD_SA is
  then refused; tests/kernel/test_lifecycle_kernel.py has the data plane).
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from interop.udp_capture import CAPTURE
from kernel.piked_netns import LEFT, RIGHT, established, make_pair, running, xfrm
from lib.prereq import require

pytestmark = pytest.mark.interop


@pytest.fixture
def lab(run_prefix: str) -> Iterator[Lab]:
    require(shutil.which("ip") is not None, "needs iproute2")
    with Lab.create(f"{run_prefix}lc-") as la:
        yield la


def test_natt_keepalives_on_the_wire(lab: Lab, tmp_path: Path) -> None:
    settings = {"daemon": "keepalive = 1", "conn": "encap = true"}
    pair = make_pair(
        lab, tmp_path, left={**settings, "start_action": "start"}, right=settings, hosts=False
    )
    with running(pair) as p:
        took = p.wait(lambda: established(p.left) and established(p.right), 20, "IKE SA")
        ike = p.left.sas()[0]
        assert ike["local_port"] == 4500 and ike["remote_port"] == 4500, ike
        cap = p.gw.right.popen(
            [sys.executable, "-c", CAPTURE, "wan0", "3.6"], stdout=subprocess.PIPE
        )
        assert cap.stdout is not None
        assert cap.stdout.readline().strip() == b"ready"
        out, _ = cap.communicate(timeout=20)
        seen = [json.loads(line) for line in out.decode().splitlines()]
        keepalives = [d for d in seen if d["data"] == "ff"]
        from_left = [d["t"] for d in keepalives if d["src"] == LEFT]
        from_right = [d["t"] for d in keepalives if d["src"] == RIGHT]
        assert all((d["sport"], d["dport"]) == (4500, 4500) for d in keepalives), keepalives
        # 3.6 s at one a second: 3 or 4 from each side
        assert 3 <= len(from_left) <= 5 and 3 <= len(from_right) <= 5, (seen, p.dump())
        gaps = [b - a for a, b in itertools.pairwise(from_left)]
        assert all(0.7 < g < 1.5 for g in gaps), gaps
        # nothing marker-prefixed that is one octet long, no other 0xff variants
        assert not [d for d in seen if d["data"].endswith("ff") and d["data"] != "ff"]
        print(
            f"\nIKE SA up in {took:.2f}s; keepalives in 3.6s: {len(from_left)} from left, "
            f"{len(from_right)} from right; gaps {[round(g, 2) for g in gaps]}"
        )


def test_pikectl_rekey_replaces_ike_sa(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(lab, tmp_path, left={"start_action": "start"}, hosts=False)
    with running(pair) as p:
        p.wait(lambda: established(p.left) and established(p.right), 20, "IKE SA")
        (old,) = p.left.sas()
        t0 = time.monotonic()
        done = p.left.pikectl("rekey", "hq")
        assert done.returncode == 0 and done.stdout.strip() == "rekeying hq", done

        def rekeyed() -> bool:
            sides = [p.left.sas(), p.right.sas()]
            return all(
                len(s) == 1 and s[0]["state"] == "ESTABLISHED" and s[0]["spi_i"] != old["spi_i"]
                for s in sides
            )

        p.wait(rekeyed, 15, "IKE SA rekey")
        took = time.monotonic() - t0
        (new_l,), (new_r,) = p.left.sas(), p.right.sas()
        assert (new_l["spi_i"], new_l["spi_r"]) == (new_r["spi_i"], new_r["spi_r"])
        assert new_l["spi_r"] != old["spi_r"]
        text = p.left.pikectl("list-sas").stdout
        assert new_l["spi_i"] in text and old["spi_i"] not in text, text
        # a CHILD name that does not exist, and a connection that does not: exit 1
        assert p.left.pikectl("rekey", "hq.nope").returncode == 1
        assert p.left.pikectl("rekey", "nope").returncode == 1
        print(f"\nIKE SA rekey via pikectl: {took:.2f}s until both sides list the new SPIs")


def test_trap_acquire_brings_ike_up(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(lab, tmp_path, left={"start_action": "trap"}, hosts=False)
    with running(pair) as p:
        policies = xfrm(p.gw.left, "policy")
        assert "src 10.1.0.0/24 dst 10.2.0.0/24" in policies, policies
        assert "reqid" in policies and p.left.sas() == []
        time.sleep(0.5)
        assert p.left.sas() == [], "trap must not initiate by itself"
        t0 = time.monotonic()
        p.gw.left.run(["ping", "-c1", "-W1", "-I", "10.1.0.1", "10.2.0.1"], check=False)
        p.wait(lambda: established(p.left) and established(p.right), 20, "IKE SA")
        took = time.monotonic() - t0  # includes ping's 1 s wait for a reply
        log = p.left.text_log()
        assert "kernel ACQUIRE reqid" in log and "acquire for reqid" in log, p.dump()
        print(f"\nfirst packet -> IKE SA established: {took:.2f}s")
