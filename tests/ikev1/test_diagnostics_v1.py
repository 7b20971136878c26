"""IKEv1: a Quick Mode refused as responder says why in one WARNING line, with what we
have (and the notify by name)."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import transfer

from .v1pair import make_pair


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(": ", 1)[1] for r in caplog.records if r.levelno == logging.WARNING
    ]


def test_esp_mismatch_says_what_we_have(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(b_kw={"esp": '"aes128-sha256"'})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    said = _warnings(caplog)
    assert (
        "refusing Quick Mode" in said[0]
        and "(NO_PROPOSAL_CHOSEN): no acceptable ESP proposal for net; we have aes128-sha256"
        in said[0]
    ), said
    assert any("peer sent error notify NO_PROPOSAL_CHOSEN" in w for w in said), said


def test_selector_mismatch_says_what_we_have(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(b_kw={"local_ts": '"10.9.0.0/24"'})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    said = _warnings(caplog)
    assert (
        "no child config matches the peer's 10.1.0.0/24 === 10.2.0.0/24;"
        " we have net: 10.1.0.0/24 === 10.9.0.0/24" in said[0]
    ), said


def test_main_mode_mismatch_says_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(b_kw={"proposals": '"aes128-sha256-modp2048"'})
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said[0] == (
        "no acceptable IKEv1 proposal from 192.0.2.1: the peer offered aes256-sha256-group15;"
        " gw has aes128-sha256-prfsha256-modp2048"
    ), said
    assert said[1].endswith("peer refused: notify NO_PROPOSAL_CHOSEN"), said
