"""Reload, list-conns and the metrics endpoint in-process (no root): two daemons over
loopback with ``NoKernel``, as tests/daemon does; tests/ops/test_ops_netns.py is the same
with real processes, Prometheus and tshark."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from daemon.helpers import PSK, free_udp_ports
from lib.pikeconf import Conn, Secret, psk_tunnel
from pike.cli.piked import _engine
from pike.daemon.control import request
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon
from pike.policy.loader import load_config


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(
    d: Path, me: str, peer: str, ports: tuple[int, int, int], metrics: str, start: bool
) -> str:
    ike, natt, peer_ike = ports
    lid, rid = ("a.example", "b.example") if start else ("b.example", "a.example")
    hq = psk_tunnel(
        local=me,
        remote=peer,
        local_id=lid,
        remote_id=rid,
        psk=PSK,
        remote_port=peer_ike,
        start_action="start" if start else "none",
        daemon={
            "control_socket": str(d / "pike.sock"),
            "ike_port": ike,
            "natt_port": natt,
            "metrics_listen": metrics,
        },
    )
    spare = Conn(
        name="spare",
        local_addrs=[me],
        remote_addrs=["127.0.0.9"],
        proposals=["aes128gcm16-prfsha256-x25519"],
        local={"auth": "psk", "id": lid},
        remote={"auth": "psk", "id": "c.example"},
    )
    return replace(hq, connections=[*hq.connections, spare], secrets=[Secret("s", PSK)]).render()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_reload_list_conns_and_metrics_over_loopback(tmp_path: Path) -> None:
    a_ike, a_natt, b_ike, b_natt = free_udp_ports(4)
    port = _free_tcp_port()
    da, db = tmp_path / "a", tmp_path / "b"
    da.mkdir()
    db.mkdir()
    text_a = _text(da, "127.0.0.1", "127.0.0.2", (a_ike, a_natt, b_ike), f"127.0.0.1:{port}", True)
    (da / "pike.toml").write_text(text_a)
    (db / "pike.toml").write_text(
        _text(db, "127.0.0.2", "127.0.0.1", (b_ike, b_natt, a_ike), "", False)
    )
    a = Daemon(load_config(str(da / "pike.toml")), NoKernel("test"), _engine, ipv6=False)
    b = Daemon(load_config(str(db / "pike.toml")), NoKernel("test"), _engine, ipv6=False)
    sock = str(da / "pike.sock")

    async def ask(cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, request, sock, cmd, args)

    async def get(path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{port}{path}"
        return await asyncio.get_running_loop().run_in_executor(None, _get, url)

    async def scenario() -> None:
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
        for _ in range(100):
            sas = (await ask("list-sas"))["result"]
            if sas and sas[0]["state"] == "ESTABLISHED":
                break
            await asyncio.sleep(0.05)
        (ike,) = sas
        assert ike["last_inbound_ago_s"] is not None and ike["dpd_outstanding"] is False
        # swanctl's "rekeying in": strongSwan's 4 h IKE rekey_time less up to 10 % jitter
        assert 14400 * 0.9 - 5 <= ike["rekey_in_s"] <= 14400, ike
        assert abs(ike["rekey_at"] - (time.time() + ike["rekey_in_s"])) < 5, ike
        # Both sides offer the same selectors (no mirror): the peer refuses the child, and
        # list-sas says so rather than hide it.
        for _ in range(100):
            (ike,) = (await ask("list-sas", {"conn": "hq"}))["result"]
            if ike["failed_children"]:
                break
            await asyncio.sleep(0.05)
        assert [(f["name"], f["reason"]) for f in ike["failed_children"]] == [
            ("lan", "peer refused CHILD_SA with notify TS_UNACCEPTABLE")
        ], ike
        unknown = await ask("list-sas", {"conn": "hqq"})
        assert unknown == {"ok": False, "error": "no connection named 'hqq'"}
        status, body = await get("/metrics")
        assert status == 200
        assert 'pike_ike_sa_up{connection="hq"} 1.0' in body
        assert 'pike_ike_sa_up{connection="spare"} 0.0' in body
        assert 'pike_connection_expected_up{connection="hq"} 1.0' in body
        assert 'pike_connection_expected_up{connection="spare"} 0.0' in body
        assert "\nprocess_cpu_seconds_total " in body and "\nprocess_open_fds " in body
        assert (
            'pike_ike_messages_total{connection="hq",direction="out",exchange="IKE_AUTH"} 1.0'
            in body
        )
        assert (
            'pike_child_sa_failures_total{child="lan",connection="hq",reason="TS_UNACCEPTABLE"}'
            in body
        )
        assert (await get("/nope"))[0] == 404

        conns = (await ask("list-conns"))["result"]
        assert [c["name"] for c in conns] == ["hq", "spare"]
        assert conns[0]["ike_sas"] == {"ESTABLISHED": 1}

        (da / "pike.toml").write_text(text_a + "\n[connections.hq.oops]\n")
        bad = await ask("reload")
        assert not bad["ok"] and "pike.toml" in bad["error"], bad
        (da / "pike.toml").write_text(text_a.replace("127.0.0.9", "127.0.0.10"))
        ok = await ask("reload")
        assert ok["ok"], ok
        r = ok["result"]
        assert (r["unchanged"], r["changed"], r["removed"], r["added"]) == (
            ["hq"],
            ["spare"],
            [],
            [],
        )
        assert r["restart_needed"] == []
        (after,) = (await ask("list-sas"))["result"]
        assert (after["spi_i"], after["spi_r"], after["unique_id"]) == (
            ike["spi_i"],
            ike["spi_r"],
            ike["unique_id"],
        )
        _, body = await get("/metrics")
        assert 'pike_config_reloads_total{result="success"} 1.0' in body
        assert 'pike_config_reloads_total{result="failure"} 1.0' in body
        a.request_stop()
        b.request_stop()
        assert await asyncio.wait_for(asyncio.gather(ta, tb), 5) == [0, 0]

    asyncio.run(scenario())


def test_auth_failures_are_counted(tmp_path: Path) -> None:
    """A wrong PSK: the initiator that was refused and the responder that refused it both
    count it in pike_ike_auth_failures_total."""
    a_ike, a_natt, b_ike, b_natt = free_udp_ports(4)
    port_a, port_b = _free_tcp_port(), _free_tcp_port()
    da, db = tmp_path / "a", tmp_path / "b"
    da.mkdir()
    db.mkdir()
    (da / "pike.toml").write_text(
        _text(da, "127.0.0.1", "127.0.0.2", (a_ike, a_natt, b_ike), f"127.0.0.1:{port_a}", True)
    )
    b_ports = (b_ike, b_natt, a_ike)
    wrong = _text(db, "127.0.0.2", "127.0.0.1", b_ports, f"127.0.0.1:{port_b}", False)
    (db / "pike.toml").write_text(wrong.replace(PSK, "not-the-same-psk"))
    a = Daemon(load_config(str(da / "pike.toml")), NoKernel("test"), _engine, ipv6=False)
    b = Daemon(load_config(str(db / "pike.toml")), NoKernel("test"), _engine, ipv6=False)

    async def metric(port: int, name: str) -> float:
        url = f"http://127.0.0.1:{port}/metrics"
        _, body = await asyncio.get_running_loop().run_in_executor(None, _get, url)
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    async def scenario() -> tuple[float, float]:
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
        name = 'pike_ike_auth_failures_total{connection="hq"}'
        for _ in range(100):
            if await metric(port_a, name) >= 1 and await metric(port_b, name) >= 1:
                break
            await asyncio.sleep(0.05)
        counts = await metric(port_a, name), await metric(port_b, name)
        a.request_stop()
        b.request_stop()
        await asyncio.wait_for(asyncio.gather(ta, tb), 5)
        return counts

    initiator, responder = asyncio.run(scenario())
    assert initiator == 1.0
    assert responder == 1.0
