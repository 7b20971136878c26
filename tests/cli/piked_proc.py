"""A real piked process for CLI tests: start it on a config, wait for it, stop it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from daemon.helpers import daemon_env


def start_piked(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=daemon_env(),
        )


def wait_for(what: str, cond: Callable[[], object], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()}"
        time.sleep(0.05)


def reloaded(log: Path, mark: int) -> bool:
    tail = log.read_text()[mark:]
    return "reload of " in tail or "reload refused" in tail


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
