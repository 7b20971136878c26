"""pike.sa.liveness: inbound ESP counts as the peer's sign of life for DPD, the same way
and with the same log line in IKEv1 and IKEv2, and an unanswered probe is counted alike
(one probe, its retries as retransmissions); in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import Node, kernel_reports, transfer
from pike.sa.actions import IkeSaDeleted

from .both import pair


def _up(version: int) -> Node:
    """Gateway a with its tunnel to b up (dpd_delay 30 s), a's actions drained; b answers
    nothing more."""
    a, b = pair(version, "dpd_delay = 30")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    a.drain()
    return a


@pytest.mark.parametrize("version", [1, 2])
def test_esp_postpones_the_probe_then_it_goes(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a = _up(version)
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
    a = _up(version)
    assert len(a.engine.esp_wanted(30.0)) == 1 and a.engine.esp_wanted(29.0) == []
    kernel_reports(a, 30.0, packets=5, last_use=1.0)  # grew since install (0): at 30 s
    a.engine.handle_timer(30.0)
    assert a.drain() == [] and a.engine.get_timer() == 60.0
    kernel_reports(a, 60.0, packets=5, last_use=1.0)  # no more since: still 30 s
    a.engine.handle_timer(60.0)
    assert len(a.drain()) == 1 and a.engine.ctx.counters.dpd_probes == 1


@pytest.mark.parametrize("version", [1, 2])
def test_a_dead_peer_costs_one_probe_and_its_retransmissions(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a = _up(version)
    sent = 0
    while a.engine.list_sas():  # b is gone: nothing a sends is answered
        t = a.engine.get_timer()
        assert t is not None and t < 1000
        a.engine.handle_timer(t)
        sent += sum(1 for x in a.drain() if type(x).__name__ == "SendDatagram")
    tries = a.engine.config.daemon.retransmit_tries
    c = a.engine.ctx.counters.conn("gw")
    assert (c.dpd_probes, c.retransmits, c.dpd_failures) == (1, tries, 1)
    assert sent == 1 + tries  # the probe and its retries, nothing after
    assert [d.reason for d in a.of(IkeSaDeleted)] == ["retransmit_timeout"]
    probes = [r.getMessage() for r in caplog.records if "sending DPD" in r.getMessage()]
    assert len(probes) == 1
