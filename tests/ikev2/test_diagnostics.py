"""A negotiation that fails says, in one WARNING line, what the peer offered and what we
have (strongSwan prints both; an engineer fixes one side from that line)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
B_TS: dict[str, Any] = {"local_ts": '"10.2.0.0/24"', "remote_ts": '"10.1.0.0/24"'}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().split(": ", 1)[1] for r in caplog.records if r.levelno == logging.WARNING
    ]


def test_ike_proposal_mismatch_names_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(conf(*A), conf(*B, proposals='"aes256gcm16-prfsha384-ecp384"', **B_TS))
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert _warnings(caplog) == [
        "no acceptable IKE proposal: the peer offered aes128gcm16-prfsha256-x25519;"
        " gw has aes256gcm16-prfsha384-ecp384",
        "the peer accepts none of our IKE proposals (NO_PROPOSAL_CHOSEN);"
        " we offered aes128gcm16-prfsha256-x25519",
    ]


def test_esp_proposal_mismatch_names_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(conf(*A), conf(*B, esp='"aes256gcm16"', **B_TS))
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert _warnings(caplog) == [
        "no acceptable ESP proposal for net: the peer offered aes128gcm16-noesn;"
        " we have aes256gcm16-noesn",
        "the peer refused CHILD_SA net (NO_PROPOSAL_CHOSEN); we asked for local_ts"
        " 10.1.0.0/24, remote_ts 10.2.0.0/24, ESP aes128gcm16-noesn",
    ]


def test_traffic_selector_mismatch_names_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_pair(conf(*A), conf(*B, local_ts='"10.9.0.0/24"', remote_ts='"10.1.0.0/24"'))
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b)
    assert _warnings(caplog) == [
        "no child config matches the peer's traffic selectors TSi 10.1.0.0/24 TSr 10.2.0.0/24;"
        " we have net: local_ts 10.9.0.0/24, remote_ts 10.1.0.0/24",
        "the peer refused CHILD_SA net (TS_UNACCEPTABLE); we asked for local_ts 10.1.0.0/24,"
        " remote_ts 10.2.0.0/24, ESP aes128gcm16-noesn",
    ]
