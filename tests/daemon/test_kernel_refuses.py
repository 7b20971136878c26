"""The kernel refusing an SA (EEXIST, ENOMEM: issue 13): the runtime undoes what it
installed of that CHILD_SA, the engine deletes it with the peer, the IKE SA stays up and
the daemon keeps running."""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pike.cli.piked import _engine
from pike.daemon.runtime import Daemon
from pike.kernel.interface import KernelError
from pike.policy.ipsec import SaSpec

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
