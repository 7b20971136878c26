"""Hot-plug of network interfaces and USB key tokens, from kernel uevents (pyudev).

A ``source='kernel'`` monitor reads the kernel's uevents directly, so it works on an
appliance where no udevd runs (and before it starts). It sees network devices only of the
namespace its socket was created in: ``netns=`` creates it there.

The watcher turns uevents into typed events and hands them to one callback. An asyncio
runtime attaches it with ``watcher.attach(loop)`` (``loop.add_reader`` on its fileno):
interface events re-evaluate the connections bound to that interface, token events go to
key custody (``pike.hsm``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pike.board.netns import call_in_netns

log = logging.getLogger("pike.board.hotplug")

USB_CLASS_SMART_CARD = 0x0B  # CCID: smart-card HSMs (Nitrokey HSM, SmartCard-HSM, YubiKey PIV)
# PKCS#11 tokens that are not CCID devices, by USB vendor:product (lower-case hex).
VENDOR_TOKENS = {
    "1050:0030": "YubiHSM 2",
}


@dataclass(frozen=True, slots=True)
class InterfaceEvent:
    action: Literal["appeared", "vanished", "renamed"]
    name: str
    ifindex: int | None
    old_name: str | None = None  # for "renamed"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    action: Literal["attached", "detached"]
    devpath: str  # stable for the attach/detach pair of one device
    kind: str  # "ccid" or a product name from VENDOR_TOKENS
    vendor_id: str  # "20a0" (empty when the kernel did not say)
    product_id: str


HotplugEvent = InterfaceEvent | TokenEvent


def _ifindex(props: Mapping[str, str]) -> int | None:
    value = props.get("IFINDEX", "")
    return int(value) if value.isdigit() else None


def _usb_ids(props: Mapping[str, str]) -> tuple[str, str]:
    # PRODUCT=20a0/4230/101: vendor/product/bcdDevice in hex without leading zeros.
    parts = props.get("PRODUCT", "").split("/")
    if len(parts) < 2:
        return "", ""
    return parts[0].lower().zfill(4), parts[1].lower().zfill(4)


def classify(action: str, subsystem: str, props: Mapping[str, str]) -> HotplugEvent | None:
    """One uevent (its ACTION, SUBSYSTEM and properties) -> a typed event, or None."""
    if subsystem == "net":
        name = props.get("INTERFACE", "")
        if not name:
            return None
        if action == "add":
            return InterfaceEvent("appeared", name, _ifindex(props))
        if action == "remove":
            return InterfaceEvent("vanished", name, _ifindex(props))
        if action == "move":
            old = os.path.basename(props.get("DEVPATH_OLD", "")) or None
            return InterfaceEvent("renamed", name, _ifindex(props), old)
        return None
    if subsystem != "usb" or action not in ("add", "remove"):
        return None
    verb: Literal["attached", "detached"] = "attached" if action == "add" else "detached"
    vendor, product = _usb_ids(props)
    devpath = props.get("DEVPATH", "")
    if props.get("DEVTYPE") == "usb_interface":
        # INTERFACE=11/0/0: class/subclass/protocol in decimal.
        cls = props.get("INTERFACE", "").split("/")[0]
        if cls.isdigit() and int(cls) == USB_CLASS_SMART_CARD:
            return TokenEvent(verb, devpath, "ccid", vendor, product)
        return None
    if props.get("DEVTYPE") == "usb_device":
        kind = VENDOR_TOKENS.get(f"{vendor}:{product}")
        if kind is not None:
            return TokenEvent(verb, devpath, kind, vendor, product)
    return None


class HotplugWatcher:
    """Kernel uevents -> ``callback(event)``; see the module docstring."""

    def __init__(
        self,
        callback: Callable[[HotplugEvent], None],
        *,
        netns: str | None = None,
        source: Literal["kernel", "udev"] = "kernel",
    ) -> None:
        import pyudev  # deferred: needs libudev, only the watcher does

        def make() -> Any:
            monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source=source)
            monitor.filter_by("net")
            monitor.filter_by("usb")
            monitor.start()  # binds the socket (created in ``netns``) and sets O_NONBLOCK
            return monitor

        self._callback = callback
        self._monitor: Any = call_in_netns(netns, make)
        self._loop: asyncio.AbstractEventLoop | None = None

    def fileno(self) -> int:
        return int(self._monitor.fileno())

    def read_events(self) -> list[HotplugEvent]:
        """Every uevent queued now, classified; never blocks."""
        out: list[HotplugEvent] = []
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return out
            props = {str(k): str(device.properties[k]) for k in device.properties}
            event = classify(device.action or "", device.subsystem or "", props)
            if event is not None:
                out.append(event)

    def dispatch(self) -> int:
        """Read the queued events and hand each to the callback; how many there were."""
        events = self.read_events()
        for event in events:
            try:
                self._callback(event)
            except Exception:  # one bad handler must not stop hot-plug for good
                log.exception("hot-plug callback failed for %s", event)
        return len(events)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch from ``loop`` whenever the uevent socket is readable."""
        self._loop = loop
        loop.add_reader(self.fileno(), self.dispatch)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fileno())
            self._loop = None
        # pyudev has no close(); dropping the last reference frees the libudev monitor.
        self._monitor = None
