"""Every child with start_action = "start" comes up: IKEv2 on one IKE SA (the first in
IKE_AUTH, the others by CREATE_CHILD_SA, as strongSwan does), IKEv1 with one Quick Mode
each after Main Mode; dpd_action = restart brings back every child the dead peer carried
(parametrized ``ikev1`` / ``ikev2``). IKEv2: a child asked for while the IKE SA is still
connecting is queued, not dropped. Two engines, fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ikev1.v1pair import engine as v1_engine
from ikev1.v1pair import v1psk_conf
from lib.pikeconf import Child, PikeConf

from .pair import Node, installed, make_pair, psk_conf, transfer, until_restarted

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
B = ("192.0.2.2", "192.0.2.1", "hq.example.net", "branch.example.net")
# IKE version -> the children beside ``net`` (name, branch side's LAN, hq side's LAN)
EXTRA = {
    1: (("voice", "10.1.1.0/24", "10.2.1.0/24"),),
    2: (("voice", "10.1.1.0/24", "10.2.1.0/24"), ("mgmt", "10.1.2.0/24", "10.2.2.0/24")),
}
CHILD_ESP = {1: "aes256-sha256", 2: "aes128gcm16"}
VERSIONS = pytest.mark.parametrize("version", [1, 2], ids=["ikev1", "ikev2"])


def _with_children(conf: PikeConf, version: int, start: str, hq: bool) -> str:
    (conn,) = conf.connections
    kids = [
        Child(
            name=name,
            local_ts=[theirs if hq else ours],
            remote_ts=[ours if hq else theirs],
            esp_proposals=[CHILD_ESP[version]],
            start_action=start,
        )
        for name, ours, theirs in EXTRA[version]
    ]
    return replace(conf, connections=[replace(conn, children=[*conn.children, *kids])]).render()


def pair(version: int = 2, start: str = "start", extra_a: str = "") -> tuple[Node, Node]:
    hq_lan, branch_lan = '"10.2.0.0/24"', '"10.1.0.0/24"'
    if version == 1:  # IKEv1 defaults: the addresses as ids, MODP/CBC proposals
        a_conf = v1psk_conf(A[0], A[1], start=start, extra_conn=extra_a)
        b_conf = v1psk_conf(B[0], B[1], local_ts=hq_lan, remote_ts=branch_lan)
    else:
        a_conf = psk_conf(*A, start=start, extra_conn=extra_a)
        b_conf = psk_conf(*B, local_ts=hq_lan, remote_ts=branch_lan)
    a_text = _with_children(a_conf, version, start, hq=False)
    b_text = _with_children(b_conf, version, "none", hq=True)
    if version == 1:
        # Node is typed for the IKEv2 engine; the IKEv1 one has the same calls
        return Node(v1_engine(a_text, 1)), Node(v1_engine(b_text, 2))  # type: ignore[arg-type]
    return make_pair(a_text, b_text)


def _all(version: int) -> list[str]:
    return sorted(["net", *(name for name, _, _ in EXTRA[version])])


@VERSIONS
def test_every_start_child_comes_up(version: int) -> None:
    a, b = pair(version)
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == installed(b) == _all(version)


def test_child_asked_for_while_connecting_is_queued() -> None:
    a, b = pair(start="none")
    a.engine.initiate("gw", 0.0, "net")
    a.engine.initiate("gw", 0.0, "voice")  # the IKE SA is still connecting
    a.engine.initiate("gw", 0.0, "voice")  # asked twice: one CHILD_SA
    transfer(a, b)
    assert installed(a) == installed(b) == ["net", "voice"]


@VERSIONS
def test_dpd_restart_brings_back_every_child(version: int) -> None:
    fast = 'dpd_delay = "10s"\ndpd_action = "restart"'
    a, b = pair(version, extra_a=fast)
    a.engine.start(0.0)
    transfer(a, b)
    assert installed(a) == _all(version)
    # The peer reboots: a fresh engine with the same config, no SAs; nothing answers
    # until the old IKE SA is found dead and the restart's IKE_SA_INIT goes out.
    _, b2 = pair(version)
    now, pending = until_restarted(a)
    transfer(a, b2, now, in_flight=pending)
    assert installed(a) == installed(b2) == _all(version)
