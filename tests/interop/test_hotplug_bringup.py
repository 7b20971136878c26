"""Interface hot-plug brings connections up (issue 6, item 3): piked sees the kernel's
uevent for a link appearing in its namespace and, once the link's address is there,
restarts a connection that was stuck retransmitting into nothing, instead of waiting for
the next retransmission (the backoff grows to a minute)."""

from __future__ import annotations

import time

import pytest

from .conftest import MakePiked
from .lifecycle_tools import wait_for
from .netns import Lab
from .strongswan import Child, Connection, Secret

PSK = "pike-hotplug-psk-9Qw"


def _conn(local: str, remote: str, start_action: str) -> Connection:
    lan_l, lan_r = (
        ("10.1.0.0/24", "10.2.0.0/24") if local.endswith(".1") else ("10.2.0.0/24", "10.1.0.0/24")
    )
    return Connection(
        "hq",
        [local],
        [remote],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=local,
        remote_id=remote,
        children=[Child("lan", [lan_l], [lan_r], ("aes128gcm16",), start_action=start_action)],
    )


@pytest.mark.interop
def test_link_appearing_restarts_a_stuck_connection(lab: Lab, make_piked: MakePiked) -> None:
    left, right = lab.add_ns("l"), lab.add_ns("r")
    secret = Secret("hq", PSK, ["192.0.2.1", "192.0.2.2"])
    make_piked(right, "hq", _conn("192.0.2.2", "192.0.2.1", "none"), secret)
    branch = make_piked(left, "branch", _conn("192.0.2.1", "192.0.2.2", "start"), secret)
    # Let the first retransmission (4 s) go into nothing too; the next is 7.2 s after it.
    # Polled, not slept: on a loaded machine piked may start initiating seconds late.
    wait_for(
        "the first retransmission",
        lambda: "retransmit 1 of IKE_SA_INIT" in branch.log_text(),
        timeout=20.0,
    )
    sa = branch.ike_sa("hq")
    assert sa is not None and sa.state == "CONNECTING", sa
    t_link = time.monotonic()
    lab.link(left, right, "192.0.2.1/24", "192.0.2.2/24")
    branch.wait_established("hq", timeout=6.0)
    took = time.monotonic() - t_link
    print(f"IKE SA established {took:.2f} s after the link appeared")
    assert took < 4.0  # the backoff alone would have taken about 7 s
    log = branch.log_text()
    assert "interface v0-r appeared" in log
    assert "hq: interface v0-r appeared: restart" in log


@pytest.mark.interop
def test_pikectl_board_asks_the_daemon(lab: Lab, make_piked: MakePiked) -> None:
    import json

    from pike.board.detect import detect

    secret = Secret("hq", PSK, ["192.0.2.1", "192.0.2.2"])
    node = make_piked(lab.add_ns("b"), "branch", _conn("192.0.2.1", "192.0.2.2", "none"), secret)
    out = json.loads(node.pikectl("board", "--json").stdout)
    assert out["board"] == detect().profile.id
    assert out == node.control("board")
    assert f"board {detect().profile.id}" in node.log_text()
