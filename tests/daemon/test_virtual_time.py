"""Two daemons (real engines, real sockets over loopback) on one ``VirtualClock``: hours of
IKE lifetimes in seconds of real time, with the runtime's own timer and control socket.

``NoKernel`` as in test_runtime_loopback: the IKE SA comes up, the CHILD_SA is refused.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest

from pike.daemon.runtime import Daemon
from pike.policy.loader import load_config

from .helpers import gateway_pair
from .test_runtime_loopback import _ask, _established, _until
from .virtual_pair import VirtualPair

HOUR = 3600
QUIET = 0.01  # real seconds per timer once the peer is deaf: no exchange to wait for


def test_rekey_and_reauth_over_hours_of_virtual_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """a rekeys its IKE SA every hour (minus up to 6 min of jitter); b reauthenticates
    every 3 h and, reauth_time being set, does not rekey (rekey_time defaults to 0)."""
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = gateway_pair(
        tmp_path, a_extra='rekey_time = "1h"\n', b_extra='reauth_time = "3h"\n'
    )
    assert cfg_b.connections["hq"].rekey_time == 0

    async def scenario() -> dict[str, Any]:
        pair = VirtualPair(cfg_a, cfg_b, random.Random(7).randbytes)
        await pair.start_both()
        clock, a, b = pair.clock, pair.a, pair.b
        sock_a, sock_b = cfg_a.daemon.control_socket, cfg_b.daemon.control_socket
        first = (await _until(sock_a, _established))[0]
        assert first["spi_i"] == (await _until(sock_b, _established))[0]["spi_i"]
        t0, up = time.monotonic(), clock.monotonic()
        rekeys = a.engine.ctx.counters.conn("hq")  # type: ignore[attr-defined]
        await clock.run_for(HOUR - 360 - 5)  # before the earliest rekey time
        early = rekeys.ike_rekeys
        await clock.run_for(360 + 10)  # past the latest
        one = rekeys.ike_rekeys
        await clock.run_for(8 * HOUR)
        sa_a = await _ask(sock_a, "list-sas")
        sa_b = await _ask(sock_b, "list-sas")
        status = await _ask(sock_a, "status")
        out = {
            "early": early,
            "one": one,
            "rekeys": rekeys.ike_rekeys,
            "b_rekeys": b.engine.ctx.counters.conn("hq").ike_rekeys,  # type: ignore[attr-defined]
            "virtual": clock.monotonic() - up,
            "real": time.monotonic() - t0,
            "first": first,
            "sa_a": sa_a["result"],
            "sa_b": sa_b["result"],
            "uptime": status["result"]["uptime"],
        }
        assert await pair.stop() == [0, 0]
        return out

    r = asyncio.run(scenario())
    reauths = caplog.text.count("reauthenticated as")
    print(
        f"\n{r['virtual'] / HOUR:.1f} h virtual in {r['real']:.1f} s real: "
        f"{r['rekeys']} IKE rekeys, {reauths} reauthentications"
    )
    assert r["virtual"] >= 9 * HOUR and r["real"] < 60, r
    assert r["uptime"] >= 9 * HOUR  # the control socket's view is on the same clock
    assert (r["early"], r["one"]) == (0, 1), r
    # 9 h of 54-60 min rekeys, less those a reauthentication's new IKE SA restarts
    assert 6 <= r["rekeys"] <= 10, r
    assert 2 <= reauths <= 3, caplog.text[-3000:]
    assert r["b_rekeys"] == r["rekeys"]  # the counter is per connection on both sides
    # one IKE SA on each side at the end, the same one, not the first
    (sa_a,), (sa_b,) = r["sa_a"], r["sa_b"]
    assert (sa_a["spi_i"], sa_a["spi_r"]) == (sa_b["spi_i"], sa_b["spi_r"])
    assert sa_a["state"] == sa_b["state"] == "ESTABLISHED"
    assert sa_a["spi_i"] != r["first"]["spi_i"]


def _deaf(d: Daemon) -> None:
    """From now on ``d`` drops every datagram unread: a peer that died without a word."""
    # the engine's entry point, which the sockets hand each datagram to (from ``open``)
    sockets = d.datagrams._sockets
    assert sockets is not None
    sockets._on_datagram = lambda *args: None


def test_dpd_of_a_dead_peer_with_default_timers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """dpd_delay 30 s and strongSwan's retransmission schedule (4 s x 1.8^n, 5 retransmits:
    165 s): a clears the IKE SA of a peer that went silent, 165-195 s later."""
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = gateway_pair(tmp_path, a_extra='dpd_delay = "30s"\n')
    cfg_a = _with_default_schedule(tmp_path, cfg_a)
    span = cfg_a.daemon.retransmit_span()
    assert round(span) == 165

    async def scenario() -> dict[str, Any]:
        pair = VirtualPair(cfg_a, cfg_b)
        await pair.start_both()
        clock, a, b = pair.clock, pair.a, pair.b
        await _until(cfg_a.daemon.control_socket, _established)
        await clock.run_for(100)  # b answers: probes every 30 s keep the SA
        alive = await _ask(cfg_a.daemon.control_socket, "list-sas")
        _deaf(b)
        t0, dead_at = clock.monotonic(), None
        for _ in range(40):
            await clock.run_for(10, settle=QUIET)
            if not (await _ask(cfg_a.daemon.control_socket, "list-sas"))["result"]:
                dead_at = clock.monotonic() - t0
                break
        counters = a.engine.ctx.counters.conn("hq")  # type: ignore[attr-defined]
        await pair.stop()
        return {"alive": alive["result"], "dead_at": dead_at, "c": counters}

    r = asyncio.run(scenario())
    print(f"\nDPD: dead peer cleared {r['dead_at']:.0f} s (virtual) after it went silent")
    assert len(r["alive"]) == 1 and r["alive"][0]["state"] == "ESTABLISHED"
    assert r["c"].dpd_probes >= 3 + 1, r["c"]  # ~3 answered while b lived, then the last
    assert r["dead_at"] is not None
    # the first unanswered probe within dpd_delay of the last answer (DPD ran all along),
    # then the retransmissions; the test looks every 10 s
    assert span <= r["dead_at"] <= 30 + span + 10 + 1, r["dead_at"]
    assert r["c"].retransmits == 5, r["c"]


def test_keyingtries_with_default_timers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """keyingtries = 3 towards a peer that never answers: three IKE_SA_INIT sequences of
    165 s each, then piked gives up, logs it, and nothing is left."""
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = gateway_pair(tmp_path, a_extra="keyingtries = 3\n")
    cfg_a = _with_default_schedule(tmp_path, cfg_a, start="start")
    span = cfg_a.daemon.retransmit_span()

    async def scenario() -> dict[str, Any]:
        pair = VirtualPair(cfg_a, cfg_b)
        clock, a, b = pair.clock, pair.a, pair.b
        await pair.start(b)
        _deaf(b)
        t0 = clock.monotonic()
        await pair.start(a)
        gave_up = None
        for _ in range(60):
            await clock.run_for(10, settle=QUIET)
            if "attempt(s) (keyingtries" in caplog.text:
                gave_up = clock.monotonic() - t0
                break
        await clock.run_for(2 * span, settle=QUIET)  # and nothing more
        sas = await _ask(cfg_a.daemon.control_socket, "list-sas")
        counters = a.engine.ctx.counters.conn("hq")  # type: ignore[attr-defined]
        await pair.stop()
        return {"gave_up": gave_up, "sas": sas["result"], "c": counters}

    r = asyncio.run(scenario())
    print(f"\nkeyingtries = 3: gave up {r['gave_up']:.0f} s (virtual) after the start")
    assert r["gave_up"] is not None and 3 * span - 1 <= r["gave_up"] <= 3 * span + 10 + 1
    assert "giving up after 3 attempt(s) (keyingtries = 3)" in caplog.text
    assert r["c"].retransmits == 3 * 5 and r["sas"] == [], r


def _with_default_schedule(tmp_path: Path, cfg: Any, start: str | None = None) -> Any:
    """``cfg`` with strongSwan's default retransmission schedule (4 s, not the helper's 1 s);
    ``start``: its child's start_action."""
    path = Path(cfg.path)
    text = path.read_text().replace('retransmit_timeout = "1s"', 'retransmit_timeout = "4s"')
    if start is not None:
        text = text.replace('start_action = "start"', f'start_action = "{start}"')
    path.write_text(text)
    return load_config(str(path))
