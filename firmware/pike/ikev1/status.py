"""ISAKMP SAs as ``pikectl list-sas`` and the metrics see them: the IKEv2 engine's views,
with version 1."""

from __future__ import annotations

from pike.ikev1.isakmp_sa import IsakmpSa, id_text
from pike.sa.actions import IkeSaInfo
from pike.sa.status import child_info


def sa_info(sa: IsakmpSa) -> IkeSaInfo:
    return IkeSaInfo(
        name=sa.name,
        unique_id=sa.unique_id,
        state=sa.state.value,
        version=1,
        initiator=sa.initiator,
        local=sa.local,
        remote=sa.remote,
        local_id=id_text(sa.my_id),
        remote_id=id_text(sa.peer_id),
        spi_i=sa.spi_i,
        spi_r=sa.spi_r,
        algorithms=sa.choice.name() if sa.choice else "",
        established_at=sa.established_at,
        nat_local=sa.nat_local,
        nat_remote=sa.nat_remote,
        children=tuple(child_info(c) for c in sa.children),
        last_inbound=sa.last_inbound if sa.established_at is not None else None,
        dpd_outstanding=sa.dpd_outstanding,
        keepalive_at=sa.keepalive_at,
        reauth_at=sa.reauth_at,  # IKEv1 has no phase-1 rekey
    )
