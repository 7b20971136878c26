"""One config path: piked's start, ``pikectl check-config``, ``pikectl reload`` and SIGHUP
accept and refuse the same files, with the same ``FILE:LINE: KEY`` answer.

Start is a real piked process per file; reload and SIGHUP go to one real piked that runs
a good file and is handed each file in turn (at the path it was started with).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from cli.piked_proc import reloaded, start_piked, stop, wait_for
from daemon.helpers import PSK, daemon_env, free_udp_ports, pikectl
from ikev2.x509gen import issue, make_ca, write

BASE = """\
[daemon]
control_socket = "{sock}"
ike_port = {ike}
natt_port = {natt}

[connections.hq]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.2"]
{auth}
[connections.hq.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
"""
PSK_AUTH = f"""\
local = {{ auth = "psk", id = "gw.example.net" }}
remote = {{ auth = "psk", id = "hq.example.net" }}
{{extra}}
[secrets.ike-hq]
id = ["gw.example.net", "hq.example.net"]
secret = "{PSK}"
"""
CERT_AUTH = """\
local = {{ auth = "pubkey", id = "{id}", certs = ["{cert}"], key = "{key}" }}
remote = {{ auth = "pubkey", id = "hq.example.net", cacerts = ["{ca}"] }}
"""


def _files(d: Path) -> dict[str, tuple[str, str | None]]:
    """name -> (config text with {sock}/{ike}/{natt} left open, expected error or None)."""
    ca = make_ca()
    gw = issue(ca, "ecdsa-p256", "gw", [x509.DNSName("gw.example.net")])
    other = issue(ca, "ecdsa-p256", "other", [x509.DNSName("other.example.net")])
    gw_cert, gw_key = write(d, "gw", gw)
    ca_cert, _ = write(d, "ca", ca)
    other_cert, other_key = write(d, "other", other)
    (d / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (d / "junk.key").write_text("not a key\n")

    def psk(extra: str = "") -> str:
        return BASE.replace("{auth}", PSK_AUTH.replace("{extra}", extra))

    def cert(**kw: object) -> str:
        values = {"id": "gw.example.net", "cert": gw_cert, "key": gw_key, "ca": ca_cert, **kw}
        return BASE.replace("{auth}", CERT_AUTH.format(**values))

    return {
        # No proposals anywhere: the board's (the reload used to refuse this).
        "board-defaults": (psk(), None),
        "pubkey": (cert(), None),
        "unknown-key": (psk('close_actionx = "start"\n'), ":11: connections.hq.close_actionx:"),
        "bad-proposal": (psk('proposals = ["aes128-sha1-modp1"]\n'), ":11: connections.hq."),
        "id-not-in-cert": (cert(id="vpn.example.org"), ":9: connections.hq.local.id:"),
        "leaf-as-ca": (cert(ca=other_cert), ":10: connections.hq.remote.cacerts[0]:"),
        "bad-pem-cert": (cert(cert=d / "junk.pem"), ":9: connections.hq.local.certs[0]:"),
        "key-mismatch": (cert(key=other_key), ":9: connections.hq.local.key:"),
        "bad-pem-key": (cert(key=d / "junk.key"), ":9: connections.hq.local.key:"),
    }


def _write(path: Path, text: str, sock: Path, ports: list[int]) -> None:
    path.write_text(
        text.replace("{sock}", str(sock))
        .replace("{ike}", str(ports[0]))
        .replace("{natt}", str(ports[1]))
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, Path, Path, list[int]]]:
    """A piked on a good file: (its config path, its socket, its log, its ports)."""
    files = _files(tmp_path / "pki")
    cfg, sock, log = tmp_path / "running.toml", tmp_path / "run" / "pike.sock", tmp_path / "d.log"
    ports = free_udp_ports(2)
    _write(cfg, files["board-defaults"][0], sock, ports)
    proc = start_piked(cfg, log)
    try:
        wait_for("no control socket", sock.exists, log)
        yield cfg, sock, log, ports
    finally:
        stop(proc)


def test_start_check_config_reload_and_sighup_agree(
    tmp_path: Path, running: tuple[Path, Path, Path, list[int]]
) -> None:
    cfg, sock, log, ports = running
    pid = int(pikectl(sock, "status", "--json").stdout.split('"pid": ')[1].split(",")[0])
    for name, (text, expected) in _files(tmp_path / "pki").items():
        # check-config
        path = tmp_path / f"{name}.toml"
        start_sock = tmp_path / name / "pike.sock"
        _write(path, text, start_sock, free_udp_ports(2))
        chk = subprocess.run(
            [sys.executable, "-m", "pike.cli.pikectl", "check-config", str(path)],
            capture_output=True,
            text=True,
            env=daemon_env(),
        )
        # start
        start_log = tmp_path / f"{name}.log"
        proc = start_piked(path, start_log)
        try:
            if expected is None:
                wait_for(f"{name}: piked did not start", start_sock.exists, start_log)
            else:
                assert proc.wait(30) == 2, f"{name}: {start_log.read_text()}"
        finally:
            stop(proc)
        started = start_log.read_text()
        # reload over the control socket, then SIGHUP, on the running daemon
        _write(cfg, text, sock, ports)
        rel = pikectl(sock, "reload")
        mark = log.stat().st_size
        os.kill(pid, signal.SIGHUP)
        wait_for(f"{name}: no SIGHUP outcome", functools.partial(reloaded, log, mark), log)
        hup = log.read_text()[mark:]
        if expected is None:
            assert chk.returncode == 0, f"{name}: {chk.stderr}"
            assert rel.returncode == 0, f"{name}: {rel.stderr}"
            assert "reload refused" not in hup, f"{name}: {hup}"
            continue
        # (A file key also logs that it is one: only the FILE:LINE lines are compared.)
        errors = [line for line in chk.stderr.splitlines() if line.startswith(str(path))]
        assert chk.returncode == 1 and errors, f"{name}: {chk.stderr}"
        assert errors[0].startswith(f"{path}{expected}"), f"{name}: {chk.stderr}"
        assert [line for line in started.splitlines() if line.startswith(str(path))] == errors
        assert rel.returncode == 1, f"{name}: {rel.stdout}"
        assert f"{cfg}{expected}" in rel.stderr, f"{name}: {rel.stderr}"
        assert f"reload refused: {cfg}{expected}" in hup, f"{name}: {hup}"
        # The same text from all three (the file name aside).
        assert "; ".join(errors).replace(str(path), str(cfg)) in rel.stderr
        assert PSK not in chk.stderr + started + rel.stderr + hup
