"""The IKEv2 lifecycle with a real ESP data plane: two piked gateways with hosts behind them.

Kernel tier (UML guest; skips on a kernel without ESP):

- ``start_action = "trap"``: the first ping from ``lefthost`` makes the kernel send ACQUIRE,
  piked negotiates, and pings cross the tunnel;
- the kernel's soft EXPIRE rekeys the CHILD_SA: the test lowers the soft packet limit of
  left's outbound SA (``ip xfrm state update``: only the lifetime of a valid SA changes),
  pings, and both sides end up with new SPIs while pings still cross;
- DPD (``dpd_delay = "2s"``): while pings flow no DPD is sent (the kernel's last-use time of
  the inbound SA counts as a sign of life); after the peer piked is killed (SIGKILL, by PID)
  the survivor's DPD goes unanswered and ``dpd_action = "clear"`` removes its SAs and
  policies from the kernel, or ``"restart"`` initiates again (and succeeds once the peer is
  back).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.netns import Lab
from kernel.piked_netns import Pair, Piked, established, make_pair, running, xfrm
from pike.policy.ipsec import KernelCaps

pytestmark = pytest.mark.kernel

FAST_RETRANSMIT = 'retransmit_timeout = "0.5s"\nretransmit_tries = 2'
DPD = 'dpd_delay = "2s"'


@pytest.fixture
def lab(run_prefix: str, esp_kernel: KernelCaps) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}lk-") as la:
        yield la


def _ping_until_ok(p: Pair, timeout: float) -> float:
    """Ping righthost from lefthost until one answer comes back; seconds it took."""
    host = p.gw.left_lan.host
    assert host is not None
    t0 = time.monotonic()
    while not host.ping("10.2.0.2", timeout=1.0):
        assert time.monotonic() - t0 < timeout, f"no ping across\n{p.dump()}"
    return time.monotonic() - t0


def _child(p: Piked) -> dict[str, object]:
    children = [c for s in p.sas() for c in s["children"] if c["state"] == "INSTALLED"]
    assert len(children) == 1, p.sas()
    return dict(children[0])


def _spi_in_or_none(p: Piked) -> object:
    """The INSTALLED child's inbound SPI, None while a rekey has none INSTALLED."""
    try:
        return _child(p)["spi_in"]
    except AssertionError:
        return None


def _dpd_sent(p: Piked) -> int:
    return p.text_log().count("sending DPD")


def test_trap_then_soft_expire_rekey_then_dpd_clear(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(
        lab,
        tmp_path,
        left={
            "start_action": "trap",
            "daemon": FAST_RETRANSMIT,
            "conn": f'{DPD}\ndpd_action = "clear"',
        },
    )
    timings: dict[str, float] = {}
    with running(pair) as p:
        # -- trap: policies only, until the first packet -------------------------------
        assert "reqid" in xfrm(p.gw.left, "policy") and p.left.sas() == []
        assert "spi" not in xfrm(p.gw.left)
        timings["trap: first ping -> ping answered"] = _ping_until_ok(p, 30)
        assert "kernel ACQUIRE reqid" in p.left.text_log(), p.dump()
        left, right = _child(p.left), _child(p.right)
        assert (left["spi_in"], left["spi_out"]) == (right["spi_out"], right["spi_in"])
        assert int(str(left["packets_out"])) >= 1, left

        # -- soft expire -> CHILD_SA rekey ---------------------------------------------
        out_spi = str(left["spi_out"])
        update = (
            f"xfrm state update src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x{out_spi} "
            f"reqid {left['reqid']} mode tunnel flag af-unspec "
            f"aead rfc4106(gcm(aes)) 0x{'00' * 20} 128 limit packet-soft 3"
        )
        p.gw.left.ip(*update.split())
        stats = p.gw.left.ip("-s", "xfrm", "state").stdout
        assert "soft 3(packets)" in stats and "00" * 20 not in stats, stats  # keys kept
        t0 = time.monotonic()
        host = p.gw.left_lan.host
        assert host is not None
        host.run(["ping", "-n", "-q", "-c", "4", "-i", "0.2", "10.2.0.2"], check=False)

        def rekeyed() -> bool:
            try:
                a, b = _child(p.left), _child(p.right)
            except AssertionError:
                return False
            return a["spi_out"] != out_spi and a["spi_in"] == b["spi_out"]

        p.wait(rekeyed, 30, "CHILD_SA rekey after soft EXPIRE")
        timings["soft EXPIRE -> new CHILD_SA on both sides"] = time.monotonic() - t0
        log = p.left.text_log()
        assert re.search(rf"kernel soft EXPIRE of SA {out_spi} ", log), p.dump()
        assert "soft expired" in log, p.dump()
        p.wait(lambda: f"0x{out_spi}" not in xfrm(p.gw.left), 15, "old SA removed")
        timings["ping after rekey"] = _ping_until_ok(p, 10)

        # -- pikectl rekey: the CHILD_SA, then the IKE SA (its child moves over) --------
        before_child = _child(p.left)
        t0 = time.monotonic()
        assert p.left.pikectl("rekey", "hq.lan").returncode == 0
        p.wait(
            lambda: (
                _spi_in_or_none(p.left) not in (before_child["spi_in"], None)
                and len(xfrm(p.gw.left).split("proto esp")) == 3
            ),
            15,
            "pikectl rekey hq.lan",
        )
        timings["pikectl rekey hq.lan -> old SAs gone"] = time.monotonic() - t0
        _ping_until_ok(p, 10)
        old_ike, kept = p.left.sas()[0], _child(p.left)
        t0 = time.monotonic()
        assert p.left.pikectl("rekey", "hq").returncode == 0
        p.wait(
            lambda: (
                [s["spi_i"] for s in p.left.sas()] not in ([old_ike["spi_i"]], [])
                and len(p.left.sas()) == 1
            ),
            15,
            "pikectl rekey hq",
        )
        timings["pikectl rekey hq (IKE SA)"] = time.monotonic() - t0
        assert _child(p.left)["spi_in"] == kept["spi_in"]  # the CHILD_SA moved over
        assert _child(p.right)["spi_out"] == kept["spi_in"]
        _ping_until_ok(p, 10)

        # -- DPD is quiet while ESP flows ----------------------------------------------
        pinger = host.popen(["ping", "-n", "-q", "-c", "40", "-i", "0.2", "10.2.0.2"])
        time.sleep(1.0)
        before = _dpd_sent(p.left)
        time.sleep(5.0)  # idle, two or three DPDs would go out in this time
        during = _dpd_sent(p.left) - before
        pinger.wait(timeout=20)
        assert during == 0, p.dump()

        # -- the peer dies: DPD, retransmits, dpd_action = clear -----------------------
        t0 = time.monotonic()
        p.right.kill()
        p.wait(lambda: p.left.sas() == [], 30, "IKE SA cleared")
        timings["peer killed -> SAs cleared"] = time.monotonic() - t0
        assert _dpd_sent(p.left) > before
        assert "retransmit_timeout" in p.left.text_log(), p.dump()
        assert xfrm(p.gw.left).strip() == "", xfrm(p.gw.left)
        # the trap stays (strongSwan: a trapped child returns to its trap)
        assert "reqid" in xfrm(p.gw.left, "policy"), xfrm(p.gw.left, "policy")
        print("\n" + "\n".join(f"{k}: {v:.2f}s" for k, v in timings.items()))


def test_dpd_restart_initiates_again(lab: Lab, tmp_path: Path) -> None:
    pair = make_pair(
        lab,
        tmp_path,
        left={
            "start_action": "start",
            "daemon": 'retransmit_timeout = "0.5s"\nretransmit_tries = 3',
            "conn": f'{DPD}\ndpd_action = "restart"',
        },
    )
    with running(pair) as p:
        p.wait(lambda: established(p.left, 1) and established(p.right, 1), 30, "tunnel")
        _ping_until_ok(p, 10)
        old = p.left.sas()[0]["spi_i"]
        t0 = time.monotonic()
        p.right.kill()
        p.right.start()  # a fresh piked (no state) comes back while left still thinks
        p.wait(
            lambda: "dpd_action=restart: initiating again" in p.left.text_log(),
            30,
            "restart after dead peer",
        )
        t_dead = time.monotonic() - t0
        assert "sending DPD" in p.left.text_log()
        p.wait(
            lambda: established(p.left, 1) and p.left.sas()[0]["spi_i"] != old,
            30,
            "re-established",
        )
        t_back = time.monotonic() - t0
        _ping_until_ok(p, 15)
        print(f"\npeer killed -> restart: {t_dead:.2f}s; -> new tunnel up: {t_back:.2f}s")
