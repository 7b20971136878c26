"""Route-based child keys (issue 14): if_id_in/if_id_out, mark_in/mark_out, interface,
updown; the policies they bind; errors naming file, key and line."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from pike.policy.config import ChildConfig
from pike.policy.loader import load_config
from pike.sa.child_sa import policies_for, trap_policies
from policy.test_loader import EXAMPLE, error_of, write

LAN = 'local_ts = ["10.1.0.0/24"]\nremote_ts = ["10.2.0.0/24"]\n'
FULL = 0xFFFFFFFF


def child_with(tmp_path: Path, keys: str, ts: str = LAN) -> ChildConfig:
    text = EXAMPLE.replace(LAN, ts + keys, 1)
    lan = load_config(write(tmp_path, text)).connections["hq"].child("lan")
    assert lan is not None
    return lan


def test_xfrm_interface_child_gets_catch_all_selectors(tmp_path: Path) -> None:
    lan = child_with(tmp_path, 'if_id_in = 7\nif_id_out = 7\ninterface = "ipsec0"\n', ts="")
    assert (lan.if_id_in, lan.if_id_out, lan.interface) == (7, 7, "ipsec0")
    assert [str(t) for t in lan.local_ts] == ["0.0.0.0/0", "::/0"]
    assert [str(t) for t in lan.remote_ts] == ["0.0.0.0/0", "::/0"]
    me, peer = ip_address("192.0.2.1"), ip_address("192.0.2.2")
    pols = policies_for(lan.local_ts, lan.remote_ts, "tunnel", 5, me, peer, lan)
    # one family pairs with itself only: v4 and v6, out/in/fwd each, all on if_id 7
    assert len(pols) == 6 and {p.if_id for p in pols} == {7}
    assert all(p.src_ts.start.version == p.dst_ts.start.version for p in pols)


def test_vti_marks_bind_in_and_out_policies(tmp_path: Path) -> None:
    lan = child_with(tmp_path, 'mark_in = 43\nmark_out = "0x2a"\ninterface = "vti0"\n')
    assert (lan.mark_in, lan.mark_out) == ((43, FULL), (42, FULL))
    assert [str(t) for t in lan.local_ts] == ["10.1.0.0/24"]  # given: kept
    pols = trap_policies(lan, 9, "192.0.2.1", "192.0.2.2")
    marks = {p.direction: p.mark for p in pols}
    assert marks == {"out": (42, FULL), "in": (43, FULL), "fwd": (43, FULL)}
    assert all(p.trap and p.if_id == 0 for p in pols)


def test_mark_with_mask_and_updown(tmp_path: Path) -> None:
    lan = child_with(tmp_path, 'mark_in = "0x100/0xff00"\nupdown = "/etc/pike/updown"\n')
    assert lan.mark_in == (0x100, 0xFF00) and lan.updown == "/etc/pike/updown"
    assert lan.interface == "" and [str(t) for t in lan.remote_ts] == ["10.2.0.0/24"]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ('interface = "ipsec0"\n', "F:15: connections.hq.children.lan.interface: needs"),
        (
            'interface = "ipsec0"\nif_id_in = 1\nif_id_out = 2\n',
            "F:17: connections.hq.children.lan.if_id_out: an XFRM interface has one if_id",
        ),
        (
            'interface = "x"\nif_id_in = 1\nif_id_out = 1\nmark_in = 3\nmark_out = 3\n',
            "F:15: connections.hq.children.lan.interface: takes if_id_in/if_id_out",
        ),
        (
            'interface = "vti0"\nmark_in = "4/0xff"\nmark_out = 4\n',
            "F:16: connections.hq.children.lan.mark_in: a VTI needs mark_in and mark_out",
        ),
        (
            'interface = "a very long name"\nif_id_in = 1\n',
            "F:15: connections.hq.children.lan.interface: 'a very long name' is not an",
        ),
        ('mark_out = "5/0x1"\n', "F:15: connections.hq.children.lan.mark_out: '5/0x1': value"),
        ('mark_out = "x"\n', "F:15: connections.hq.children.lan.mark_out: 'x' is not a mark"),
        ("if_id_in = -1\n", "F:15: connections.hq.children.lan.if_id_in:"),
        ('updown = "updown.sh"\n', "F:15: connections.hq.children.lan.updown: 'updown.sh' must"),
    ],
)
def test_route_key_errors(tmp_path: Path, keys: str, expected: str) -> None:
    assert error_of(tmp_path, EXAMPLE.replace(LAN, LAN + keys, 1)).startswith(expected)


README = (Path(__file__).parents[2] / "README.md").read_text()
SECRET = '\n[secrets.hq]\nid = ["branch1.example.net", "hq.example.net"]\nsecret = "x"\n'


def readme_toml(title: str) -> str:
    """The first ```toml block after the bold ``title`` in README.md."""
    after = README[README.index(f"**{title}.**") :]
    start = after.index("```toml\n") + len("```toml\n")
    return after[start : after.index("```", start)]


def test_readme_dual_wan_example_loads(tmp_path: Path) -> None:
    hq = load_config(write(tmp_path, readme_toml("Dual WAN / redundant hubs") + SECRET))
    conn = hq.connections["hq"]
    assert conn.remote_addrs == ("hub1.example.net", "hub2.example.net")
    assert conn.dpd_action == "restart" and hq.daemon.retransmit_span() == pytest.approx(4.75)


def test_readme_route_based_example_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, readme_toml("Route-based with BGP") + SECRET))
    net = cfg.connections["hq"].child("net")
    assert net is not None and net.interface == "vti0" and net.mark_out == (42, FULL)
    assert [str(t) for t in net.remote_ts] == ["0.0.0.0/0", "::/0"]


def test_connection_if_ids_are_every_childs_default(tmp_path: Path) -> None:
    """swanctl's connection-level if_id_in/if_id_out: children take them unless they
    set their own."""
    conn_keys = 'remote = { auth = "psk", id = "hq.example.net" }\nif_id_in = 7\nif_id_out = 8\n'
    text = EXAMPLE.replace('remote = { auth = "psk", id = "hq.example.net" }\n', conn_keys, 1)
    text += '\n[connections.hq.children.own]\nremote_ts = ["10.3.0.0/24"]\nif_id_in = 9\n'
    text += 'esp_proposals = ["aes128gcm16"]\n'
    hq = load_config(write(tmp_path, text)).connections["hq"]
    lan, own = hq.child("lan"), hq.child("own")
    assert lan is not None and own is not None
    assert (lan.if_id_in, lan.if_id_out) == (7, 8)
    assert (own.if_id_in, own.if_id_out) == (9, 8)
    me, peer = ip_address("192.0.2.1"), ip_address("192.0.2.2")
    pols = policies_for(lan.local_ts, lan.remote_ts, "tunnel", 5, me, peer, lan)
    assert {(p.direction, p.if_id) for p in pols} == {("out", 8), ("in", 7), ("fwd", 7)}
    bad = text.replace("if_id_in = 7\n", "if_id_in = -1\n")
    assert (
        error_of(tmp_path, bad) == "F:11: connections.hq.if_id_in: -1 is out of range 0..4294967295"
    )
