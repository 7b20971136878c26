"""IKE and CHILD SAs as ``pikectl list-sas`` and the metrics see them."""

from __future__ import annotations

from pike.crypto.proposal import format_transforms
from pike.ikev2.ike_sa import IkeSa
from pike.sa.actions import IkeSaInfo
from pike.sa.status import child_info


def sa_info(sa: IkeSa) -> IkeSaInfo:
    return IkeSaInfo(
        name=sa.name,
        unique_id=sa.unique_id,
        state=sa.state.value,
        version=2,
        initiator=sa.initiator,
        local=sa.local,
        remote=sa.remote,
        local_id=str(sa.my_id) if sa.my_id else "",
        remote_id=str(sa.peer_id) if sa.peer_id else "",
        spi_i=sa.spi_i,
        spi_r=sa.spi_r,
        algorithms=format_transforms(sa.chosen.triples()) if sa.chosen else "",
        established_at=sa.established_at,
        nat_local=sa.nat_local,
        nat_remote=sa.nat_remote,
        children=tuple(child_info(c) for c in sa.children),
        last_inbound=sa.last_inbound if sa.established_at is not None else None,
        dpd_outstanding=sa.dpd_outstanding,
        keepalive_at=sa.keepalive_at,
        rekey_at=sa.rekey_at,
        reauth_at=sa.reauth_at,
        ppk=sa.ppk_used,
        mobike=sa.mobike,
        peer_addrs=sa.peer_addrs,
    )
