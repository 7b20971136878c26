"""Two piked processes in two network namespaces (veth 192.0.2.1/24 <-> 192.0.2.2/24), PSK.

``a`` initiates (start_action = start); ``pikectl list-sas --json`` on both must show the
IKE SA ESTABLISHED with the same SPIs. On a kernel without ESP (this development host)
the CHILD_SA is refused and ``pikectl status`` says ESP is missing; with ESP it is
INSTALLED. SIGTERM makes both exit 0 within 3 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.helpers import daemon_env, pikectl
from interop.netns import Lab

PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"

pytestmark = pytest.mark.interop


def _config(sock: Path, local: str, remote: str, local_id: str, remote_id: str, start: bool) -> str:
    return f"""
[daemon]
control_socket = "{sock}"
retransmit_timeout = "0.5s"

[connections.hq]
version = 2
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"]
local = {{ auth = "psk", id = "{local_id}" }}
remote = {{ auth = "psk", id = "{remote_id}" }}

[connections.hq.children.lan]
local_ts = ["{"10.1.0.0/24" if start else "10.2.0.0/24"}"]
remote_ts = ["{"10.2.0.0/24" if start else "10.1.0.0/24"}"]
esp_proposals = ["aes128gcm16", "aes256-sha256"]
mode = "tunnel"
start_action = "{"start" if start else "none"}"

[secrets.ike-hq]
id = ["{local_id}", "{remote_id}"]
secret = "{PSK}"
"""


def _wait_socket(sock: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert proc.poll() is None, f"piked exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no control socket:\n{log.read_text()}"
        time.sleep(0.05)


def _list_sas(sock: Path) -> list[dict[str, Any]]:
    out = pikectl(sock, "list-sas", "--json")
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def test_two_piked_establish(tmp_path: Path, run_prefix: str) -> None:
    with Lab.create(f"{run_prefix}pd-") as lab:
        ns_a, ns_b = lab.add_ns("a"), lab.add_ns("b")
        lab.link(ns_a, ns_b, "192.0.2.1/24", "192.0.2.2/24")
        socks, logs, procs = {}, {}, {}
        for name, ns, local, remote, lid, rid, start in (
            ("b", ns_b, "192.0.2.2", "192.0.2.1", "hq.example.net", "branch1.example.net", False),
            ("a", ns_a, "192.0.2.1", "192.0.2.2", "branch1.example.net", "hq.example.net", True),
        ):
            socks[name] = tmp_path / name / "pike.sock"
            cfg = tmp_path / f"{name}.toml"
            cfg.write_text(_config(socks[name], local, remote, lid, rid, start))
            logs[name] = tmp_path / f"{name}.log"
            with logs[name].open("wb") as logf:
                procs[name] = ns.popen(
                    [
                        sys.executable,
                        "-m",
                        "pike.cli.piked",
                        "--config",
                        str(cfg),
                        "--log-level",
                        "debug",
                    ],
                    stdout=logf,
                    env=daemon_env(),
                )
        # both start at once: b's control socket, then a's (a initiates once up; an
        # IKE_SA_INIT that reaches b before it listens is retransmitted after 0.5 s)
        for name in ("b", "a"):
            _wait_socket(socks[name], procs[name], logs[name])

        def dump() -> str:
            return "\n".join(f"--- {n}:\n{p.read_text()}" for n, p in logs.items())

        deadline = time.monotonic() + 20
        while True:
            sa_a, sa_b = _list_sas(socks["a"]), _list_sas(socks["b"])
            up = [s for s in (sa_a, sa_b) if s and s[0]["state"] == "ESTABLISHED"]
            if len(up) == 2:
                break
            assert time.monotonic() < deadline, f"not established: {sa_a} {sa_b}\n{dump()}"
            time.sleep(0.1)
        (ike_a,) = sa_a
        (ike_b,) = sa_b
        assert (ike_a["spi_i"], ike_a["spi_r"]) == (ike_b["spi_i"], ike_b["spi_r"])
        assert ike_a["initiator"] and not ike_b["initiator"]
        assert (ike_a["local_addr"], ike_a["remote_addr"]) == ("192.0.2.1", "192.0.2.2")
        assert (ike_a["local_id"], ike_a["remote_id"]) == ("branch1.example.net", "hq.example.net")

        status = pikectl(socks["a"], "status", "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        text = pikectl(socks["a"], "list-sas")
        assert text.returncode == 0 and text.stdout.startswith("hq: #"), text
        if st["kernel"]["esp"]:
            # the CHILD_SA rides on IKE_AUTH: installed on both sides within moments
            deadline = time.monotonic() + 5
            while True:
                states = [
                    [c["state"] for c in ike["children"]]
                    for ike in (_list_sas(socks["a"])[0], _list_sas(socks["b"])[0])
                ]
                if states == [["INSTALLED"], ["INSTALLED"]]:
                    break
                assert time.monotonic() < deadline, f"{states}\n{dump()}"
                time.sleep(0.1)
        else:
            assert st["kernel"]["missing"], st
            assert "ESP missing" in pikectl(socks["a"], "status").stdout
            for ike in (_list_sas(socks["a"])[0], _list_sas(socks["b"])[0]):
                assert all(c["state"] != "INSTALLED" for c in ike["children"]), dump()
            assert "CHILD_SAs cannot be installed" in logs["a"].read_text()

        t0 = time.monotonic()
        for p in procs.values():
            os.kill(p.pid, signal.SIGTERM)
        codes = [p.wait(timeout=5) for p in procs.values()]
        assert codes == [0, 0], dump()
        assert time.monotonic() - t0 < 3, dump()
        assert PSK not in dump()
        if os.environ.get("PIKE_TEST_SHOW_LOGS"):
            print(dump())
