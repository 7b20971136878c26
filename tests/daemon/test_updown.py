"""The updown hook of a route-based child (issue 14): a real script, run off the event loop
on child up and down (not on a rekey), with strongSwan's PLUTO_* environment and nothing
else; failures and hangs logged and counted."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from pike.daemon import tunnels
from pike.daemon.tunnels import Tunnels
from pike.policy.config import Config
from pike.policy.ipsec import SaSpec
from pike.policy.loader import load_config
from pike.sa.actions import DeleteChildSa, IkeRef, InstallChildSa
from pike.sa.child_sa import policies_for
from policy.test_loader import EXAMPLE, PSK, write

ME, PEER = ip_address("192.0.2.1"), ip_address("192.0.2.2")
LAN = 'local_ts = ["10.1.0.0/24"]\nremote_ts = ["10.2.0.0/24"]\n'
SCRIPT = """#!/bin/sh
env > "{out}/$PLUTO_VERB.$PLUTO_UNIQUEID"
{extra}
"""


def setup(tmp_path: Path, extra: str = "", keys: str = "") -> tuple[Config, Path]:
    script = tmp_path / "updown"
    script.write_text(SCRIPT.format(out=tmp_path, extra=extra))
    script.chmod(0o755)
    text = EXAMPLE.replace(
        LAN, LAN + f'updown = "{script}"\nif_id_in = 7\nif_id_out = 8\n' + keys, 1
    )
    return load_config(write(tmp_path, text)), script


def actions(config: Config, uid: int) -> tuple[InstallChildSa, DeleteChildSa]:
    lan = config.connections["hq"].child("lan")
    assert lan is not None

    def sa(src: object, dst: object, spi: int) -> SaSpec:
        return SaSpec(src, dst, spi, 0x70000001, "tunnel", 20, bytes(20), 128, 0, b"")  # type: ignore[arg-type]

    out, inb = sa(ME, PEER, 0xC0000000 + uid), sa(PEER, ME, 0xC1000000 + uid)
    pols = policies_for(lan.local_ts, lan.remote_ts, "tunnel", 0x70000001, ME, PEER, lan)
    return (
        InstallChildSa("hq", "lan", uid, inb, out, pols),
        DeleteChildSa("hq", "lan", uid, inb, out, pols),
    )


def env_of(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def run(t: Tunnels, *acts: object) -> None:
    async def go() -> None:
        for a in acts:
            t.observe(a)  # type: ignore[arg-type]
        await t.close(grace=10)

    asyncio.run(go())


def test_up_and_down_once_across_a_rekey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIKE_TEST_INHERITED", "must not reach the script")
    config, _ = setup(tmp_path)
    t = Tunnels(lambda: config)
    install1, delete1 = actions(config, 1)
    install2, delete2 = actions(config, 2)  # the rekeyed CHILD_SA
    run(t, install1, install2, delete1, delete2)
    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("up-", "down-")))
    assert ran == ["down-client.2", "up-client.1"]  # the rekey ran nothing
    up = env_of(tmp_path / "up-client.1")
    assert up["PLUTO_CONNECTION"] == "lan" and up["PLUTO_VERSION"] == "1.1"
    assert (up["PLUTO_ME"], up["PLUTO_PEER"]) == ("192.0.2.1", "192.0.2.2")
    assert (up["PLUTO_MY_ID"], up["PLUTO_PEER_ID"]) == ("branch1.example.net", "hq.example.net")
    assert up["PLUTO_MY_CLIENT"] == "10.1.0.0/24" and up["PLUTO_PEER_CLIENT"] == "10.2.0.0/24"
    assert up["PLUTO_MY_CLIENT_MASK"] == "255.255.255.0"
    assert (up["PLUTO_IF_ID_IN"], up["PLUTO_IF_ID_OUT"]) == ("7", "8")
    assert up["PLUTO_REQID"] == str(0x70000001) and up["PLUTO_PROTO"] == "esp"
    assert "PIKE_TEST_INHERITED" not in up and "PLUTO_MARK_IN" not in up
    # strongSwan's names and what sh adds itself, nothing inherited, no secret
    assert {k for k in up if not k.startswith("PLUTO_")} <= {"PATH", "PWD", "SHLVL", "_"}
    assert PSK not in (tmp_path / "up-client.1").read_text()
    assert t.updown_failures == 0


def test_marks_in_the_environment(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, keys='mark_in = "0x10/0xff"\n')
    run(Tunnels(lambda: config), actions(config, 3)[0])
    assert env_of(tmp_path / "up-client.3")["PLUTO_MARK_IN"] == "16/0x000000ff"


def test_failing_script_is_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, script = setup(tmp_path, extra="echo no route to add >&2; exit 3")
    t = Tunnels(lambda: config)
    with caplog.at_level(logging.ERROR, "pike.daemon"):
        run(t, actions(config, 4)[0])
    assert t.updown_failures == 1
    assert f"hq.lan: updown {script} up-client exited 3: no route to add" in caplog.text


def test_hanging_script_is_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tunnels, "UPDOWN_TIMEOUT", 0.3)
    config, _ = setup(tmp_path, extra="exec sleep 30")
    t = Tunnels(lambda: config)
    with caplog.at_level(logging.ERROR, "pike.daemon"):
        run(t, actions(config, 5)[0])
    assert t.updown_failures == 1 and "up-client: killed after 0s" in caplog.text


def test_missing_script_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, script = setup(tmp_path)
    os.unlink(script)
    t = Tunnels(lambda: config)
    with caplog.at_level(logging.ERROR, "pike.daemon"):
        run(t, actions(config, 6)[0])
    assert t.updown_failures == 1 and "cannot run" in caplog.text


def test_children_without_route_keys_are_left_alone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    t = Tunnels(lambda: config)
    run(t, actions(config, 7)[0])
    assert t._live == {}  # nothing tracked for a policy-based child
    assert json.dumps(sorted(os.listdir(tmp_path))) == '["pike.toml"]'


def test_ids_and_uniqueid_are_the_ike_sas(tmp_path: Path) -> None:
    """strongSwan's meaning: PLUTO_MY_ID/PLUTO_PEER_ID are the authenticated identities
    (a wildcard remote id matched a real one), PLUTO_UNIQUEID the IKE SA's unique id."""
    config, _ = setup(tmp_path)
    install, delete = actions(config, 8)
    ike = IkeRef(42, "branch1.example.net", "CN=hq-2.example.net, O=Example")
    run(Tunnels(lambda: config), replace(install, ike=ike), replace(delete, ike=ike))
    for verb in ("up-client", "down-client"):
        env = env_of(tmp_path / f"{verb}.42")
        assert env["PLUTO_UNIQUEID"] == "42"
        assert env["PLUTO_MY_ID"] == "branch1.example.net"
        assert env["PLUTO_PEER_ID"] == "CN=hq-2.example.net, O=Example"
