"""DPD for IKEv1 (RFC 3706): when to send R-U-THERE and when the peer is dead.

R-U-THERE goes after ``dpd_delay`` without a sign of life (``pike.sa.liveness``, as for
IKEv2), each retry with the next sequence number. Without ``dpd_timeout`` the retries
follow the retransmission schedule and the peer is dead once the last goes unanswered;
with it (strongSwan's IKEv1 meaning) a probe goes every ``dpd_delay`` and the peer is
dead after ``dpd_timeout`` without any sign of life. The first R-U-THERE of a check is
the probe, the others its retries (``pike.sa.liveness``: counted as IKEv2 counts them).
"""

from __future__ import annotations

from typing import Literal

from pike.ikev1.isakmp_sa import IsakmpSa
from pike.policy.config import DaemonConfig
from pike.sa.liveness import last_sign_of_life, probe_retried, probe_sent


def due(sa: IsakmpSa) -> float | None:
    """When the next DPD decision is due (None: DPD off)."""
    conn = sa.conn
    if conn is None or not conn.dpd_delay:
        return None
    if not sa.dpd_outstanding:
        return sa.last_inbound + conn.dpd_delay
    if conn.dpd_timeout and sa.dpd_deadline is not None:
        return min(sa.dpd_deadline, sa.last_inbound + conn.dpd_timeout)
    return sa.dpd_deadline


def check(sa: IsakmpSa, now: float, daemon: DaemonConfig) -> Literal["wait", "probe", "dead"]:
    """Decide at ``now``; on "probe" (a new one or a retry, logged and counted) the SA's
    sequence number and deadline have moved."""
    when, conn = due(sa), sa.conn
    if when is None or now < when or conn is None:
        return "wait"
    sa.last_inbound = last_sign_of_life(sa.last_inbound, sa.children, now)
    if sa.dpd_outstanding and now < sa.last_inbound + conn.dpd_delay:
        sa.dpd_outstanding, sa.dpd_deadline = False, None  # traffic answered for it
    when = due(sa)
    if when is None or now < when:
        return "wait"
    if sa.dpd_outstanding:
        if conn.dpd_timeout:
            dead = now >= sa.last_inbound + conn.dpd_timeout
        else:
            dead = sa.dpd_tries >= daemon.retransmit_tries
        if dead:
            return "dead"
        sa.dpd_tries += 1
        probe_retried(sa.ctx, sa.tag(), sa.name, sa.dpd_tries)
    else:
        probe_sent(sa.ctx, sa.tag(), sa.name, conn.dpd_delay)
        sa.dpd_outstanding, sa.dpd_tries = True, 0
    step = conn.dpd_delay if conn.dpd_timeout else sa.timeout(sa.dpd_tries)
    sa.dpd_deadline = now + step
    sa.dpd_seq = (sa.dpd_seq + 1) & 0xFFFFFFFF
    return "probe"
