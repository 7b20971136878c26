"""pike.sa.liveness: inbound ESP counts as the peer's sign of life for DPD, the same way
and with the same log line in IKEv1 and IKEv2, in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import kernel_reports, transfer

from .both import pair


@pytest.mark.parametrize("version", [1, 2])
def test_esp_postpones_the_probe_then_it_goes(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = pair(version, "dpd_delay = 30")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.drain()
    kernel_reports(a, 30.0, last_use=40.0)  # a kernel clock ahead of ours: now, no later
    a.engine.handle_timer(30.0)
    assert a.drain() == [] and a.engine.get_timer() == 60.0
    kernel_reports(a, 60.0, last_use=45.0)  # traffic arrived at 45 s
    a.engine.handle_timer(60.0)
    assert a.drain() == [] and a.engine.get_timer() == 75.0
    assert not [r for r in caplog.records if "sending DPD" in r.getMessage()]
    kernel_reports(a, 75.0, last_use=45.0)
    a.engine.handle_timer(75.0)  # silence since 45 s: now a probe
    assert len(a.drain()) == 1 and a.engine.ctx.counters.dpd_probes == 1
    probes = [r.getMessage() for r in caplog.records if "sending DPD" in r.getMessage()]
    assert len(probes) == 1 and probes[0].endswith(": no traffic for 30s, sending DPD")


@pytest.mark.parametrize("version", [1, 2])
def test_a_growing_packet_counter_is_traffic_now(version: int) -> None:
    """Linux keeps an inbound SA's first use as its last use; the packet counter growing
    between two reports is what says ESP arrived (at the report that saw it grow)."""
    a, b = pair(version, "dpd_delay = 30")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.drain()
    assert len(a.engine.esp_wanted(30.0)) == 1 and a.engine.esp_wanted(29.0) == []
    kernel_reports(a, 30.0, packets=5, last_use=1.0)  # grew since install (0): at 30 s
    a.engine.handle_timer(30.0)
    assert a.drain() == [] and a.engine.get_timer() == 60.0
    kernel_reports(a, 60.0, packets=5, last_use=1.0)  # no more since: still 30 s
    a.engine.handle_timer(60.0)
    assert len(a.drain()) == 1 and a.engine.ctx.counters.dpd_probes == 1
