"""CHILD_SAs as ``pikectl list-sas`` and the metrics see them (both IKE versions)."""

from __future__ import annotations

from pike.crypto.proposal import format_transforms
from pike.sa.actions import ChildSaInfo
from pike.sa.child_sa import ChildSa


def child_info(c: ChildSa) -> ChildSaInfo:
    return ChildSaInfo(
        name=c.name,
        unique_id=c.unique_id,
        state=c.state.value,
        mode=c.mode.upper(),
        protocol="ESP",
        spi_in=c.spi_in,
        spi_out=c.spi_out,
        local_ts=tuple(str(t) for t in c.local_ts),
        remote_ts=tuple(str(t) for t in c.remote_ts),
        algorithms=format_transforms(c.chosen.triples()) if c.chosen else "",
        inbound=c.inbound,
        outbound=c.outbound,
        installed_at=c.installed_at,
        rekey_at=c.rekey_at,
        expire_at=c.expire_at,
    )
