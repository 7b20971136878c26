"""The kernel refusing an SA (EEXIST, ENOMEM: issue 13): the runtime undoes what it
installed of that CHILD_SA, the engine deletes it with the peer, the IKE SA stays up and
the daemon keeps running."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import Counter
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from pike.cli.piked import _engine
from pike.daemon.dataplane import DataPlane
from pike.daemon.runtime import Daemon
from pike.kernel.interface import KernelError
from pike.policy.ipsec import PolicySpec, SaSpec
from pike.policy.ts import IPAddress, TrafficSelector
from pike.sa.actions import InstallChildSa

from .helpers import gateway_pair
from .test_runtime_lifecycle import FakeKernel
from .test_runtime_loopback import _ask, _established, _until


class RefusingKernel(FakeKernel):
    """ESP-capable, but the kernel already holds an SA with each SPI we add."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.refused = 0

    def add_sa(self, sa: SaSpec) -> None:
        self.refused += 1
        raise KernelError(f"add SA {sa.spi:08x}", self.code)


@pytest.mark.parametrize("code", [errno.EEXIST, errno.ENOMEM])
def test_refused_sa_is_undone_and_deleted_with_the_peer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    caplog.set_level(logging.INFO)
    cfg_a, cfg_b = gateway_pair(tmp_path)
    # The helper's configs give both ends the same selectors: b's are the mirror image.
    conn = cfg_b.connections["hq"]
    child = conn.children[0]
    mirrored = replace(child, local_ts=child.remote_ts, remote_ts=child.local_ts)
    cfg_b = replace(cfg_b, connections={"hq": replace(conn, children=(mirrored,))})

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
        ka, kb = FakeKernel(), RefusingKernel(code)
        a = Daemon(cfg_a, ka, _engine, ipv6=False)
        b = Daemon(cfg_b, kb, _engine, ipv6=False)
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
        sock_a, sock_b = cfg_a.daemon.control_socket, cfg_b.daemon.control_socket
        await _until(sock_b, _established)

        def no_children(sas: list[dict[str, Any]]) -> bool:
            return _established(sas) and not sas[0]["children"]

        sas_a = await _until(sock_a, no_children)
        sas_b = await _until(sock_b, no_children)
        status = await _ask(sock_b, "status")
        assert status["ok"]
        a.request_stop()
        b.request_stop()
        assert await asyncio.wait_for(asyncio.gather(ta, tb), 5) == [0, 0]
        return sas_a, sas_b, kb.refused, len(kb.policies)

    sas_a, sas_b, refused, policies = asyncio.run(scenario())
    assert refused >= 1
    assert policies == 0  # nothing of the refused CHILD_SA is left in b's kernel
    assert sas_a[0]["state"] == sas_b[0]["state"] == "ESTABLISHED"
    assert sas_a[0]["children"] == [] and sas_b[0]["children"] == []
    assert "install failed" in caplog.text
    assert "Traceback" not in caplog.text


class _Engine:
    def __init__(self) -> None:
        self.failed: list[tuple[int, str]] = []
        self.spis: list[int | None] = []  # what finds the SA without a walk

    def acquire(self, reqid: int, now: float) -> None: ...
    def child_expired(self, spi: int, hard: bool, now: float) -> None: ...

    def child_install_failed(
        self, unique_id: int, reason: str, now: float, spi: int | None = None
    ) -> None:
        self.failed.append((unique_id, reason))
        self.spis.append(spi)


class _KernelLog(FakeKernel):
    """Records each add and delete in order; refuses the ``refuse``-th add (1-based)."""

    def __init__(self, refuse: int) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []
        self._adds, self._refuse = 0, refuse

    def _add(self, what: str, item: object) -> None:
        self._adds += 1
        if self._adds == self._refuse:
            raise KernelError(f"add {what}", errno.ENOMEM)
        self.calls.append((f"add_{what}", item))

    def add_sa(self, sa: SaSpec) -> None:
        self._add("sa", sa.spi)

    def add_policy(self, p: PolicySpec) -> None:
        self._add("policy", p.direction)

    def del_sa(self, dst: IPAddress, spi: int) -> None:
        self.calls.append(("del_sa", spi))

    def del_policy(self, p: PolicySpec) -> None:
        self.calls.append(("del_policy", p.direction))


def _child(defer_outbound: bool = False) -> InstallChildSa:
    a, b = ip_address("192.0.2.1"), ip_address("192.0.2.2")
    sa = SaSpec(a, b, 0, 1, "tunnel", 20, bytes(20), 128, 0, b"")
    ts_a, ts_b = TrafficSelector.from_cidr("10.1.0.0/16"), TrafficSelector.from_cidr("10.2.0.0/16")
    policies = tuple(
        PolicySpec(src, dst, direction, 1, "tunnel", a, b)  # type: ignore[arg-type]
        for src, dst, direction in ((ts_b, ts_a, "in"), (ts_b, ts_a, "fwd"), (ts_a, ts_b, "out"))
    )
    inbound, outbound = replace(sa, src=b, dst=a, spi=0xC1, inbound=True), replace(sa, spi=0xC2)
    return InstallChildSa("hq", "net", 7, inbound, outbound, policies, defer_outbound)


@pytest.mark.parametrize(
    ("refuse", "defer", "what", "undone"),
    [
        (1, False, "sa", []),  # the inbound SA: nothing went in
        (2, False, "sa", [("del_sa", 0xC1)]),
        (4, False, "policy", [("del_policy", "in"), ("del_sa", 0xC2), ("del_sa", 0xC1)]),
        (3, True, "policy", [("del_policy", "in"), ("del_sa", 0xC1)]),  # no outbound SA yet
    ],
)
def test_a_refused_install_undoes_what_went_in_newest_first(
    refuse: int, defer: bool, what: str, undone: list[tuple[str, object]]
) -> None:
    kernel, engine = _KernelLog(refuse), _Engine()
    plane = DataPlane(
        kernel, lambda: engine, lambda: 5.0, lambda: None, lambda: None, Counter(), os.urandom
    )
    assert plane.do(_child(defer))
    added = [c for c in kernel.calls if c[0].startswith("add_")]
    assert len(added) == refuse - 1
    assert kernel.calls[len(added) :] == undone
    assert engine.failed == [(7, str(KernelError(f"add {what}", errno.ENOMEM)))]
    assert engine.spis == [0xC1]  # the inbound SA's
