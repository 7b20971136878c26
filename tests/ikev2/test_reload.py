"""Reload: unchanged connections keep their SAs; changed, removed and new ones follow."""

from __future__ import annotations

from pike.policy.loader import load_config_text
from pike.sa.actions import DeleteChildSa, IkeSaDeleted

from .pair import conf, make_pair, transfer

A = ("192.0.2.1", "192.0.2.2", "branch.example.net", "hq.example.net")
OTHER = """
[connections.lab]
version = 2
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.9"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = "branch.example.net" }
remote = { auth = "psk", id = "lab.example.net" }

[connections.lab.children.net]
local_ts = ["10.1.5.0/24"]
remote_ts = ["10.9.0.0/24"]
esp_proposals = ["aes128gcm16"]
start_action = "start"

[secrets.lab]
id = ["branch.example.net", "lab.example.net"]
secret = "another-test-psk"
"""


def test_reload_adds_a_connection_without_touching_the_established_one() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    before = a.sa()
    # An unrelated edit: a comment line shifts every line number, and a new connection.
    text = "# edited\n" + conf(*A) + OTHER
    result = a.engine.reload(load_config_text(text), 10.0)
    assert result == {"unchanged": ["gw"], "changed": [], "removed": [], "added": ["lab"]}
    gw = [s for s in a.engine.list_sas() if s.name == "gw"]
    assert gw == [before]  # same SPIs, same children, same everything
    assert not [e for e in a.events if isinstance(e, DeleteChildSa)]
    sent = a.drain()
    assert len(sent) == 1 and sent[0].dst == ("192.0.2.9", 500)  # lab starts


def test_reload_with_a_changed_connection_rebuilds_it() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    text = conf(*A, esp='"aes256gcm16"')
    result = a.engine.reload(load_config_text(text), 10.0)
    assert result["changed"] == ["gw"]
    transfer(a, b, 10.0)
    assert a.engine.list_sas() == []  # start_action=none: it stays down
    assert [e.reason for e in a.events if isinstance(e, IkeSaDeleted)] == ["terminated"]


def test_reload_with_a_changed_psk_counts_as_changed() -> None:
    a, b = make_pair()
    a.engine.initiate("gw", 0.0)
    transfer(a, b)
    result = a.engine.reload(load_config_text(conf(*A, psk="rotated-psk-1")), 10.0)
    assert result["changed"] == ["gw"]
