"""pike.sa.liveness: inbound ESP counts as the peer's sign of life for DPD, the same way
and with the same log line in IKEv1 and IKEv2, in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import transfer

from .both import pair


@pytest.mark.parametrize("version", [1, 2])
def test_esp_postpones_the_probe_then_it_goes(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version, "dpd_delay = 30")
    last_esp = {"t": 0.0}
    a.engine.ctx.esp_activity = lambda spec: last_esp["t"]
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.drain()
    last_esp["t"] = 40.0  # a kernel clock ahead of ours: taken as now, no later
    a.engine.handle_timer(30.0)
    assert a.drain() == [] and a.engine.get_timer() == 60.0
    last_esp["t"] = 45.0  # traffic arrived at 45 s
    a.engine.handle_timer(60.0)
    assert a.drain() == [] and a.engine.get_timer() == 75.0
    assert not [r for r in caplog.records if "sending DPD" in r.getMessage()]
    a.engine.handle_timer(75.0)  # silence since 45 s: now a probe
    assert len(a.drain()) == 1 and a.engine.ctx.counters.dpd_probes == 1
    probes = [r.getMessage() for r in caplog.records if "sending DPD" in r.getMessage()]
    assert len(probes) == 1 and probes[0].endswith(": no traffic for 30s, sending DPD")
