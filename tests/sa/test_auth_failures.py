"""An authentication piked refuses as responder is reported like the initiator's
(``IkeSaDeleted`` with reason ``auth_failed``, so pike_ike_auth_failures_total counts it),
both versions in memory. IKEv2 at once (AUTHENTICATION_FAILED ends the SA); IKEv1 when the
half-open SA times out (30 s): a phase-1 message that does not decrypt or authenticate
does not end the exchange, since a garbled or forged one must not."""

from __future__ import annotations

import pytest

from ikev2.pair import Node, conf, transfer
from ikev2.pair import engine as v2engine
from pike.metrics.recorder import reason_label
from pike.sa.actions import IkeSaDeleted

from .both import B_TS, A, B, pair


@pytest.mark.parametrize("version", [1, 2])
def test_a_wrong_psk_is_reported_by_the_responder(version: int) -> None:
    a, b = pair(version, b_psk="not-the-same-psk")
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    while b.engine.list_sas():
        t = b.engine.get_timer()
        assert t is not None and t <= 30.0
        b.engine.handle_timer(t)
    b.drain()
    refused = [(d.conn, reason_label(d.reason)) for d in b.of(IkeSaDeleted)]
    assert refused == [("gw", "auth_failed")]


@pytest.mark.parametrize("version", [1, 2])
def test_a_peer_that_gives_up_is_not_an_auth_failure(version: int) -> None:
    """Only a refused authentication counts: a peer that stops after IKE_SA_INIT (MM1)
    leaves a half-open SA that times out quietly."""
    a, b = pair(version)
    a.engine.initiate("gw", 0.0, "net")
    b.engine.receive_datagram(a.drain()[0].data, (A, 500), (B, 500), 0.0)
    while b.engine.list_sas():
        t = b.engine.get_timer()
        assert t is not None and t <= 30.0
        b.engine.handle_timer(t)
    b.drain()
    assert b.of(IkeSaDeleted) == []


def test_a_wrong_remote_id_reads_as_such(caplog: pytest.LogCaptureFixture) -> None:
    """IKEv2: the responder names the identity it got and the one it wants."""
    a = Node(v2engine(conf(A, B, "wrong.example.net", "hq.example.net"), 1))
    b = Node(v2engine(conf(B, A, "hq.example.net", "branch.example.net", **B_TS), 2))
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    lines = [r.getMessage() for r in caplog.records if "authentication of" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].endswith(
        "authentication of 'wrong.example.net' failed: peer identity 'wrong.example.net'"
        " is not 'branch.example.net' (gw)"
    )
