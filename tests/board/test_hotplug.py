"""Hot-plug: a kernel-uevent monitor created inside a private namespace sees veths appear,
get renamed and vanish there; USB token uevents (recorded properties) are classified."""

from __future__ import annotations

import asyncio
import select
import subprocess
import time

import pytest

from pike.board.hotplug import (
    HotplugEvent,
    HotplugWatcher,
    InterfaceEvent,
    TokenEvent,
    classify,
)

from .conftest import Netns


def wait_for(
    watcher: HotplugWatcher, seen: list[HotplugEvent], want: int, timeout: float = 5.0
) -> None:
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        select.select([watcher.fileno()], [], [], max(0.0, deadline - time.monotonic()))
        watcher.dispatch()


def names(events: list[HotplugEvent]) -> list[tuple[str, str]]:
    return [(e.action, e.name) for e in events if isinstance(e, InterfaceEvent)]


def test_veth_appears_renames_and_vanishes(netns: Netns) -> None:
    seen: list[HotplugEvent] = []
    watcher = HotplugWatcher(seen.append, netns=netns.name)
    try:
        assert watcher.read_events() == []  # nothing queued, and it does not block
        netns.ip("link", "add", "hp0", "type", "veth", "peer", "name", "hp1")
        wait_for(watcher, seen, 2)
        assert sorted(names(seen)) == [("appeared", "hp0"), ("appeared", "hp1")]
        assert all(isinstance(e, InterfaceEvent) and e.ifindex for e in seen)
        seen.clear()
        netns.ip("link", "set", "hp1", "name", "hp9")
        wait_for(watcher, seen, 1)
        assert seen == [InterfaceEvent("renamed", "hp9", seen[0].ifindex, "hp1")]  # type: ignore[union-attr]
        seen.clear()
        netns.ip("link", "del", "hp0")  # takes its peer with it
        wait_for(watcher, seen, 2)
        assert sorted(names(seen)) == [("vanished", "hp0"), ("vanished", "hp9")]
    finally:
        watcher.close()


def test_monitor_sees_only_its_own_namespace(netns: Netns, run_prefix: str) -> None:
    other = f"{run_prefix}bdother"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        seen: list[HotplugEvent] = []
        watcher = HotplugWatcher(seen.append, netns=netns.name)
        subprocess.run(["ip", "-n", other, "link", "add", "x0", "type", "veth"], check=True)
        netns.ip("link", "add", "mine0", "type", "veth", "peer", "name", "mine1")
        wait_for(watcher, seen, 2)
        assert sorted(names(seen)) == [("appeared", "mine0"), ("appeared", "mine1")]
        watcher.close()
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_asyncio_attach(netns: Netns) -> None:
    async def main() -> list[HotplugEvent]:
        loop = asyncio.get_running_loop()
        got: list[HotplugEvent] = []
        done = asyncio.Event()

        def on_event(e: HotplugEvent) -> None:
            got.append(e)
            if len(got) == 2:
                done.set()

        watcher = HotplugWatcher(on_event, netns=netns.name)
        watcher.attach(loop)
        try:
            await asyncio.to_thread(netns.ip, "link", "add", "as0", "type", "veth")
            await asyncio.wait_for(done.wait(), 5.0)
        finally:
            watcher.close()
        return got

    got = asyncio.run(main())
    assert sorted(names(got)) == [("appeared", "as0"), ("appeared", "veth0")]


def test_a_failing_callback_does_not_stop_the_watcher(netns: Netns) -> None:
    calls: list[HotplugEvent] = []

    def bad(e: HotplugEvent) -> None:
        calls.append(e)
        raise RuntimeError("handler bug")

    watcher = HotplugWatcher(bad, netns=netns.name)
    netns.ip("link", "add", "bd0", "type", "veth", "peer", "name", "bd1")
    wait_for(watcher, calls, 2)
    assert len(calls) == 2
    watcher.close()


# -- classification of recorded uevents ---------------------------------------------------

# Nitrokey HSM 2 plugged into a Pi 4 (kernel uevents: the device, then its CCID interface).
NK_DEVICE = {
    "DEVPATH": "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0"
    "/usb1/1-1/1-1.3",
    "DEVTYPE": "usb_device",
    "PRODUCT": "20a0/4230/101",
    "TYPE": "0/0/0",
    "BUSNUM": "001",
    "DEVNUM": "004",
}
NK_INTERFACE = {
    "DEVPATH": NK_DEVICE["DEVPATH"] + "/1-1.3:1.0",
    "DEVTYPE": "usb_interface",
    "PRODUCT": "20a0/4230/101",
    "TYPE": "0/0/0",
    "INTERFACE": "11/0/0",
    "MODALIAS": "usb:v20A0p4230d0101dc00dsc00dp00ic0Bisc00ip00in00",
}
YUBIHSM = {
    "DEVPATH": "/devices/platform/scb/fd500000.pcie/usb1/1-1/1-1.4",
    "DEVTYPE": "usb_device",
    "PRODUCT": "1050/30/10",
}


def test_ccid_token_attach_and_detach() -> None:
    assert classify("add", "usb", NK_DEVICE) is None  # not a token by itself
    ev = classify("add", "usb", NK_INTERFACE)
    assert ev == TokenEvent("attached", NK_INTERFACE["DEVPATH"], "ccid", "20a0", "4230")
    gone = classify("remove", "usb", NK_INTERFACE)
    assert isinstance(gone, TokenEvent) and gone.action == "detached"
    assert gone.devpath == ev.devpath


def test_vendor_token_by_usb_id() -> None:
    ev = classify("add", "usb", YUBIHSM)
    assert ev == TokenEvent("attached", YUBIHSM["DEVPATH"], "YubiHSM 2", "1050", "0030")


@pytest.mark.parametrize(
    ("action", "subsystem", "props"),
    [
        ("bind", "usb", NK_INTERFACE),
        ("add", "usb", {**NK_INTERFACE, "INTERFACE": "3/1/1"}),  # a keyboard
        ("add", "block", {"DEVNAME": "sda"}),
        ("change", "net", {"INTERFACE": "eth0"}),
        ("add", "net", {}),
    ],
)
def test_other_uevents_are_ignored(action: str, subsystem: str, props: dict[str, str]) -> None:
    assert classify(action, subsystem, props) is None
