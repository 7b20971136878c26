"""pike.sa.restarts: dpd_action = restart and keyingtries, one rule and one wording for
IKEv1 and IKEv2, in memory."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import transfer

from .both import pair

VERSIONS = pytest.mark.parametrize("version", [1, 2])


def _said(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    """The log lines that mention ``what``, without their SA tags."""
    return [r.getMessage().split(": ", 1)[1] for r in caplog.records if what in r.getMessage()]


@VERSIONS
def test_keyingtries_are_counted_and_logged_alike(
    version: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, _ = pair(version, "keyingtries = 3")
    a.engine.initiate("gw", 0.0, "net")
    while (t := a.engine.get_timer()) is not None:
        assert t < 2000
        a.engine.handle_timer(t)
    assert a.engine.list_sas() == []
    assert _said(caplog, "peer not responding") == [
        "peer not responding, keyingtries: attempt 2 of 3",
        "peer not responding, keyingtries: attempt 3 of 3",
        "peer not responding, giving up after 3 attempt(s) (keyingtries = 3)",
    ]


@VERSIONS
def test_dpd_restart_by_the_responder_too(version: int, caplog: pytest.LogCaptureFixture) -> None:
    """The initiator a goes away; the responder b finds it dead and, with
    dpd_action = restart, initiates again itself (IKEv1 used to leave that to the side
    that had initiated)."""
    caplog.set_level(logging.INFO)
    a, b = pair(version, 'dpd_delay = 10\ndpd_action = "restart"')
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    (old,) = b.engine.list_sas()
    assert not old.initiator and old.state == "ESTABLISHED"
    while (t := b.engine.get_timer()) is not None and b.engine.list_sas()[0].spi_i == old.spi_i:
        assert t < 500
        b.engine.handle_timer(t)  # a never answers
    (new,) = b.engine.list_sas()
    assert new.initiator and new.state == "CONNECTING"
    assert _said(caplog, "dpd_action=restart") == [
        "peer is dead, dpd_action=restart: initiating again"
    ]


@VERSIONS
def test_a_peer_found_dead_is_counted_once(version: int) -> None:
    a, b = pair(version, "dpd_delay = 10")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    while a.engine.list_sas():  # b never answers again
        t = a.engine.get_timer()
        assert t is not None and t < 500
        a.engine.handle_timer(t)
    counters = a.engine.ctx.counters.conn("gw")
    # (IKEv1 counts every R-U-THERE as a probe, IKEv2 one probe and its retransmits)
    assert counters.dpd_failures == 1 and counters.dpd_probes >= 1


@VERSIONS
def test_a_start_connection_keeps_trying_after_a_refusal(version: int) -> None:
    """start_action = start makes keyingtries 0 by default (pike's choice, not
    strongSwan's): a refused attempt starts again after the backoff (10 s, then 20 s),
    on both versions; terminate ends the retries."""
    a, b = pair(version, a_start="start", b_proposals='"aes256-sha384-ecp384"')
    assert a.engine.config.connections["gw"].keyingtries == 0
    a.engine.start(0.0)
    transfer(a, b, 0.0)  # <-- NO_PROPOSAL_CHOSEN
    assert a.engine.list_sas() == [] and a.engine.get_timer() == 10.0
    a.engine.handle_timer(10.0)
    transfer(a, b, 10.0)
    assert a.engine.list_sas() == [] and a.engine.get_timer() == 30.0
    a.engine.terminate("gw", 20.0)
    assert a.engine.get_timer() is None


@VERSIONS
def test_without_start_one_refusal_is_final(version: int) -> None:
    a, b = pair(version, b_proposals='"aes256-sha384-ecp384"')
    assert a.engine.config.connections["gw"].keyingtries == 1
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    assert a.engine.list_sas() == [] and a.engine.get_timer() is None
