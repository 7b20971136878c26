"""What starts again after the peer of an ISAKMP SA stopped answering.

An established SA follows ``dpd_action = restart``; one still connecting follows
``keyingtries`` (0: until it works). Only the side that initiated starts again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pike.ikev1.isakmp_sa import IsakmpSa


@dataclass(frozen=True)
class Restart:
    children: list[str]  # the children to negotiate once phase 1 is up
    attempt: int  # which attempt of keyingtries the new SA is
    note: str | None  # the log line that says why


def restart(sa: IsakmpSa, established: bool, wanted: list[str]) -> Restart | None:
    """The new initiation after ``sa`` was lost, if any; ``wanted``: the children it
    carried (established: strongSwan restarts all of them) or still waited for."""
    conn = sa.conn
    if conn is None or not sa.initiator:
        return None
    if established and conn.dpd_action == "restart":
        return Restart(wanted or [c.name for c in conn.children][:1], 1, None)
    if not established and (conn.keyingtries == 0 or sa.attempt < conn.keyingtries):
        note = f"{conn.name}: keyingtries: attempt {sa.attempt + 1}"
        return Restart(wanted, sa.attempt + 1, note)
    return None
