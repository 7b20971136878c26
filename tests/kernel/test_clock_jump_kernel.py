"""A real wall-clock jump with a tunnel up (issue 13, item 5), in the UML guest only.

Kernel tier: the guest has its own clock, so ``date -s`` here steps the guest's wall
clock and never the host's (the test refuses to run outside the guest). Two pikeds with
an IKE SA and a CHILD_SA (left rekeys the CHILD_SA after 8-10 s; the kernel's own soft
and hard lifetimes are 10 s and 20 s). The wall clock jumps one day forward, stays there
through the rekey, then jumps back: piked's timers run on the monotonic clock, so neither
jump fires anything (no timer storm: little CPU, no rekey, expiry or DPD line), the SAs
stay, and the rekey comes on the monotonic schedule. The kernel's XFRM lifetime check
uses the wall clock when its timer fires (at the soft lifetime, counted by a relative
timer): piked must have rekeyed before, or the kernel would take the jump for an expired
SA and delete it (hard expire without a soft one). The kernel's soft timer is set to
rekey_time, the latest piked's rekey comes (rekey_time minus 0..rand_time): when they
coincide the kernel may end the old SAs while the rekey exchange is under way, which
piked then ignores (the CHILD_SA is being made again anyway).

Last, a jump right after an install (a manual rekey): the kernel's first check of the new
SAs sees them a day old and removes them; piked (either side, whichever hears first)
makes the CHILD_SA again at once instead of losing the tunnel.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from kernel.piked_netns import Pair, Piked, established, make_pair, running, xfrm
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel

DAY = 86_400
REKEY, RAND, LIFE = 6, 1, 12  # the CHILD_SA's rekey_time, rand_time, life_time (left)
QUIET = 1.5  # seconds watched after each jump
CPU_QUIET = 0.5  # CPU seconds piked may use in that window (a timer storm spins a core)
SETTLE = 1.5  # seconds between the SAs' install and the jump
STORM = re.compile(r"rekey|expire|DPD|dead|retransmit", re.I)


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    if os.environ.get("PIKE_IN_GUEST") != "uml":
        pytest.skip("steps the wall clock: only inside the UML guest (its own clock)")
    with Lab.create(f"{run_prefix}cj-") as la:
        yield la


def _jump(seconds: int) -> None:
    """Step the guest's wall clock (settimeofday) by ``seconds``."""
    subprocess.run(["date", "-s", f"@{time.time() + seconds:.3f}"], check=True,
                   capture_output=True)  # fmt: skip


def _cpu(p: Piked) -> float:
    assert p.proc is not None
    fields = Path(f"/proc/{p.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _spis(p: Piked) -> tuple[str, tuple[str, ...]]:
    """The IKE SA's SPIs and its installed CHILD_SAs' inbound SPIs."""
    (sa,) = [s for s in p.sas() if s["state"] == "ESTABLISHED"]
    kids = tuple(str(c["spi_in"]) for c in sa["children"] if c["state"] == "INSTALLED")
    return f"{sa['spi_i']}/{sa['spi_r']}", kids


def _kernel_spis(p: Pair) -> set[str]:
    return set(re.findall(r"spi (0x[0-9a-f]+)", xfrm(p.left.ns)))


def _quiet(pair: list[Piked], what: str) -> None:
    """Nothing fires in the QUIET seconds after a jump: no CPU burst, no timer's log line."""
    cpu0, lines0 = [_cpu(p) for p in pair], [len(p.text_log().splitlines()) for p in pair]
    time.sleep(QUIET)
    for p, c0, n0 in zip(pair, cpu0, lines0, strict=True):
        used = _cpu(p) - c0
        new = p.text_log().splitlines()[n0:]
        print(f"{what}: {p.dir.name} used {used:.2f} s CPU, {len(new)} log lines")
        assert used < CPU_QUIET, f"{what}: {p.dir.name} used {used:.2f} s CPU\n" + "\n".join(new)
        assert not [ln for ln in new if STORM.search(ln)], f"{what}:\n" + "\n".join(new)


def test_wall_clock_jumps_a_day_and_back_with_a_tunnel_up(lab: Lab, tmp_path: Path) -> None:
    child = f'rekey_time = "{REKEY}s"\nrand_time = "{RAND}s"\nlife_time = "{LIFE}s"\n'
    pair = make_pair(lab, tmp_path, left={"start_action": "start", "child": child})
    jumped = 0
    try:
        with running(pair) as p:
            p.wait(lambda: established(p.left, 1) and established(p.right, 1), 30, "tunnel")
            up = time.monotonic()
            # The kernel checks a new SA's lifetimes once after 1 s, then at the soft one;
            # a jump before that first check would make it a hard expiry (see the doc).
            time.sleep(SETTLE)
            ike, kids = _spis(p.left)
            kernel = _kernel_spis(p)
            _jump(DAY)
            jumped = DAY
            _quiet([p.left, p.right], "one day forward")
            assert _spis(p.left) == (ike, kids), p.dump()
            assert _kernel_spis(p) == kernel  # the same SAs, nothing expired
            # the CHILD_SA's rekey: due REKEY - RAND .. REKEY seconds after it came up
            while _spis(p.left)[1] == kids:
                assert time.monotonic() - up < REKEY + 5, f"no rekey\n{p.dump()}"
                time.sleep(0.1)
            took = time.monotonic() - up
            print(f"CHILD_SA rekeyed {took:.2f} s after it came up (wall clock +1 day)")
            assert REKEY - RAND - 0.5 <= took <= REKEY + 1.5, p.dump()
            p.wait(lambda: len(_kernel_spis(p)) == 2, 10, "the old CHILD_SA's SAs gone")
            ike2, kids2 = _spis(p.left)
            assert ike2 == ike and len(kids2) == 1 and kids2 != kids
            kernel2 = _kernel_spis(p)
            _jump(-DAY)
            jumped = 0
            _quiet([p.left, p.right], "one day back")
            assert _spis(p.left) == (ike2, kids2), p.dump()
            host = p.gw.left_lan.host
            assert host is not None
            t0 = time.monotonic()
            while not host.ping("10.2.0.2", timeout=1.0):
                assert time.monotonic() - t0 < 10, p.dump()
            for side in (p.left, p.right):
                log = side.text_log()
                # no CHILD_SA ended by a hard expiry (the kernel may still report one for
                # the old SAs when its soft timer beats the rekey exchange: see the doc)
                assert "hard expired" not in log, side.tail()
                assert "Traceback" not in log
            # A jump within a second of an install: the kernel's first lifetime check
            # of the new SAs sees them a day old and removes them (hard expiry); piked
            # makes the CHILD_SA again rather than leaving the tunnel down.
            p.left.ctl("rekey", {"conn": "hq", "child": "lan"})
            t0 = time.monotonic()  # jump as soon as left has installed the new SAs
            while not (fresh := _kernel_spis(p) - kernel2):
                assert time.monotonic() - t0 < 10, p.dump()
                time.sleep(0.02)
            _jump(DAY)
            jumped = DAY
            warned = "wall clock stepped forward?"
            sides = (p.left, p.right)
            p.wait(lambda: any(warned in x.text_log() for x in sides), 10, "the hard expiry")
            p.wait(
                lambda: len(now := _kernel_spis(p)) == 2 and not now & (fresh | kernel2),
                10,
                "the CHILD_SA made again",
            )
            assert _spis(p.left)[0] == ike  # the same IKE SA
            t0 = time.monotonic()
            while not host.ping("10.2.0.2", timeout=1.0):
                assert time.monotonic() - t0 < 10, p.dump()
            print(f"early hard expiry: tunnel back {time.monotonic() - t0:.2f} s later")
    finally:
        if jumped:
            _jump(-jumped)  # the next tests in this guest get their clock back
