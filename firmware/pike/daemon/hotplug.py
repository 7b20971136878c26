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


def wanted(config: Config) -> bool:
    """Whether hot-plug has something to act on: a connection that starts itself towards
    a peer (its interface may come later) or a key on a token. Without one, the watcher
    (pyudev with ctypes.util, shutil, tempfile: about 1 MiB of idle RSS) is not started;
    a reload that adds one starts it."""
    for conn in config.connections.values():
        if conn.remote_addrs and any(c.start_action == "start" for c in conn.children):
            return True
        if any(a.key and a.key[:7].lower() == "pkcs11:" for a in (conn.local, conn.remote)):
            return True
    return False


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Kernel uevents for NICs and USB tokens, once the config wants them; optional."""
        self._loop = loop
        self.follow()

    def follow(self) -> None:
        """Start the watcher if the (reloaded) config now wants it; it then stays."""
        if self._loop is None or self._watcher is not None or self._failed:
            return
        if not wanted(self._config()):
            return
        try:
            watcher = HotplugWatcher(self._on_hotplug)
        except Exception as exc:  # no libudev, or netlink refused: run without hot-plug
            log.warning("hot-plug disabled: %s", exc)
            self._failed = True  # said once
            return
        watcher.attach(self._loop)
        self._watcher = watcher

    def close(self) -> None:
        self._loop = None
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
