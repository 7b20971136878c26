"""What starts again after an IKE SA ended: dpd_action=restart and keyingtries.

The engine removes destroyed IKE SAs after every step and asks this module which
connections to initiate again, in order: peers found dead first, then initiations whose
retransmissions all went unanswered.
"""

from __future__ import annotations

from dataclasses import dataclass

from pike.ikev2.hooks import Ikev2Context
from pike.ikev2.ike_sa import IkeSa
from pike.ikev2.log import log


@dataclass(frozen=True)
class Restart:
    conn: str
    children: tuple[str, ...]  # the first in IKE_AUTH, the others after; (): the first
    keyingtry: int  # attempts of keyingtries that went before this one
    note: str  # the log line that says why


def _asked_for(sa: IkeSa) -> tuple[str, ...]:
    """The children an unanswered initiation asked for, so that a retry asks again."""
    from pike.ikev2.tasks.child_create import ChildCreate

    names = [sa.initiate_child] if sa.initiate_child else []
    for t in (*sa.tasks.active, *sa.tasks.queued):
        if isinstance(t, ChildCreate) and t.config is not None and t.config.name not in names:
            names.append(t.config.name)
    return tuple(names)


def restarts(ctx: Ikev2Context, ended: list[IkeSa]) -> list[Restart]:
    """Count DPD failures of the ``ended`` IKE SAs and say which to initiate again."""
    dead_peers: list[Restart] = []
    retries: list[Restart] = []
    for sa in ended:
        conn = sa.conn
        if retries_after(ctx, sa):
            assert conn is not None
            note = (
                f"{sa.tag()}: peer not responding, trying again "
                f"({sa.keyingtry + 2}/{conn.keyingtries or 'forever'})"
            )
            retries.append(Restart(conn.name, _asked_for(sa), sa.keyingtry + 1, note))
        elif conn is not None and _unanswered(sa) and ctx.config.connections.get(conn.name) == conn:
            log.warning(
                "%s: peer not responding, giving up after %d attempt(s) (keyingtries = %d)",
                sa.tag(),
                sa.keyingtry + 1,
                conn.keyingtries,
            )
        dead = sa.established_at is not None and sa.delete_reason == "retransmit_timeout"
        if conn is not None and dead and sa.dpd_outstanding:
            ctx.counters.conn(conn.name).dpd_failures += 1
        if conn is not None and dead and conn.dpd_action == "restart":
            note = f"{conn.name}: peer is dead, dpd_action=restart: initiating again"
            dead_peers.append(Restart(conn.name, sa.lost_children, 0, note))
    return dead_peers + retries


def retries_after(ctx: Ikev2Context, sa: IkeSa) -> bool:
    """keyingtries (strongSwan's meaning): an initiation whose retransmissions all went
    unanswered starts again, up to keyingtries attempts in all (0: until it works).
    Errors the peer answered (NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED...) are final.
    The retransmission sequence (retransmit_timeout x base^n) spaces the attempts."""
    conn = sa.conn
    if conn is None or not _unanswered(sa) or ctx.config.connections.get(conn.name) != conn:
        return False  # not an unanswered initiation, or its connection removed or changed
    return conn.keyingtries == 0 or sa.keyingtry + 1 < conn.keyingtries


def _unanswered(sa: IkeSa) -> bool:
    """An initiation of ours that never came up because the peer never answered."""
    return sa.initiator and sa.established_at is None and sa.delete_reason == "retransmit_timeout"
