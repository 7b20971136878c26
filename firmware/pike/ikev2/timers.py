"""The clock of an established IKE SA: when it next needs the engine and what each
deadline does.

CHILD_SA life_time and rekey_time, the IKE SA's rekey_time and reauth_time, the
responder's half-open timeout, DPD (a probe only when neither IKE nor ESP brought news
within dpd_delay) and NAT-T keepalives. All times are passed in (sans-I/O).
"""

from __future__ import annotations

import logging

from pike.ikev2.ike_sa import IkeSa, Ikev2Context
from pike.ikev2.log import log
from pike.ikev2.tasks.child_create import ChildCreate
from pike.ikev2.tasks.child_delete import ChildDelete
from pike.ikev2.tasks.ike_delete import Informational
from pike.ikev2.tasks.ike_rekey import IkeRekey
from pike.sa.actions import SendKeepalive
from pike.sa.child_sa import ChildSa
from pike.sa.context import HALF_OPEN_TIMEOUT
from pike.sa.liveness import last_sign_of_life, probe_sent
from pike.sa.state import ChildState, IkeState
from pike.sa.timer_queue import is_set
from pike.wire.constants import ExchangeType

# asked after every message: an Enum member lookup is slow on Python 3.11
_CONNECTING, _ESTABLISHED = IkeState.CONNECTING, IkeState.ESTABLISHED


def half_open_deadline(sa: IkeSa) -> float | None:
    """A responder's IKE SA that never completes goes after HALF_OPEN_TIMEOUT."""
    if sa.initiator or sa.state is not _CONNECTING:
        return None
    return sa.created_at + HALF_OPEN_TIMEOUT


def deadlines(sa: IkeSa) -> list[float | None]:
    times = [
        sa.tasks.deadline,
        sa.tasks.sign_deadline,
        half_open_deadline(sa),
        sa.dpd_due(),
    ]
    if sa.state is _ESTABLISHED:
        times += [sa.rekey_at, sa.keepalive_at]
        if sa.replaced_by is None:
            times.append(sa.reauth_at)
    times.extend(c.next_deadline() for c in sa.children)
    return times


def next_deadline(sa: IkeSa) -> float | None:
    """The earliest of ``deadlines(sa)``: the SA's one entry in the engine's timer heap.
    (Asked after every step of every SA: its own deadlines then its children's, filtered
    and compared in C rather than in a list built here.)"""
    tasks = sa.tasks
    sign = tasks.pending.deadline if tasks.pending is not None else None
    times: tuple[float | None, ...]
    if sa.state is _ESTABLISHED:  # no half-open timeout then
        seldom = sa.seldom  # (reauth_time and reauthentication: in it)
        reauth = seldom.reauth_at if seldom is not None and seldom.replaced_by is None else None
        times = (tasks.deadline, sign, sa.dpd_due(), sa.rekey_at, sa.keepalive_at, reauth)
    else:  # (no DPD before established)
        times = (tasks.deadline, sign, half_open_deadline(sa))
    if sa.children:
        times += tuple(map(ChildSa.next_deadline, sa.children))
    return min(filter(is_set, times), default=None)


def arm(ctx: Ikev2Context, sa: IkeSa, now: float) -> None:
    """Once established: the rekey timer, and keepalives behind a NAT (or forced encap)."""
    sa.scheduled = True
    sa.schedule(now)
    forced = sa.conn is not None and sa.conn.encap
    if (sa.nat_local or forced) and ctx.config.daemon.keepalive:
        sa.keepalive_at = now + ctx.config.daemon.keepalive


def on_timer(ctx: Ikev2Context, sa: IkeSa, now: float) -> None:
    """Everything due on ``sa`` at ``now``: retransmissions, timeouts, rekeys, DPD."""
    sa.tasks.on_timer(now)
    deadline = half_open_deadline(sa)
    if deadline is not None and now >= deadline:
        sa.ctx.log_limit.log(
            log, logging.INFO, "half_open_timeout", now, "%s: half-open IKE_SA timed out", sa.tag()
        )
        sa.fail("half_open_timeout", now, quiet=True)
        return
    if sa.state != IkeState.ESTABLISHED:
        return
    _child_timers(sa, now)
    if sa.rekey_at is not None and now >= sa.rekey_at:
        sa.rekey_at = None
        log.info("%s: IKE_SA rekey_time reached", sa.tag())
        sa.tasks.queue(IkeRekey(sa, True))
    if sa.reauth_at is not None and now >= sa.reauth_at and sa.replaced_by is None:
        busy = any(isinstance(t, IkeRekey) for t in sa.tasks.queued + sa.tasks.active)
        if not busy:  # an IKE rekey under way: its successor inherits reauth_at
            sa.reauth_at = None
            log.info("%s: IKE_SA reauth_time reached", sa.tag())
            ctx.reauth(sa, now)
    due = sa.dpd_due()
    if due is not None and now >= due:
        _liveness(ctx, sa, now)
    if sa.keepalive_at is not None and now >= sa.keepalive_at:
        _keepalive(ctx, sa, now)
    sa.tasks.initiate(now)


def rekey_child(sa: IkeSa, child: ChildSa) -> None:
    child.set_state(ChildState.REKEYING, sa.name)
    sa.tasks.queue(ChildCreate(sa, True, exchange=ExchangeType.CREATE_CHILD_SA, rekey=child))


def _child_timers(sa: IkeSa, now: float) -> None:
    for child in list(sa.children):
        if child.expire_at is not None and now >= child.expire_at:
            if child.state in (ChildState.INSTALLED, ChildState.REKEYING, ChildState.REKEYED):
                log.info(
                    "%s: CHILD_SA %s{%d} life_time over", sa.tag(), child.name, child.unique_id
                )
                child.expire_at = None
                sa.tasks.queue(ChildDelete(sa, True, child))
        elif child.rekey_at is not None and now >= child.rekey_at:
            child.rekey_at = None
            # Under reauthentication the replacement IKE SA brings new keys anyway.
            if child.state == ChildState.INSTALLED and sa.replaced_by is None:
                log.info(
                    "%s: CHILD_SA %s{%d} rekey_time reached",
                    sa.tag(),
                    child.name,
                    child.unique_id,
                )
                rekey_child(sa, child)


def _keepalive(ctx: Ikev2Context, sa: IkeSa, now: float) -> None:
    """Behind a NAT we keep its mapping open (RFC 3948 §2.3, strongSwan: 20 s)."""
    ctx.counters.conn(sa.name).keepalives += 1
    ctx.emit(SendKeepalive(sa.local, sa.remote))
    sa.keepalive_at = now + ctx.config.daemon.keepalive


def _liveness(ctx: Ikev2Context, sa: IkeSa, now: float) -> None:
    """DPD: probe only when neither IKE nor ESP brought news within dpd_delay."""
    sa.last_inbound = last_sign_of_life(sa.last_inbound, sa.children, now)
    due = sa.dpd_due()
    if due is None or now < due:
        log.debug(
            "%s: ESP from the peer within dpd_delay, next DPD check at %.3f",
            sa.tag(),
            due or 0.0,
        )
        return
    assert sa.conn is not None  # dpd_due() is None without a connection
    probe_sent(ctx, sa.tag(), sa.name, sa.conn.dpd_delay)
    sa.dpd_outstanding = True
    sa.tasks.queue(Informational(sa, True))
