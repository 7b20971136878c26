"""A DNS name in remote_addrs with two real daemons over loopback: piked resolves
``localhost`` off its event loop at initiation (``ResolveRequest``) and the IKE SA comes
up with the address it got."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pike.cli.piked import _engine
from pike.daemon.nokernel import NoKernel
from pike.daemon.runtime import Daemon

from .helpers import gateway_pair
from .test_runtime_loopback import _established, _until


def test_remote_addrs_name_is_resolved_at_initiation(tmp_path: Path) -> None:
    cfg_a, cfg_b = gateway_pair(
        tmp_path,
        a_local="127.0.0.2",
        a_remote="localhost",
        b_local="127.0.0.1",
        b_remote="127.0.0.2",
    )
    assert cfg_a.connections["hq"].remote_addrs == ("localhost",)
    a = Daemon(cfg_a, NoKernel("test"), _engine, ipv6=False)
    b = Daemon(cfg_b, NoKernel("test"), _engine, ipv6=False)

    async def scenario() -> list[dict[str, object]]:
        tb = asyncio.create_task(b.run())
        await asyncio.wait_for(b.ready.wait(), 5)
        ta = asyncio.create_task(a.run())
        await asyncio.wait_for(a.ready.wait(), 5)
        sas = await _until(cfg_a.daemon.control_socket, _established)
        a.request_stop()
        b.request_stop()
        assert await asyncio.wait_for(asyncio.gather(ta, tb), 5) == [0, 0]
        return sas

    (sa,) = asyncio.run(scenario())
    assert sa["state"] == "ESTABLISHED"
    assert sa["remote_addr"] == "127.0.0.1"  # what localhost resolved to (IPv4, as our address)
