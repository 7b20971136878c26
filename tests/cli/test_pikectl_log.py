"""``pikectl log`` against a real piked: it follows the log live (a reload's line shows up
while it runs) and exits 0 when piked stops."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from cli.piked_proc import start_piked, stop, wait_for
from daemon.helpers import daemon_env, free_udp_ports, pikectl

CONFIG = """\
[daemon]
control_socket = "{sock}"
ike_port = {ike}
natt_port = {natt}

[connections.hq]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.2"]
local = {{ auth = "psk", id = "gw.example.net" }}
remote = {{ auth = "psk", id = "hq.example.net" }}

[connections.hq.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]

[secrets.hq]
secret = "example-only-psk"
"""


def test_pikectl_log_follows_piked(tmp_path: Path) -> None:
    sock, cfg, log = tmp_path / "run" / "pike.sock", tmp_path / "pike.toml", tmp_path / "d.log"
    ike, natt = free_udp_ports(2)
    cfg.write_text(CONFIG.format(sock=sock, ike=ike, natt=natt))
    proc = start_piked(cfg, log)
    follower: subprocess.Popen[str] | None = None
    try:
        wait_for("no control socket", sock.exists, log)
        follower = subprocess.Popen(
            # The socket from the config, as an operator would call it on the box.
            [sys.executable, "-m", "pike.cli.pikectl", "log", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=daemon_env(),
        )
        lines: queue.Queue[str] = queue.Queue()
        assert follower.stdout is not None
        out = follower.stdout

        def pump() -> None:
            for x in out:
                lines.put(x)

        threading.Thread(target=pump, daemon=True).start()
        try:
            seen: list[str] = []
            deadline = time.monotonic() + 15
            # The follower may not be registered yet: reload until it sees a reload line.
            while not any("reload of " in x for x in seen):
                assert time.monotonic() < deadline, seen
                assert follower.poll() is None, follower.stderr
                assert pikectl(sock, "reload").returncode == 0
                with contextlib.suppress(queue.Empty):
                    while True:
                        seen.append(lines.get(timeout=0.5))
            (line,) = [x for x in seen if "reload of " in x][:1]
            assert " INFO " in line
        finally:
            stop(proc)
        assert follower.wait(10) == 0  # piked went away: the stream ends, exit 0
    finally:
        stop(proc)
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait()
