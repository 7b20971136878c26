"""After SIGKILL and a restart the kernel holds only what the new run owns (issue 13).

Kernel tier (UML guest; skips on a kernel without ESP): left's piked is killed with the
tunnel up (its SAs and policies stay in the kernel: no shutdown ran), started again, and
must remove what the killed run left (``pike.daemon.recovery``) before bringing the
tunnel back: afterwards left's kernel has exactly the new CHILD_SA's two SAs, right's too
(INITIAL_CONTACT ends its old IKE SA), and pings cross.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from kernel.piked_netns import established, make_pair, running, xfrm
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}cr-") as la:
        yield la


def _spis(text: str) -> set[str]:
    return set(re.findall(r"spi (0x[0-9a-f]+)", text))


def test_restart_after_sigkill_leaves_no_stale_sas(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(lab, tmp_path, left={"start_action": "start"})
    with running(pair) as p:
        p.wait(lambda: established(p.left, 1) and established(p.right, 1), 30, "tunnel")
        host = p.gw.left_lan.host
        assert host is not None
        t0 = time.monotonic()
        while not host.ping("10.2.0.2", timeout=1.0):
            assert time.monotonic() - t0 < 20, p.dump()
        before = _spis(xfrm(p.left.ns))
        assert len(before) == 2, xfrm(p.left.ns)
        p.left.kill()  # SIGKILL by PID: no flush
        assert _spis(xfrm(p.left.ns)) == before  # what the killed run left
        p.left.start()
        p.wait(lambda: established(p.left, 1), 30, "tunnel again")
        (child,) = [c for s in p.left.sas() for c in s["children"] if c["state"] == "INSTALLED"]
        now = _spis(xfrm(p.left.ns))
        assert now.isdisjoint(before), f"stale SAs next to the new ones:\n{xfrm(p.left.ns)}"
        assert len(now) == 2, xfrm(p.left.ns)
        assert {
            f"0x{int(str(child['spi_in']), 16):08x}",
            f"0x{int(str(child['spi_out']), 16):08x}",
        } == now
        assert "previous run of piked left in the kernel" in p.left.text_log()
        p.wait(lambda: len(_spis(xfrm(p.right.ns))) == 2, 15, "right drops its old SAs")
        t0 = time.monotonic()
        while not host.ping("10.2.0.2", timeout=1.0):
            assert time.monotonic() - t0 < 20, p.dump()
