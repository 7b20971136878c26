"""Every child with start_action = "start" comes up, on one IKE SA (the first in IKE_AUTH,
the others by CREATE_CHILD_SA, as strongSwan does); a child asked for while the IKE SA is
still connecting is queued, not dropped; dpd_action = restart brings back every child the
dead peer's IKE SA carried. Two engines, fake clock."""

from __future__ import annotations

from .pair import Node, conf, installed, make_pair, transfer, until_restarted

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")


def child(name: str, local: str, remote: str, start: str) -> str:
    return f"""
[connections.gw.children.{name}]
local_ts = ["{local}"]
remote_ts = ["{remote}"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
"""


def pair(start: str = "start", extra_a: str = "") -> tuple[Node, Node]:
    a_text = conf(*A, start=start, extra_conn=extra_a)
    a_text += child("voice", "10.1.1.0/24", "10.2.1.0/24", start)
    a_text += child("mgmt", "10.1.2.0/24", "10.2.2.0/24", start)
    b_text = conf(*B, local_ts='"10.2.0.0/24"', remote_ts='"10.1.0.0/24"')
    b_text += child("voice", "10.2.1.0/24", "10.1.1.0/24", "none")
    b_text += child("mgmt", "10.2.2.0/24", "10.1.2.0/24", "none")
    return make_pair(a_text, b_text)


def test_every_start_child_comes_up_on_one_ike_sa() -> None:
    a, b = pair()
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == installed(b) == ["mgmt", "net", "voice"]


def test_child_asked_for_while_connecting_is_queued() -> None:
    a, b = pair(start="none")
    a.engine.initiate("gw", 0.0, "net")
    a.engine.initiate("gw", 0.0, "voice")  # the IKE SA is still connecting
    a.engine.initiate("gw", 0.0, "voice")  # asked twice: one CHILD_SA
    transfer(a, b)
    assert installed(a) == installed(b) == ["net", "voice"]


def test_dpd_restart_brings_back_every_child() -> None:
    fast = 'dpd_delay = "10s"\ndpd_action = "restart"'
    a, b = pair(extra_a=fast)
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == ["mgmt", "net", "voice"]
    # The peer reboots: a fresh engine with the same config, no SAs; nothing answers
    # until the old IKE SA is found dead and the restart's IKE_SA_INIT goes out.
    _, b2 = pair()
    now, pending = until_restarted(a)
    transfer(a, b2, now, in_flight=pending)
    assert installed(a) == installed(b2) == ["mgmt", "net", "voice"]
