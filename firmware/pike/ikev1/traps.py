"""On-demand tunnels (start_action = trap) for IKEv1: the IKEv2 engine's trap table.

The reqids, ACQUIRE lookups and reload handling are shared with IKEv2; only putting a
child's own policies back as traps differs (dpd_action = trap): IKEv1 marks them so.
"""

from __future__ import annotations

from dataclasses import replace

from pike.ikev2 import traps
from pike.ikev2.child_sa import ChildSa
from pike.policy.config import ConnectionConfig


class Traps(traps.Traps):
    def install(
        self, conn: ConnectionConfig, child_name: str, reqid: int, child: ChildSa | None
    ) -> None:
        """Policies without SAs: the kernel asks (XFRM ACQUIRE) when traffic matches."""
        if child is not None:
            child = replace(child, policies=tuple(replace(p, trap=True) for p in child.policies))
        super().install(conn, child_name, reqid, child)
