"""systemd's notify protocol (sd_notify(3)) without libsystemd: one AF_UNIX datagram each.

``READY=1`` once sockets and the control socket are up (Type=notify), ``WATCHDOG=1`` at
half of ``WATCHDOG_USEC`` (WatchdogSec=), ``STOPPING=1`` on shutdown. Without
``NOTIFY_SOCKET`` every call is a no-op, so piked runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("pike.daemon.notify")


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket address (leading NUL byte).
        self._addr = "\0" + path[1:] if path.startswith("@") else path
        self._watchdog_usec = self._parse_watchdog(env)

    @staticmethod
    def _parse_watchdog(env: Mapping[str, str]) -> int | None:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None  # meant for another process (e.g. our parent)
        return int(usec)

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the timeout), or None."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def notify(self, message: str) -> bool:
        if not self._addr:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                # Never stall the event loop on a full receiver queue.
                s.setblocking(False)
                s.sendto(message.encode(), self._addr)
        except OSError as exc:
            log.warning("systemd notify %s failed: %s", message.split("=", 1)[0], exc)
            return False
        return True

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
