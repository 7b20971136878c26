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

from pike.cli.piked import _engine
from pike.daemon.clock import VirtualClock
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon

from .helpers import free_udp_ports, gateway_config
from .test_runtime_loopback import _ask, _established, _until

HOUR = 3600


def _pair(tmp_path: Path, a_extra: str, b_extra: str) -> tuple[Any, Any]:
    a_ike, a_natt, b_ike, b_natt = free_udp_ports(4)
    cfg_a = gateway_config(
        tmp_path,
        "a",
        local="127.0.0.1",
        remote="127.0.0.2",
        local_id="branch1.example.net",
        remote_id="hq.example.net",
        ike_port=a_ike,
        natt_port=a_natt,
        remote_port=b_ike,
        start=True,
        conn_extra=a_extra,
    )
    cfg_b = gateway_config(
        tmp_path,
        "b",
        local="127.0.0.2",
        remote="127.0.0.1",
        local_id="hq.example.net",
        remote_id="branch1.example.net",
        ike_port=b_ike,
        natt_port=b_natt,
        remote_port=a_ike,
        conn_extra=b_extra,
    )
    return cfg_a, cfg_b


def test_rekey_and_reauth_over_hours_of_virtual_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """a rekeys its IKE SA every hour (minus up to 6 min of jitter); b reauthenticates
    every 3 h and, reauth_time being set, does not rekey (rekey_time defaults to 0)."""
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = _pair(tmp_path, 'rekey_time = "1h"\n', 'reauth_time = "3h"\n')
    assert cfg_b.connections["hq"].rekey_time == 0

    async def scenario() -> dict[str, Any]:
        clock = VirtualClock(asyncio.get_running_loop())
        rng = random.Random(7)
        a = Daemon(cfg_a, NoKernel("test"), _engine, ipv6=False, clock=clock, random=rng.randbytes)
        b = Daemon(cfg_b, NoKernel("test"), _engine, ipv6=False, clock=clock, random=rng.randbytes)
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
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
        a.request_stop()
        b.request_stop()
        assert await asyncio.wait_for(asyncio.gather(ta, tb), 5) == [0, 0]
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
