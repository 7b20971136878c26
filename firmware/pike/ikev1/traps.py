"""On-demand tunnels (start_action = trap) for IKEv1: the shared trap table.

The reqids, ACQUIRE lookups and reload handling are shared with IKEv2; only putting a
child's own policies back as traps differs (dpd_action = trap): IKEv1 marks them so.
"""

from __future__ import annotations

from dataclasses import replace

from pike.policy.config import ConnectionConfig
from pike.sa import traps
from pike.sa.child_sa import ChildSa


class Traps(traps.Traps):
    def install(
        self, conn: ConnectionConfig, child_name: str, reqid: int, child: ChildSa | None
    ) -> None:
        """Policies without SAs: the kernel asks (XFRM ACQUIRE) when traffic matches."""
        if child is not None:
            child = replace(child, policies=tuple(replace(p, trap=True) for p in child.policies))
        super().install(conn, child_name, reqid, child)
