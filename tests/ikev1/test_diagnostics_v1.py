"""IKEv1: every refusal says why in one WARNING line, on both sides: the responder names
what it has, the initiator what it asked for (selectors, ESP proposals; phase-1 proposals
and mode), the notify by name, and groups as IKEv2 and strongSwan name them
(``modp3072``, never ``group15``)."""

from __future__ import annotations

import logging

import pytest

from ikev2.pair import Node, transfer

from .v1pair import make_pair


def _attempt(
    a_kw: dict[str, str] | None = None, b_kw: dict[str, str] | None = None
) -> tuple[Node, Node]:
    """a initiates ``net`` to b once (configs changed by ``a_kw``/``b_kw``), all delivered."""
    a, b = make_pair(a_kw, b_kw)
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    return a, b


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines logged."""
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines logged, without their SA tag."""
    return [m.split(": ", 1)[1] for m in _said(caplog)]


def test_esp_mismatch_says_what_we_have(caplog: pytest.LogCaptureFixture) -> None:
    _attempt(b_kw={"esp": '"aes128-sha256"'})
    said = _warnings(caplog)
    assert (
        "refusing Quick Mode" in said[0]
        and "(NO_PROPOSAL_CHOSEN): no acceptable ESP proposal for net; we have aes128-sha256"
        in said[0]
    ), said
    refused = [w for w in said if "peer sent error notify NO_PROPOSAL_CHOSEN" in w]
    assert refused == [
        "peer sent error notify NO_PROPOSAL_CHOSEN; we asked for net: local_ts 10.1.0.0/24,"
        " remote_ts 10.2.0.0/24, ESP aes256-sha256-noesn"
    ], said


def test_selector_mismatch_says_what_we_have(caplog: pytest.LogCaptureFixture) -> None:
    _attempt(b_kw={"local_ts": '"10.9.0.0/24"'})
    said = _warnings(caplog)
    assert (
        "no child config matches the peer's 10.1.0.0/24 === 10.2.0.0/24;"
        " we have net: 10.1.0.0/24 === 10.9.0.0/24" in said[0]
    ), said
    assert "; we asked for net: local_ts 10.1.0.0/24, remote_ts 10.2.0.0/24" in said[1], said


def test_main_mode_mismatch_says_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    _attempt(b_kw={"proposals": '"aes128-sha256-modp2048"'})
    said = _said(caplog)
    assert said[0] == (
        "no acceptable IKEv1 proposal from 192.0.2.1: the peer offered"
        " aes256-sha256-prfsha256-modp3072; gw has aes128-sha256-prfsha256-modp2048"
    ), said
    assert said[1].endswith(
        "peer refused: notify NO_PROPOSAL_CHOSEN; we offered aes256-sha256-prfsha256-modp3072"
        " in Main Mode (auth psk)"
    ), said


def test_aggressive_mode_refusal_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A responder without ``aggressive = true`` says so, and the initiator what it offered."""
    _attempt(a_kw={"extra_conn": "aggressive = true"})
    said = _said(caplog)
    assert said[0] == (
        "refusing Aggressive Mode from 192.0.2.1 (id 192.0.2.1, sending AUTHENTICATION_FAILED):"
        " gw has aggressive = false; the peer should use Main Mode (or set aggressive = true,"
        " which exposes a PSK-keyed hash to offline guessing)"
    ), said
    assert said[1].endswith(
        "peer refused: notify AUTHENTICATION_FAILED; we offered"
        " aes256-sha256-prfsha256-modp3072 in Aggressive Mode as 192.0.2.1 (auth psk)"
    ), said


def test_list_sas_names_the_group_as_ikev2_does() -> None:
    a, b = _attempt()
    for node in (a, b):
        (sa,) = node.engine.list_sas()
        assert sa.algorithms == "aes256-sha256-prfsha256-modp3072"
