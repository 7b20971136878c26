"""The runtime's side of the IKEv2 lifecycle, with a fake engine and a fake kernel:
NAT-T keepalives on the wire, trap policies, kernel ACQUIRE/EXPIRE events dispatched to the
engine, ESP activity for DPD on the engine's clock, the SPI fallback, the ``rekey`` command.

Real sockets on loopback (random ports), real control socket; nothing touches the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from pike.cli import pikectl
from pike.daemon.control import request
from pike.daemon.runtime import Daemon, Engine
from pike.kernel.events import Acquire, Expire, KernelEvent
from pike.kernel.interface import KernelError
from pike.kernel.xfrm_selectors import Selector
from pike.metrics import recorder as recorder_module
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps, PolicySpec, SaCounters, SaSpec
from pike.policy.ts import IPAddress, TrafficSelector
from pike.sa.actions import (
    Action,
    IkeSaInfo,
    InstallChildSa,
    InstallTrap,
    ResolveRequest,
    SendKeepalive,
)
from pike.sa.log_limit import LogLimit
from pike.sa.ports import FALLBACK_SPI_MAX, FALLBACK_SPI_MIN, SpiSource
from pike.sa.state import RekeyRefused

from .helpers import loopback_gateway

POLICY = PolicySpec(
    TrafficSelector.from_cidr("10.1.0.0/24"),
    TrafficSelector.from_cidr("10.2.0.0/24"),
    "out",
    7,
    "tunnel",
    ip_address("127.0.0.1"),
    ip_address("127.0.0.2"),
    trap=True,
)


class FakeKernel:
    """ESP-capable on paper; events come through a socketpair the test writes to."""

    def __init__(self, *, spi_fails: bool = False, last_use: float | None = None) -> None:
        self.spi_fails = spi_fails
        self.last_use = last_use
        self.packets = 1
        self.policies: list[PolicySpec] = []
        self.queries: list[tuple[IPAddress, int]] = []
        self.events: deque[KernelEvent] = deque()
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self.closed = False

    def push(self, *events: KernelEvent) -> None:
        self.events.extend(events)
        self._w.send(b"x")

    def probe(self) -> KernelCaps:
        return KernelCaps(esp=True)

    def get_spi(self, src: IPAddress, dst: IPAddress, reqid: int) -> int:
        if self.spi_fails:
            raise KernelError("allocate SPI", 12)
        return 0xC0000001

    def add_sa(self, sa: SaSpec) -> None:
        pass

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        pass

    def query_sa(self, dst: IPAddress, spi: int) -> SaCounters:
        self.queries.append((dst, spi))
        return SaCounters(bytes=10 * self.packets, packets=self.packets, last_use=self.last_use)

    def add_policy(self, p: PolicySpec) -> None:
        self.policies.append(p)

    def del_policy(self, p: PolicySpec) -> None:
        self.policies.remove(p)

    def migrate(
        self,
        old_policies: tuple[PolicySpec, ...],
        policies: tuple[PolicySpec, ...],
        old_sas: tuple[SaSpec, SaSpec],
        sas: tuple[SaSpec, SaSpec],
    ) -> None:
        self.policies = [p for p in self.policies if p not in old_policies] + list(policies)

    def events_fileno(self) -> int | None:
        return self._r.fileno()

    def read_events(self) -> list[KernelEvent]:
        while True:
            try:
                self._r.recv(100)
            except BlockingIOError:
                break
        out = list(self.events)
        self.events.clear()
        return out

    def flush_installed(self) -> None:
        self.policies.clear()

    def remove_stale(self) -> tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        self.closed = True
        self._r.close()
        self._w.close()


@dataclass
class Ctx:
    offload_chains = False  # the runtime sets it: it answers CheckChain
    log_limit: LogLimit = field(default_factory=LogLimit)


@dataclass
class FakeEngine:
    spis: SpiSource
    ctx: Ctx = field(default_factory=Ctx)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    actions: deque[Action] = field(default_factory=deque)
    established: bool = True
    deadline: float | None = None  # get_timer()
    wanted: list[SaSpec] = field(default_factory=list)  # esp_wanted()
    seen: list[tuple[int, int, float | None, float]] = field(default_factory=list)

    def start(self, now: float) -> None:
        self.calls.append(("start",))

    def receive_datagram(self, data: bytes, src: Any, dst: Any, now: float) -> None:
        self.calls.append(("datagram", data, src, dst))

    def handle_timer(self, now: float) -> None:
        self.deadline = None
        self.calls.append(("timer", now))

    def get_timer(self) -> float | None:
        return self.deadline

    def esp_wanted(self, now: float) -> list[SaSpec]:
        return self.wanted

    def esp_seen(self, spi: int, packets: int, last_use: float | None, now: float) -> None:
        self.seen.append((spi, packets, last_use, now))

    def initiate(
        self, conn: str, now: float, child: str | None = None, peer: str | None = None
    ) -> None:
        self.calls.append(("initiate", conn, child))

    def active_hub(self, conn: str) -> tuple[str | None, int, int]:
        return None, 0, 0

    def terminate(self, conn: str, now: float, force: bool = False) -> None:
        self.calls.append(("terminate", conn, force))

    def resolved(self, conn: str, addresses: tuple[str, ...], now: float) -> None:
        self.calls.append(("resolved", conn, addresses))

    def terminate_child(self, conn: str, child: str, now: float) -> None:
        if not self.established:
            raise KeyError(f"{conn}.{child}: no CHILD_SA up")
        self.calls.append(("terminate_child", conn, child))

    def rekey(self, conn: str, now: float, child: str | None = None) -> None:
        if not self.established:
            raise KeyError(f"{conn} has no established IKE SA")
        self.calls.append(("rekey", conn, child))
        if child is not None:  # as the engine answers for a child that is not INSTALLED
            raise RekeyRefused(f"{conn}.{child}: CHILD_SA is REKEYING, not INSTALLED: not rekeyed")

    def acquire(self, reqid: int, now: float) -> None:
        self.calls.append(("acquire", reqid))

    def child_expired(self, spi: int, hard: bool, now: float) -> None:
        self.calls.append(("expired", spi, hard))

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None:
        self.calls.append(("sign_done", ref, now))

    def chain_checked(self, ref: int, result: tuple[int, ...] | Exception, now: float) -> None:
        self.calls.append(("chain_checked", ref))

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        pass

    def next_action(self) -> Action | None:
        return self.actions.popleft() if self.actions else None

    def drop_revoked(self, revoked: Any, now: float) -> list[str]:
        return []

    def peer_paths(self) -> list[Any]:
        return []

    def list_sas(self) -> list[IkeSaInfo]:
        return []

    def mobike_peers(self) -> set[str]:
        return set()

    def paths_changed(
        self, addresses: tuple[str, ...], sources: Mapping[str, str | None], now: float
    ) -> None:
        pass


def _run(daemon: Daemon, body: Any) -> Any:
    async def scenario() -> Any:
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 5)
        try:
            return await body()
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(task, 5) == 0

    return asyncio.run(scenario())


def _daemon(tmp_path: Path, kernel: FakeKernel) -> tuple[Daemon, list[FakeEngine], int]:
    cfg, _ike, natt = loopback_gateway(tmp_path)
    engines: list[FakeEngine] = []

    def factory(config: Config, caps: KernelCaps, spis: SpiSource, *_: Any) -> FakeEngine:
        engines.append(FakeEngine(spis))
        return engines[-1]

    # FakeEngine has the calls the daemon makes, not the whole Engine
    return Daemon(cfg, kernel, factory, ipv6=False), engines, natt


def test_keepalive_is_one_ff_octet_without_marker(tmp_path: Path) -> None:
    """RFC 3948 §2.3: from the NAT-T socket, exactly b'\\xff' (no non-ESP marker)."""
    kernel = FakeKernel()
    daemon, engines, natt = _daemon(tmp_path, kernel)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    port = peer.getsockname()[1]

    async def body() -> tuple[bytes, Any]:
        engines[0].actions.append(SendKeepalive(("127.0.0.1", natt), ("127.0.0.1", port)))
        daemon._pump()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, peer.recvfrom, 100)

    data, src = _run(daemon, body)
    peer.close()
    assert data == b"\xff"
    assert src == ("127.0.0.1", natt)
    assert daemon.stats["keepalives_out"] == 1


def test_names_are_resolved_off_the_loop_and_answered(tmp_path: Path) -> None:
    """ResolveRequest: the runtime looks the name up (getaddrinfo in the executor) and
    answers the engine; a name that does not resolve is answered with no addresses."""
    daemon, engines, _natt = _daemon(tmp_path, FakeKernel())

    async def body() -> list[tuple[Any, ...]]:
        engines[0].actions.append(ResolveRequest("hq", "localhost", 4))
        engines[0].actions.append(ResolveRequest("hq", "no-such-host.invalid", 0))
        daemon._pump()
        for _ in range(200):
            answers = [c for c in engines[0].calls if c[0] == "resolved"]
            if len(answers) == 2:
                return answers
            await asyncio.sleep(0.1)
        raise AssertionError(f"no answers: {engines[0].calls}")

    answers = _run(daemon, body)
    assert ("resolved", "hq", ("127.0.0.1",)) in answers
    assert ("resolved", "hq", ()) in answers


def test_trap_policies_installed_and_events_reach_engine(tmp_path: Path) -> None:
    kernel = FakeKernel()
    daemon, engines, _natt = _daemon(tmp_path, kernel)
    sel = Selector(POLICY.src_ts.networks()[0], POLICY.dst_ts.networks()[0])

    async def body() -> None:
        engines[0].actions.append(InstallTrap("hq", "lan", 7, (POLICY,)))
        daemon._pump()
        kernel.push(
            Acquire(7, ip_address("127.0.0.1"), ip_address("127.0.0.2"), sel),
            Expire(0xC0001234, ip_address("127.0.0.1"), hard=False),
            Expire(0xC0001234, ip_address("127.0.0.1"), hard=True),
        )
        deadline = time.monotonic() + 2
        while len(engines[0].calls) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    _run(daemon, body)
    assert engines[0].calls[1:] == [
        ("acquire", 7),
        ("expired", 0xC0001234, False),
        ("expired", 0xC0001234, True),
    ]
    assert daemon.stats["kernel_events"] == 3
    assert kernel.policies == []  # flushed on shutdown
    assert kernel.closed


def test_kernel_counters_reach_the_engine_before_its_timer(tmp_path: Path) -> None:
    """Before each timer the runtime reports the counters of the inbound SAs the engine
    wants (esp_wanted), the kernel's wall-clock last use moved onto the engine's clock."""
    kernel = FakeKernel(last_use=time.time() - 5.0)
    daemon, engines, _natt = _daemon(tmp_path, kernel)
    spec = SaSpec(
        src=ip_address("127.0.0.2"),
        dst=ip_address("127.0.0.1"),
        spi=0xC0000042,
        reqid=1,
        mode="tunnel",
        encr_id=20,
        encr_key=bytes(20),
        encr_key_length=128,
        integ_id=0,
        integ_key=b"",
    )

    async def body() -> None:
        engine = engines[0]
        engine.wanted = [spec]
        for packets, last_use in ((3, kernel.last_use), (7, None)):
            kernel.packets, kernel.last_use = packets, last_use
            engine.deadline = daemon.clock.monotonic() + 0.05
            daemon._pump()
            deadline = time.monotonic() + 2
            while engine.deadline is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

    _run(daemon, body)
    timers = [c[1] for c in engines[0].calls if c[0] == "timer"]
    (spi, packets, last_use, at), (spi2, packets2, never, at2) = engines[0].seen
    assert (spi, packets, spi2, packets2, never) == (spec.spi, 3, spec.spi, 7, None)
    assert [at, at2] == timers  # reported at the timer's own "now", just before it
    assert last_use is not None and abs((at - last_use) - 5.0) < 1.0
    assert kernel.queries == [(spec.dst, spec.spi)] * 2


def test_spi_allocation_falls_back_to_random(tmp_path: Path, caplog: Any) -> None:
    kernel = FakeKernel(spi_fails=True)
    daemon, engines, _natt = _daemon(tmp_path, kernel)

    async def body() -> list[int]:
        spis = engines[0].spis
        return [spis.child_spi(ip_address("127.0.0.2"), ip_address("127.0.0.1")) for _ in range(20)]

    with caplog.at_level("ERROR", logger="pike.daemon"):
        spis = _run(daemon, body)
    assert all(FALLBACK_SPI_MIN <= s <= FALLBACK_SPI_MAX for s in spis)
    assert len(set(spis)) > 15
    assert sum("using random SPIs" in r.getMessage() for r in caplog.records) == 1  # once
    assert daemon.stats["spi_fallback"] == 20


def test_randomness_is_injected(tmp_path: Path) -> None:
    """Daemon(random=...) reaches the engine factory and the fallback SPIs."""
    cfg, _ike, _natt = loopback_gateway(tmp_path)
    given: list[Any] = []
    engines: list[FakeEngine] = []

    def factory(config: Config, caps: KernelCaps, spis: SpiSource, rnd: Any, _: Any) -> Engine:
        given.append(rnd)
        engines.append(FakeEngine(spis))
        return engines[-1]

    source = random.Random(11).randbytes
    daemon = Daemon(cfg, FakeKernel(spi_fails=True), factory, ipv6=False, random=source)

    async def body() -> list[int]:
        spis = engines[0].spis
        return [spis.child_spi(ip_address("127.0.0.2"), ip_address("127.0.0.1")) for _ in range(3)]

    spis = _run(daemon, body)
    again = random.Random(11)
    span = FALLBACK_SPI_MAX - FALLBACK_SPI_MIN + 1
    assert given == [source]
    assert spis == [FALLBACK_SPI_MIN + int.from_bytes(again.randbytes(4)) % span for _ in spis]


def test_rekey_command_and_pikectl(tmp_path: Path, capsys: Any) -> None:
    kernel = FakeKernel()
    daemon, engines, _natt = _daemon(tmp_path, kernel)
    sock = daemon.config.daemon.control_socket

    async def body() -> tuple[list[dict[str, Any]], list[int]]:
        loop = asyncio.get_running_loop()
        answers = [
            await loop.run_in_executor(None, request, sock, "rekey", args)
            for args in ({"conn": "hq"}, {"conn": "nope"}, {"conn": "hq", "child": "x"})
        ]
        codes = []
        for argv in (["rekey", "hq"], ["rekey", "hq.lan"], ["rekey", "hq", "nope"]):
            codes.append(await loop.run_in_executor(None, pikectl.main, ["--socket", sock, *argv]))
        engines[0].established = False
        codes.append(
            await loop.run_in_executor(None, pikectl.main, ["--socket", sock, "rekey", "hq"])
        )
        return answers, codes

    answers, codes = _run(daemon, body)
    assert answers[0] == {"ok": True, "result": {"conn": "hq", "child": None}}
    assert answers[1] == {"ok": False, "error": "no connection named 'nope'"}
    assert answers[2] == {"ok": False, "error": "connection 'hq' has no child 'x'"}
    # hq.lan: the engine refuses (its child is not INSTALLED): one line, exit status 1.
    assert codes == [0, 1, 1, 1]
    rekeys = [c for c in engines[0].calls if c[0] == "rekey"]
    assert rekeys == [("rekey", "hq", None)] * 2 + [("rekey", "hq", "lan"), ("rekey", "hq", None)]
    err = capsys.readouterr().err.splitlines()
    assert "pikectl: rekey: hq.lan: CHILD_SA is REKEYING, not INSTALLED: not rekeyed" in err


def test_terminate_command_child_and_force(tmp_path: Path, capsys: Any) -> None:
    """pikectl terminate CONN.CHILD reaches the engine's terminate_child, --force the
    forced terminate; a child that is not up or not configured exits 1 with the reason."""
    daemon, engines, _natt = _daemon(tmp_path, FakeKernel())
    sock = daemon.config.daemon.control_socket

    async def body() -> list[int]:
        loop = asyncio.get_running_loop()
        codes = []
        for argv in (["terminate", "hq.lan"], ["terminate", "--force", "hq"], ["terminate", "hq"]):
            codes.append(await loop.run_in_executor(None, pikectl.main, ["--socket", sock, *argv]))
        codes.append(
            await loop.run_in_executor(None, pikectl.main, ["--socket", sock, "terminate", "hq.x"])
        )
        engines[0].established = False
        codes.append(
            await loop.run_in_executor(
                None, pikectl.main, ["--socket", sock, "terminate", "hq.lan"]
            )
        )
        return codes

    codes = _run(daemon, body)
    assert codes == [0, 0, 0, 1, 1]
    terms = [c for c in engines[0].calls if c[0].startswith("terminate")]
    assert terms == [
        ("terminate_child", "hq", "lan"),
        ("terminate", "hq", True),
        ("terminate", "hq", False),
    ]
    err = capsys.readouterr().err
    assert "has no child 'x'" in err and "hq.lan: no CHILD_SA up" in err


def test_pikectl_rekey_unreachable(tmp_path: Path) -> None:
    assert pikectl.main(["--socket", str(tmp_path / "none.sock"), "rekey", "hq"]) == 2


@pytest.mark.parametrize("argv", [["rekey"], ["rekey", "--bogus", "hq"]])
def test_pikectl_rekey_usage(argv: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        pikectl.main(["--socket", str(tmp_path / "s"), *argv])
    assert e.value.code == 2


def _install(unique_id: int) -> InstallChildSa:
    """An InstallChildSa of ``hq.lan`` (``loopback_gateway``'s) with one outbound policy."""
    a, b = ip_address("127.0.0.1"), ip_address("127.0.0.2")
    sa = SaSpec(a, b, 0, 1, "tunnel", 20, bytes(20), 128, 0, b"")
    ts_a, ts_b = TrafficSelector.from_cidr("10.1.0.0/16"), TrafficSelector.from_cidr("10.2.0.0/16")
    policy = PolicySpec(ts_a, ts_b, "out", 1, "tunnel", a, b)
    inbound = replace(sa, src=b, dst=a, spi=0xC0 + unique_id, inbound=True)
    return InstallChildSa("hq", "lan", unique_id, inbound, replace(sa, spi=0xD0), (policy,))


def test_actions_reach_the_handlers_that_care_in_order_and_failures_stay_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An InstallChildSa goes to the metrics, then to the tunnels only when the config has
    an updown or interface child (the routes follow a reload), then to the kernel; an
    observer that raises is logged and the kernel still gets the CHILD_SA."""
    daemon, engines, _natt = _daemon(tmp_path, kernel := FakeKernel())
    order: list[str] = []

    def broken_record(recorder: Any, a: InstallChildSa) -> None:
        order.append(f"metrics {a.unique_id}")
        raise RuntimeError("a bug in the metrics")

    monkeypatch.setitem(recorder_module._RECORDS, InstallChildSa, broken_record)
    monkeypatch.setattr(daemon.tunnels, "observe", lambda a: order.append(f"tunnels {a.unique_id}"))
    monkeypatch.setattr(kernel, "add_sa", lambda sa: order.append(f"kernel {sa.spi & 0xF}"))

    async def body() -> int:
        engines[0].actions.append(_install(1))
        daemon._pump()
        # a reload gives the child an updown script: installs now go to the tunnels too
        conn = daemon.config.connections["hq"]
        lan = replace(conn.children[0], updown="/bin/true")
        connections = {**daemon.config.connections, "hq": replace(conn, children=(lan,))}
        daemon.config = replace(daemon.config, connections=connections)
        daemon.reroute()
        engines[0].actions.append(_install(2))
        daemon._pump()
        return len(kernel.policies)

    with caplog.at_level(logging.ERROR, "pike.daemon"):
        policies = _run(daemon, body)
    assert order == [
        "metrics 1",
        "kernel 1",
        "kernel 0",  # the outbound SA (SPI 0xD0)
        "metrics 2",
        "tunnels 2",
        "kernel 2",
        "kernel 0",
    ]
    assert caplog.text.count("handling InstallChildSa failed") == 2
    assert policies == 2  # both CHILD_SAs' policies went in
