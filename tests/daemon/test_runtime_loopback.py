"""Two daemons (real engine, real sockets, real control socket) talking over loopback.

The kernel is ``NoKernel`` (nothing may be installed in the host's namespace), so like on
a kernel without ESP the IKE SA comes up and the CHILD_SA is refused; status says why.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

from pike.cli import pikectl
from pike.cli.piked import _engine
from pike.daemon.control import request
from pike.daemon.nokernel import NoKernel
from pike.daemon.notify import SystemdNotifier
from pike.daemon.runtime import Daemon

from .helpers import gateway_pair


async def _ask(path: str, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, request, path, cmd, args)


async def _until(path: str, pred: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await _ask(path, "list-sas")
        assert resp["ok"], resp
        if pred(resp["result"]) or time.monotonic() > deadline:
            return list(resp["result"])
        await asyncio.sleep(0.05)


def _established(sas: list[dict[str, Any]]) -> bool:
    return bool(sas) and sas[0]["state"] == "ESTABLISHED"


def test_two_daemons_establish_over_loopback(tmp_path: Path) -> None:
    cfg_a, cfg_b = gateway_pair(tmp_path)
    notify_path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.setblocking(False)
    env = {"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "2000000"}  # ping every 1 s
    a = Daemon(cfg_a, NoKernel("test"), _engine, notifier=SystemdNotifier(env), ipv6=False)
    b = Daemon(cfg_b, NoKernel("test"), _engine, ipv6=False)

    async def scenario() -> tuple[Any, ...]:
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
        sa_a = await _until(cfg_a.daemon.control_socket, _established)
        sa_b = await _until(cfg_b.daemon.control_socket, _established)
        status = await _ask(cfg_a.daemon.control_socket, "status")
        bad = await _ask(cfg_a.daemon.control_socket, "initiate", {"conn": "nope"})
        # pikectl terminate / initiate CONN.CHILD through the same socket.
        loop = asyncio.get_running_loop()
        sock_a = cfg_a.daemon.control_socket

        def ctl(*argv: str) -> int:
            return pikectl.main(["--socket", sock_a, *argv])

        codes_ctl = [await loop.run_in_executor(None, ctl, "terminate", "hq")]
        gone = await _until(cfg_b.daemon.control_socket, lambda sas: not sas)
        codes_ctl.append(await loop.run_in_executor(None, ctl, "initiate", "hq.nochild"))
        codes_ctl.append(await loop.run_in_executor(None, ctl, "initiate", "hq.lan"))
        again = await _until(cfg_b.daemon.control_socket, _established)
        # --timeout 0: the plain request, answered at once (already up here)
        codes_ctl.append(
            await loop.run_in_executor(None, ctl, "initiate", "--timeout", "0", "hq.lan")
        )
        a.request_stop()
        b.request_stop()
        t0 = time.monotonic()
        codes = await asyncio.wait_for(asyncio.gather(ta, tb), 5)
        assert gone == [] and again[0]["spi_i"] != sa_b[0]["spi_i"]
        # initiate waits for the outcome: the IKE SA comes up, the CHILD_SA is refused
        # (NoKernel: no ESP), so it exits 1, as swanctl --initiate does for a failed child
        assert codes_ctl == [0, 1, 1, 0]
        return sa_a, sa_b, status, bad, codes, time.monotonic() - t0

    sa_a, sa_b, status, bad, codes, stop_time = asyncio.run(scenario())
    listener_msgs = []
    while True:
        try:
            listener_msgs.append(listener.recv(100).decode())
        except BlockingIOError:
            break
    listener.close()

    assert codes == [0, 0]
    assert stop_time < 3
    assert sa_a[0]["state"] == "ESTABLISHED" and sa_b[0]["state"] == "ESTABLISHED"
    assert (sa_a[0]["spi_i"], sa_a[0]["spi_r"]) == (sa_b[0]["spi_i"], sa_b[0]["spi_r"])
    assert sa_a[0]["initiator"] and not sa_b[0]["initiator"]
    assert sa_a[0]["local_id"] == "branch1.example.net"
    assert sa_a[0]["remote_id"] == "hq.example.net"
    assert (sa_a[0]["local_addr"], sa_a[0]["local_port"]) == ("127.0.0.1", cfg_a.daemon.ike_port)
    assert (sa_a[0]["remote_addr"], sa_a[0]["remote_port"]) == ("127.0.0.2", cfg_b.daemon.ike_port)
    assert sa_a[0]["algorithms"] == "aes128gcm16-prfsha256-x25519"
    # No ESP here: no CHILD_SA stays installed.
    assert all(c["state"] != "INSTALLED" for c in sa_a[0]["children"])
    assert status["ok"]
    st = status["result"]
    assert st["kernel"]["esp"] is False and st["kernel"]["missing"]
    assert st["pid"] == os.getpid() and st["connections"] == ["hq"]
    assert st["ike_sas"] == 1
    assert bad == {"ok": False, "error": "no connection named 'nope'"}
    assert listener_msgs[0] == "READY=1" and listener_msgs[-1] == "STOPPING=1"
    assert "WATCHDOG=1" in listener_msgs
    assert not os.path.exists(cfg_a.daemon.control_socket)
