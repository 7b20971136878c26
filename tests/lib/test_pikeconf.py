"""The config builder renders what pike's loader reads back, for either IKE version."""

from __future__ import annotations

import tomllib

import pytest

from lib.pikeconf import Child, Conn, PikeConf, Secret, psk_tunnel, rendered
from pike.policy.loader import load_config_text


@pytest.mark.parametrize("version", [1, 2], ids=["ikev1", "ikev2"])
def test_psk_tunnel_loads_as_that_version(version: int) -> None:
    conf = psk_tunnel(
        local="192.0.2.1",
        remote="192.0.2.2",
        local_id="branch.example.net",
        remote_id="hq.example.net",
        psk="test-only-psk",
        proposals=["aes256-sha256-modp3072"],
        esp_proposals=["aes256-sha256"],
        start_action="start",
        mode="tunnel",
        daemon={"control_socket": "/tmp/x.sock", "ike_port": 1500, "metrics_listen": None},
        conn={"dpd_delay": "30s", "dpd_action": "restart"},
        child={"rekey_time": "20m"},
    )
    cfg = load_config_text(conf.render(version))
    hq = cfg.connections["hq"]
    assert (hq.version, hq.local_addrs, hq.remote_addrs) == (
        version,
        ("192.0.2.1",),
        ("192.0.2.2",),
    )
    assert (hq.dpd_delay, hq.dpd_action) == (30, "restart")
    (lan,) = hq.children
    assert (lan.name, lan.start_action, lan.rekey_time) == ("lan", "start", 1200)
    assert [str(ts) for ts in lan.local_ts] == ["10.1.0.0/24"]
    assert (cfg.daemon.control_socket, cfg.daemon.ike_port) == ("/tmp/x.sock", 1500)
    assert cfg.daemon.metrics_listen == ""  # None leaves a key out
    assert cfg.psk_for("branch.example.net", "hq.example.net") == b"test-only-psk"
    # without a forced version the connection's own (here none: pike's default, 2)
    assert load_config_text(conf.render()).connections["hq"].version == 2


def test_values_keys_and_raw_lines_render_as_toml() -> None:
    conf = PikeConf(
        connections=[
            Conn(
                name="odd.name",
                local={"auth": "pubkey", "certs": ['a "quoted" path\\x'], "rsa_pss": True},
                remote={"auth": "psk"},
                extra={"keyingtries": 0},
                raw="fragmentation = false\n",
                children=[Child(name="c-1", local_ts=["10.1.0.0/24"], remote_ts=[], raw="x = 1")],
            )
        ],
        secrets=[Secret("any", "s")],
        tail="[more]\ny = 2\n",
    )
    data = tomllib.loads(conf.render())
    odd = data["connections"]["odd.name"]
    assert odd["local"] == {"auth": "pubkey", "certs": ['a "quoted" path\\x'], "rsa_pss": True}
    assert (odd["keyingtries"], odd["fragmentation"]) == (0, False)
    assert odd["children"]["c-1"] == {"local_ts": ["10.1.0.0/24"], "remote_ts": [], "x": 1}
    assert data["secrets"] == {"any": {"secret": "s"}}  # no ids: no id key
    assert data["more"] == {"y": 2}
    assert "daemon" not in data  # nothing set: no table


def test_rendered_keeps_the_builders_arguments() -> None:
    text = rendered(psk_tunnel)(
        local="a", remote="b", local_id="a", remote_id="b", psk="p", version=1
    )
    assert tomllib.loads(text)["connections"]["hq"]["version"] == 1
