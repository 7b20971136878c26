"""Two piked gateways in a lab's namespaces, for the lifecycle tests (host and kernel tier).

    left  wan0 192.0.2.1/24   LAN 10.1.0.0/24 (.1 gateway, .2 host ``lefthost``)
    right wan0 192.0.2.2/24   LAN 10.2.0.0/24 (.1 gateway, .2 host ``righthost``)

(``interop.topology.make_gateways``). piked runs in the foreground with its log in a file,
started and killed by PID; the control socket is polled directly (pikectl only where the
CLI is what a test checks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.helpers import daemon_env
from interop.netns import Lab, Namespace, kill_pid
from interop.topology import Gateways, make_gateways
from lib.pikeconf import psk_tunnel
from pike.daemon.control import request

PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"
LEFT, RIGHT = "192.0.2.1", "192.0.2.2"
LEFT_LAN, RIGHT_LAN = "10.1.0.0/24", "10.2.0.0/24"


def _env() -> dict[str, str]:
    return {**daemon_env(), "PYTHONUNBUFFERED": "1"}


def config_text(
    sock: Path,
    *,
    local: str,
    remote: str,
    local_ts: str,
    remote_ts: str,
    daemon: str = "",
    conn: str = "",
    child: str = "",
    start_action: str = "none",
) -> str:
    """The lifecycle tests' gateway: PSK tunnel ``hq``/``lan`` between the
    ``<addr>.example.net`` ids; ``daemon``/``conn``/``child`` are TOML lines for each table."""
    return psk_tunnel(
        local=local,
        remote=remote,
        local_id=f"{local}.example.net",
        remote_id=f"{remote}.example.net",
        psk=PSK,
        local_ts=[local_ts],
        remote_ts=[remote_ts],
        start_action=start_action,
        daemon={"control_socket": str(sock), "log_level": "debug"},
        daemon_raw=daemon,
        conn_raw=conn,
        child_raw=child,
    ).render()


@dataclass
class Piked:
    ns: Namespace
    dir: Path
    text: str
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def sock(self) -> str:
        return str(self.dir / "pike.sock")

    @property
    def log(self) -> Path:
        return self.dir / "piked.log"

    def start(self, timeout: float = 60.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "pike.toml"
        cfg.write_text(self.text)
        self.started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = self.ns.popen(
                [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
                stdout=log,
                env=_env(),
            )
        deadline = self.started + timeout
        while True:
            assert self.proc.poll() is None, f"piked exited {self.proc.returncode}\n{self.tail()}"
            if os.path.exists(self.sock):
                try:
                    if request(self.sock, "status", timeout=5).get("ok"):
                        return
                except OSError:
                    pass
            assert time.monotonic() < deadline, f"piked did not come up\n{self.tail()}"
            time.sleep(0.05)

    def ctl(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        resp = request(self.sock, cmd, args, timeout=10)
        assert resp.get("ok"), f"{cmd}: {resp}\n{self.tail()}"
        return resp["result"]

    def pikectl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pike.cli.pikectl", "--socket", self.sock, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            env=_env(),
        )

    def sas(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ctl("list-sas")
        return result

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The peer dies without a word (SIGKILL by PID): no DELETE goes out."""
        assert self.proc is not None
        os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            kill_pid(self.proc.pid, grace=5.0)
        return self.proc.wait(timeout=5)

    def text_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.text_log().splitlines()[-n:])


@dataclass
class Pair:
    gw: Gateways
    left: Piked
    right: Piked
    extra: list[Piked] = field(default_factory=list)

    def dump(self) -> str:
        return f"--- left:\n{self.left.tail()}\n--- right:\n{self.right.tail()}"

    def wait(self, pred: Callable[[], bool], timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while not pred():
            assert time.monotonic() - t0 < timeout, f"timeout waiting for {what}\n{self.dump()}"
            time.sleep(0.05)
        return time.monotonic() - t0


def established(p: Piked, children: int | None = None) -> bool:
    sas = [s for s in p.sas() if s["state"] == "ESTABLISHED"]
    if not sas:
        return False
    if children is None:
        return True
    installed = [c for s in sas for c in s["children"] if c["state"] == "INSTALLED"]
    return len(installed) >= children


def make_pair(
    lab: Lab,
    tmp: Path,
    *,
    left: dict[str, str] | None = None,
    right: dict[str, str] | None = None,
    hosts: bool = True,
) -> Pair:
    """Gateways with LANs (host namespaces when ``hosts``), a piked config on each;
    ``left``/``right`` add config text (keys ``daemon``, ``conn``, ``child``,
    ``start_action``). Nothing is started."""
    gw = make_gateways(lab) if hosts else _gateways_without_hosts(lab)
    sides = []
    for name, ns, local, remote, lts, rts, extra in (
        ("left", gw.left, LEFT, RIGHT, LEFT_LAN, RIGHT_LAN, left or {}),
        ("right", gw.right, RIGHT, LEFT, RIGHT_LAN, LEFT_LAN, right or {}),
    ):
        d = tmp / name
        text = config_text(
            Path(d / "pike.sock"),
            local=local,
            remote=remote,
            local_ts=lts,
            remote_ts=rts,
            **extra,
        )
        sides.append(Piked(ns, d, text))
    return Pair(gw, sides[0], sides[1])


def _gateways_without_hosts(lab: Lab) -> Gateways:
    from interop.topology import LEFT_WAN, RIGHT_WAN

    left = lab.add_ns("left", forwarding=True)
    right = lab.add_ns("right", forwarding=True)
    wan = lab.link(left, right, LEFT_WAN[0], RIGHT_WAN[0], a_dev="wan0", b_dev="wan0")
    left_lan = lab.add_host_net(left, LEFT_LAN, dummy=True)
    right_lan = lab.add_host_net(right, RIGHT_LAN, dummy=True)
    left.ip("route", "add", RIGHT_LAN, "via", wan.b_ip)
    right.ip("route", "add", LEFT_LAN, "via", wan.a_ip)
    return Gateways(lab, left, right, wan, left_lan, right_lan, False)


@contextlib.contextmanager
def running(pair: Pair) -> Iterator[Pair]:
    """Start right (responder) then left; stop both by PID afterwards."""
    try:
        pair.right.start()
        pair.left.start()
        yield pair
    finally:
        for p in (pair.left, pair.right, *pair.extra):
            p.stop()


def xfrm(ns: Namespace, what: str = "state") -> str:
    return ns.ip("xfrm", what).stdout
