"""systemd's watchdog, fed only while piked is healthy (pike.board.watchdog)."""

from __future__ import annotations

from collections.abc import Callable

from pike.board.watchdog import Health, LoopLag, feed_watchdog, unix_socket_present
from pike.daemon.notify import SystemdNotifier


async def watchdog(
    notifier: SystemdNotifier,
    health: Health,
    sockets_bound: Callable[[], bool],
    control_socket: str,
    lag: LoopLag,
) -> None:
    """WATCHDOG=1 only while healthy: a wedged piked gets killed and restarted by
    systemd (WatchdogSec=), which itself feeds the hardware watchdog. ``lag``: the
    runtime's running loop-lag probe (also the pike_event_loop_lag_seconds metric)."""
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    lag.limit = interval  # blocked for a whole ping interval: wedged
    health.add("event loop", lag.check)
    health.add("IKE sockets", lambda: None if sockets_bound() else "none open")
    health.add("control socket", unix_socket_present(control_socket))
    await feed_watchdog(notifier.watchdog, health, interval)
