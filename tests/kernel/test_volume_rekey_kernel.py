"""Kernel tier: a CHILD_SA rekeyed by its packet count (``rekey_packets``), two piked.

Left's child has ``rekey_packets = 50`` (``rand_packets = 10``, ``life_packets = 1000``):
piked puts these limits into the XFRM SAs' lifetime, the kernel raises a soft EXPIRE after
40-50 packets on an SA, and piked rekeys (make before break). A 10 s ping stream
(20 packets/s) from lefthost to righthost therefore sees several rekeys: new SPIs in
``list-sas``, the old SAs gone from the kernel, and no ping lost.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from kernel.piked_netns import Piked, established, make_pair, running, xfrm
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel

LIMITS = "rekey_packets = 50\nrand_packets = 10\nlife_packets = 1000"
PINGS = 200


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}kv-") as la:
        yield la


def _spi_in(p: Piked) -> str | None:
    children = [c for s in p.sas() for c in s["children"] if c["state"] == "INSTALLED"]
    return str(children[0]["spi_in"]) if len(children) == 1 else None


def test_rekey_packets_rekeys_the_child_under_traffic(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(lab, tmp_path, left={"start_action": "start", "child": LIMITS})
    with running(pair) as p:
        p.wait(lambda: established(p.left, 1) and established(p.right, 1), 30, "tunnel")
        first = _spi_in(p.left)
        state = p.gw.left.ip("-s", "xfrm", "state").stdout
        # ip(8) prints the configured limits: soft 40..50 packets, hard 1000
        softs = [int(n) for n in re.findall(r"soft (\d+)\(packets\)", state)]
        assert len(softs) == 2 and all(40 <= n <= 50 for n in softs), state
        assert state.count("hard 1000(packets)") == 2, state
        host = p.gw.left_lan.host
        assert host is not None
        t0 = time.monotonic()
        ping = host.popen(
            ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.05", "10.2.0.2"],
            stdout=subprocess.PIPE,
        )
        seen = {first}
        while ping.poll() is None:
            seen.add(_spi_in(p.left))
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        out = (ping.stdout.read() if ping.stdout else b"").decode()
        seen.discard(None)
        # both directions count: left's SAs see 200 requests out and 200 replies in
        assert len(seen) >= 4, (seen, p.dump())
        p.wait(lambda: len(xfrm(p.gw.left).split("proto esp")) == 3, 15, "old SAs deleted")
        p.wait(lambda: len(xfrm(p.gw.right).split("proto esp")) == 3, 15, "old SAs deleted")
        log = p.left.text_log()
        soft = len(re.findall(r"kernel soft EXPIRE of SA", log))
        rekeyed = log.count(" rekeyed with SPIs ")
        assert rekeyed >= 3 and "hard EXPIRE" not in log, p.dump()
        got = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert got is not None, out
        sent, received = int(got.group(1)), int(got.group(2))
        assert sent == PINGS and received == sent, out  # make before break: nothing lost
        assert _spi_in(p.right) is not None and _spi_in(p.left) not in (first, None)
        print(
            f"\n{PINGS} pings in {elapsed:.1f}s, {received} answered; left: {soft} soft "
            f"EXPIREs, {rekeyed} rekeys, {len(seen)} inbound SPIs seen in list-sas"
        )
