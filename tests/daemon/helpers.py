"""Config and port helpers for runtime tests (real engine, loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from lib.pikeconf import psk_tunnel
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
    text = psk_tunnel(
        local=local,
        remote=remote,
        local_id=local_id,
        remote_id=remote_id,
        psk=PSK,
        remote_port=remote_port,
        proposals=["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"],
        esp_proposals=["aes128gcm16", "aes256-sha256"],
        start_action="start" if start else "none",
        daemon={
            "control_socket": sock,
            "ike_port": ike_port,
            "natt_port": natt_port,
            "retransmit_timeout": retransmit_timeout,
        },
        conn_raw=conn_extra,
    ).render()
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_config(str(path))


def gateway_pair(
    tmp_path: Path,
    *,
    a_local: str = "127.0.0.1",
    a_remote: str = "127.0.0.2",
    b_local: str = "127.0.0.2",
    b_remote: str = "127.0.0.1",
    a_extra: str = "",
    b_extra: str = "",
) -> tuple[Config, Config]:
    """Two gateways over loopback, each at the other's IKE port: a (branch1.example.net,
    starts the connection) and b (hq.example.net); ``*_extra``: lines for the connection."""
    a_ike, a_natt, b_ike, b_natt = free_udp_ports(4)
    cfg_a = gateway_config(
        tmp_path,
        "a",
        local=a_local,
        remote=a_remote,
        local_id="branch1.example.net",
        remote_id="hq.example.net",
        ike_port=a_ike,
        natt_port=a_natt,
        remote_port=b_ike,
        start=True,
        conn_extra=a_extra,
    )
    cfg_b = gateway_config(
        tmp_path,
        "b",
        local=b_local,
        remote=b_remote,
        local_id="hq.example.net",
        remote_id="branch1.example.net",
        ike_port=b_ike,
        natt_port=b_natt,
        remote_port=a_ike,
        conn_extra=b_extra,
    )
    return cfg_a, cfg_b


def loopback_gateway(tmp_path: Path) -> tuple[Config, int, int]:
    """Gateway ``a`` (127.0.0.1) for a peer at 127.0.0.2 that never answers, on free ports:
    the config, its IKE port and its NAT-T port."""
    ike, natt = free_udp_ports(2)
    cfg = gateway_config(
        tmp_path,
        "a",
        local="127.0.0.1",
        remote="127.0.0.2",
        local_id="a.example.net",
        remote_id="b.example.net",
        ike_port=ike,
        natt_port=natt,
    )
    return cfg, ike, natt
