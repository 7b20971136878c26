"""systemd notify without libsystemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pike.daemon.notify import SystemdNotifier


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
        n.ready()
        n.watchdog()
        n.stopping()
        assert [s.recv(64) for _ in range(3)] == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]
    assert n.watchdog_interval() == 10.0


def test_abstract_socket() -> None:
    name = f"pike-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert s.recv(64) == b"READY=1"


def test_disabled_and_watchdog_for_someone_else() -> None:
    n = SystemdNotifier({})
    assert not n.enabled and not n.notify("READY=1") and n.watchdog_interval() is None
    other = SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval() is None
