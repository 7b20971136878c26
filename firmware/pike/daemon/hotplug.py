"""Hot-plug in the running daemon: a NIC that appears brings its connections up, a key
token that comes or goes is probed again (kernel uevents, pike.board.hotplug)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pike.board.hotplug import HotplugEvent, HotplugWatcher, InterfaceEvent
from pike.daemon.interfaces import address_present, to_bring_up
from pike.policy.config import Config

if TYPE_CHECKING:
    from pike.daemon.runtime import Engine

log = logging.getLogger("pike.daemon")

INTERFACE_SETTLE = 1.0  # seconds from a link appearing to looking at its addresses


class Hotplug:
    def __init__(
        self,
        config: Callable[[], Config],
        engine: Callable[[], Engine],
        now: Callable[[], float],
        pump: Callable[[], None],
        reprobe: Callable[[], None],
    ) -> None:
        self._config = config  # a getter: reload swaps the daemon's config
        self._engine = engine
        self._now = now
        self._pump = pump
        self._reprobe = reprobe
        self._watcher: HotplugWatcher | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Kernel uevents for NICs and USB tokens; optional."""
        try:
            watcher = HotplugWatcher(self._on_hotplug)
        except Exception as exc:  # no libudev, or netlink refused: run without hot-plug
            log.warning("hot-plug disabled: %s", exc)
            return
        watcher.attach(loop)
        self._watcher = watcher

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def _on_hotplug(self, event: HotplugEvent) -> None:
        if isinstance(event, InterfaceEvent):
            log.info("interface %s %s", event.name, event.action)
            if event.action != "vanished":
                # Addresses follow the link (DHCP, networkd): look a moment later. A
                # vanished one needs nothing here: DPD and dpd_action decide.
                asyncio.get_running_loop().call_later(INTERFACE_SETTLE, self._bring_up, event.name)
        else:
            log.info(
                "key token %s %s (%s:%s): re-probing the tokens",
                event.kind,
                event.action,
                event.vendor_id,
                event.product_id,
            )
            # At once rather than at the next signature (at most every 5 s): the state
            # (and pike_token_present) follows the token, and IKE_AUTH finds it ready.
            self._reprobe()

    def _bring_up(self, ifname: str) -> None:
        now = self._now()
        engine = self._engine()
        for item in to_bring_up(self._config(), engine.list_sas(), address_present):
            log.info("%s: interface %s appeared: %s", item.conn, ifname, item.how)
            try:
                if item.how == "restart":
                    engine.terminate(item.conn, now)
                engine.initiate(item.conn, now, item.child)
            except (KeyError, ValueError) as exc:  # not this engine's (IKEv1), no address
                log.info("%s: not brought up: %s", item.conn, exc)
        self._pump()
