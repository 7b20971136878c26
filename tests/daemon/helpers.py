"""Config and port helpers for runtime tests (real engine, loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from pike.policy.config import Config
from pike.policy.loader import load_config

PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"


def daemon_env() -> dict[str, str]:
    """This environment without systemd's variables: piked started by a test is not
    under systemd, whatever the test runner's environment says."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
    return {k: v for k, v in os.environ.items() if k not in drop}


def pikectl(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pikectl --socket SOCK ARGS...`` as a user runs it (output captured, not checked)."""
    return subprocess.run(
        [sys.executable, "-m", "pike.cli.pikectl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=15,
        env=daemon_env(),
    )


def free_udp_ports(n: int) -> list[int]:
    """``n`` UDP ports free on loopback right now (bind to 0, read, release)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def gateway_config(
    tmp_path: Path,
    name: str,
    *,
    local: str,
    remote: str,
    local_id: str,
    remote_id: str,
    ike_port: int = 500,
    natt_port: int = 4500,
    remote_port: int = 500,
    start: bool = False,
    sock: str | None = None,
    conn_extra: str = "",
    retransmit_timeout: str = "1s",
) -> Config:
    sock = sock or str(tmp_path / name / "pike.sock")
    text = f"""
[daemon]
control_socket = "{sock}"
ike_port = {ike_port}
natt_port = {natt_port}
retransmit_timeout = "{retransmit_timeout}"

[connections.hq]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
remote_port = {remote_port}
proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"]
local = {{ auth = "psk", id = "{local_id}" }}
remote = {{ auth = "psk", id = "{remote_id}" }}
{conn_extra}
[connections.hq.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16", "aes256-sha256"]
start_action = "{"start" if start else "none"}"

[secrets.ike-hq]
id = ["{local_id}", "{remote_id}"]
secret = "{PSK}"
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_config(str(path))
