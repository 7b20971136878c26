"""Watchdog gating: WATCHDOG=1 goes out only while every health check passes, and the real
SystemdNotifier's datagrams carry it (a notify socket of our own plays systemd)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from pike.board.watchdog import (
    Health,
    LoopLag,
    feed_watchdog,
    socket_open,
    thread_alive,
    unix_socket_present,
)
from pike.daemon.notify import SystemdNotifier


def test_failures_name_the_check() -> None:
    h = Health()
    h.add("ok", lambda: None)
    h.add("sockets", lambda: "socket closed")

    def boom() -> str | None:
        raise RuntimeError("bug")

    h.add("kernel", boom)
    assert h.failures() == ["sockets: socket closed", "kernel: check raised RuntimeError: bug"]
    h.remove("sockets")
    h.remove("kernel")
    assert h.failures() == []


def test_socket_checks(tmp_path: Path) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    check = socket_open(lambda: s)
    assert check() is None
    s.close()
    assert check() == "socket closed"
    assert socket_open(lambda: None)() == "socket closed"

    path = str(tmp_path / "pike.sock")
    assert "No such file" in (unix_socket_present(path)() or "")
    with socket.socket(socket.AF_UNIX) as u:
        u.bind(path)
        assert unix_socket_present(path)() is None
    os.unlink(path)
    Path(path).write_text("")
    assert unix_socket_present(path)() == f"{path} is not a socket"


def test_thread_alive() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="kernel")
    t.start()
    check = thread_alive(t)
    assert check() is None
    stop.set()
    t.join()
    assert check() == "thread kernel has exited"


def test_loop_lag_sees_a_blocked_loop() -> None:
    async def main() -> tuple[str | None, str | None, float]:
        lag = LoopLag(limit=0.2, period=0.05)
        lag.start()
        await asyncio.sleep(0.12)
        healthy = lag.check()
        time.sleep(0.4)  # a blocking call on the loop thread
        await asyncio.sleep(0.1)
        wedged = lag.check()
        lag.stop()
        return healthy, wedged, lag.worst

    healthy, wedged, worst = asyncio.run(main())
    assert healthy is None
    assert wedged is not None and wedged.startswith("event loop woke")
    assert worst >= 0.3


def test_loop_lag_not_started() -> None:
    assert LoopLag(1.0).check() == "lag probe not running"


@pytest.fixture
def systemd(tmp_path: Path) -> socket.socket:
    """A datagram socket playing systemd's NOTIFY_SOCKET."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.setblocking(False)
    return s


def received(s: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(4096).decode())
        except BlockingIOError:
            return out


def test_systemd_gets_watchdog_only_while_healthy(systemd: socket.socket) -> None:
    env = {
        "NOTIFY_SOCKET": systemd.getsockname(),
        "WATCHDOG_USEC": "100000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    notifier = SystemdNotifier(env)
    interval = notifier.watchdog_interval()
    assert interval == 0.05
    state = {"broken": False}
    health = Health()
    health.add("sockets", lambda: "socket closed" if state["broken"] else None)

    async def main() -> tuple[list[str], list[str], list[str]]:
        task = asyncio.get_running_loop().create_task(
            feed_watchdog(notifier.watchdog, health, interval)
        )
        await asyncio.sleep(0.22)
        healthy = received(systemd)
        state["broken"] = True
        await asyncio.sleep(0.22)
        broken = received(systemd)
        state["broken"] = False
        await asyncio.sleep(0.12)
        task.cancel()
        return healthy, broken, received(systemd)

    healthy, broken, recovered = asyncio.run(main())
    assert len(healthy) >= 3 and set(healthy) == {"WATCHDOG=1"}
    assert broken == [] or broken == ["WATCHDOG=1"]  # at most the tick before the flip
    assert recovered and set(recovered) == {"WATCHDOG=1"}
