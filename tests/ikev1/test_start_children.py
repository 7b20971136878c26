"""IKEv1: every child with start_action = "start" comes up (one Quick Mode each, after
Main Mode), and dpd_action = restart brings back every child the dead peer carried.
Two engines, fake clock."""

from __future__ import annotations

from ikev2.pair import Node, installed, transfer, until_restarted

from .v1pair import A, B, engine, v1conf

VOICE_A = """
[connections.gw.children.voice]
local_ts = ["10.1.1.0/24"]
remote_ts = ["10.2.1.0/24"]
esp_proposals = ["aes256-sha256"]
start_action = "{start}"
"""
VOICE_B = VOICE_A.replace("10.1.1.0", "10.9.9.9").replace("10.2.1.0", "10.1.1.0")
VOICE_B = VOICE_B.replace("10.9.9.9", "10.2.1.0")


def pair(extra_a: str = "") -> tuple[Node, Node]:
    a = v1conf(A, B, start="start", extra_conn=extra_a) + VOICE_A.format(start="start")
    b = v1conf(B, A, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    # Node is typed for the IKEv2 engine; the IKEv1 one has the same calls
    return Node(engine(a, 1)), Node(engine(b + VOICE_B.format(start="none"), 2))  # type: ignore[arg-type]


def test_every_start_child_comes_up() -> None:
    a, b = pair()
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == installed(b) == ["net", "voice"]


def test_dpd_restart_brings_back_every_child() -> None:
    a, b = pair('dpd_delay = "10s"\ndpd_action = "restart"')
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == ["net", "voice"]
    _, b2 = pair()  # the peer rebooted: same config, no SAs
    now, pending = until_restarted(a)  # nothing answers until the old SA is found dead
    transfer(a, b2, now, in_flight=pending)
    assert installed(a) == installed(b2) == ["net", "voice"]
