"""USB token hot-plug -> immediate re-probe, in a running daemon with a SoftHSM2 key.

This machine has no USB bus (no /sys/bus/usb), so no kernel uevent of a real token can
arrive: the daemon's own HotplugWatcher (a real pyudev kernel monitor) is fed pyudev
Device-like objects for a CCID smart-card interface being removed and added, and
everything after it is real: classify -> the daemon's callback -> the signing queue ->
Pkcs11Signer.reprobe on SoftHSM2 (whose token directory is moved away and back) ->
pike_token_present on /metrics. Without the events the state would only change at the
next signature.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from daemon.helpers import free_udp_ports
from lib.pikeconf import Conn, PikeConf, Secret
from pike.board.hotplug import HotplugWatcher
from pike.cli.piked import _engine
from pike.daemon import hotplug, runtime
from pike.daemon.nokernel import NoKernel
from pike.hsm import provision
from pike.hsm.pkcs11 import REPROBE_INTERVAL, Pkcs11Signer
from pike.policy.loader import load_config_text
from pike.sa.credentials import CredentialStore

from .test_pkcs11_tokens import _generate
from .tokens import USER_PIN, SoftHsm, uri

CCID = {
    "DEVTYPE": "usb_interface",
    "INTERFACE": "11/0/0",  # class 11: smart card (CCID)
    "PRODUCT": "20a0/4230/101",  # Nitrokey HSM
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0",
}


class Device:
    """What HotplugWatcher reads of a pyudev.Device."""

    def __init__(self, action: str, subsystem: str, properties: dict[str, str]) -> None:
        self.action, self.subsystem, self.properties = action, subsystem, properties


class Monitor:
    """The real pyudev monitor (its socket stays attached to the loop) with events of ours
    queued in front of what the kernel sends."""

    def __init__(self, real: Any) -> None:
        self.real, self.queued = real, []  # type: ignore[var-annotated]

    def fileno(self) -> int:
        return int(self.real.fileno())

    def poll(self, timeout: float = 0) -> Any:
        return self.queued.pop(0) if self.queued else self.real.poll(timeout=timeout)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(d: Path, key: str, cert: Path, metrics: int) -> str:
    ike, natt = free_udp_ports(2)
    return PikeConf(
        daemon={
            "control_socket": str(d / "pike.sock"),
            "ike_port": ike,
            "natt_port": natt,
            "metrics_listen": f"127.0.0.1:{metrics}",
        },
        connections=[
            Conn(
                name="gw",
                local_addrs=["127.0.0.1"],
                remote_addrs=["127.0.0.9"],
                proposals=["aes128gcm16-prfsha256-x25519"],
                local={
                    "auth": "pubkey",
                    "id": "gw.example.net",
                    "certs": [str(cert)],
                    "key": key,
                },
                remote={"auth": "psk", "id": "hq.example.net"},
            )
        ],
        secrets=[Secret("gw", "test-only-psk-0c81d2", ["gw.example.net", "hq.example.net"])],
    ).render()


def test_token_events_reprobe_at_once(
    softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIKE_PIN", USER_PIN)
    softhsm.init("usbtok")
    _generate(softhsm.module, "usbtok", "ecdsa-p256", "ike")
    key = uri(softhsm.module, "usbtok", "ike")
    cert = provision.self_signed(
        Pkcs11Signer(key), x509.Name.from_rfc4514_string("CN=gw.example.net"), []
    )
    pem = tmp_path / "gw.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    port = _free_tcp_port()
    cfg = load_config_text(_config(tmp_path, key, pem, port), str(tmp_path / "pike.toml"))
    store = CredentialStore()
    assert store.preload(cfg) == []  # as piked does before it starts: logs in
    assert store.tokens() == {"usbtok": "ready"}

    watchers: list[HotplugWatcher] = []

    class Recorded(HotplugWatcher):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            watchers.append(self)

    monkeypatch.setattr(hotplug, "HotplugWatcher", Recorded)

    daemon = runtime.Daemon(cfg, NoKernel("test"), _engine, ipv6=False, credentials=store)

    def present() -> str:
        url = f"http://127.0.0.1:{port}/metrics"
        for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
            if line.startswith('pike_token_present{token="usbtok"}'):
                return line.split()[-1]
        return "missing"

    async def until(state: str) -> float:
        t0 = time.monotonic()
        while store.tokens()["usbtok"] != state:
            assert time.monotonic() - t0 < 3.0, store.tokens()
            await asyncio.sleep(0.02)
        return time.monotonic() - t0

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 10)
        while not watchers:  # started right after ready
            await asyncio.sleep(0.01)
        [watcher] = watchers
        mon = Monitor(watcher._monitor)
        watcher._monitor = mon
        assert await loop.run_in_executor(None, present) == "1.0"

        away = softhsm.pull()
        await asyncio.sleep(0.2)
        assert store.tokens() == {"usbtok": "ready"}  # nothing has looked at it yet
        mon.queued.append(Device("remove", "usb", CCID))
        assert watcher.dispatch() == 1  # as the loop does when the socket is readable
        took = await until("absent")
        assert await loop.run_in_executor(None, present) == "0.0"

        softhsm.plug(away)
        mon.queued.append(Device("add", "usb", CCID))
        # a USB hub or a mouse is not a token: no re-probe for it
        mon.queued.append(Device("add", "usb", {"DEVTYPE": "usb_device", "PRODUCT": "46d/c52b/1"}))
        assert watcher.dispatch() == 1
        back = await until("ready")
        assert back < REPROBE_INTERVAL  # not the bounded re-probe: the event did it
        assert await loop.run_in_executor(None, present) == "1.0"
        print(f"absent after {took * 1000:.0f} ms, ready again after {back * 1000:.0f} ms")
        daemon.request_stop()
        await task

    asyncio.run(scenario())


def test_reprobe_never_presents_a_refused_pin_again(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    softhsm.init("usbtok")
    _generate(softhsm.module, "usbtok", "ecdsa-p256", "ike")
    monkeypatch.setenv("PIKE_PIN", "9999")  # wrong
    signer = Pkcs11Signer(uri(softhsm.module, "usbtok", "ike"))
    assert signer.probe().value == "pin_incorrect"
    # a token event re-probes at once, but the refused PIN is not presented again
    assert signer.reprobe().value == "pin_incorrect"
    assert "not presented again" in signer.token.reason
    monkeypatch.setenv("PIKE_PIN", USER_PIN)  # the operator fixed the PIN source
    assert signer.reprobe().value == "ready"
