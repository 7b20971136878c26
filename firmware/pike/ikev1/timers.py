"""The clock of an ISAKMP SA: when it next needs the engine and what each deadline does.

Retransmissions (any exchange that goes unanswered loses the whole SA, as in strongSwan's
IKEv1), the signature we wait for, the responder's half-open timeout, CHILD_SA life_time
and rekey_time, DPD (``liveness``), NAT-T keepalives and reauth_time. All times are passed
in (sans-I/O).
"""

from __future__ import annotations

import logging

from pike.ikev1 import informational, liveness
from pike.ikev1.host import Host
from pike.ikev1.isakmp_sa import IsakmpSa, PeerError, log
from pike.sa.actions import SendKeepalive
from pike.sa.context import HALF_OPEN_TIMEOUT
from pike.sa.state import ChildState, IkeState
from pike.wire.isakmp_constants import NotifyV1


def deadlines(sa: IsakmpSa) -> list[float | None]:
    times: list[float | None] = [fl.deadline for fl in sa.flights.values()]
    if sa.signing is not None:
        times.append(sa.signing.deadline)
    if sa.state == IkeState.CONNECTING and not sa.initiator:
        times.append(sa.created_at + HALF_OPEN_TIMEOUT)
    if sa.state == IkeState.ESTABLISHED:
        times += [liveness.due(sa), sa.keepalive_at, sa.reauth_at]
        times += [c.next_deadline() for c in sa.children]
    return times


def next_deadline(sa: IsakmpSa) -> float | None:
    """The earliest of ``deadlines(sa)``: the SA's one entry in the table's timer heap."""
    return min((t for t in deadlines(sa) if t is not None), default=None)


def on_timer(engine: Host, sa: IsakmpSa, now: float) -> None:
    """Everything due on ``sa`` at ``now``."""
    _retransmit(engine, sa, now)
    pending = sa.signing
    if pending is not None and pending.due(now):
        sa.signing = None
        try:
            sa.ctx.signatures.expire(pending, now)  # refuses: no signature in time
        except PeerError as e:
            sa.fail(e.reason, now, engine.remove_child)
    half_open = sa.state == IkeState.CONNECTING and not sa.initiator
    if half_open and now >= sa.created_at + HALF_OPEN_TIMEOUT:
        # a responder has nothing to retransmit in Main Mode: unfinished SAs go
        sa.ctx.log_limit.log(
            log,
            logging.INFO,
            "half_open_timeout",
            now,
            "%s: half-open ISAKMP_SA timed out",
            sa.tag(),
        )
        if sa.auth_suspect:  # counted as a refused authentication, as IKEv2 does
            sa.ctx.log_limit.log(
                log, logging.ERROR, "auth_failed", now,
                "%s: authentication of the peer failed: %s", sa.tag(), sa.auth_suspect,
            )  # fmt: skip
            sa.fail(f"auth_failed: {sa.auth_suspect}", now, engine.remove_child)
        else:
            sa.fail("half_open_timeout", now, engine.remove_child, quiet=True)
    if sa.state != IkeState.ESTABLISHED:
        return
    _child_timers(engine, sa, now)
    _dpd(engine, sa, now)
    if sa.keepalive_at is not None and now >= sa.keepalive_at:
        engine.ctx.counters.conn(sa.name).keepalives += 1
        engine.ctx.emit(SendKeepalive(sa.local, sa.remote))
        sa.keepalive_at = now + engine.config.daemon.keepalive
    if sa.reauth_at is not None and now >= sa.reauth_at:
        sa.reauth_at = None
        engine.reauth(sa, now)


def _retransmit(engine: Host, sa: IsakmpSa, now: float) -> None:
    tries = engine.config.daemon.retransmit_tries
    for mid, fl in list(sa.flights.items()):
        if not fl.due(now):
            continue
        if fl.tries >= tries:
            # strongSwan's IKEv1 gives the whole SA up when any exchange goes unanswered
            if sa.ctx.log_limit.wanted(log, logging.INFO, "half_open_timeout", now, sa.unproven):
                log.info("%s: giving up after %d retransmits (M-ID %08x)", sa.tag(), fl.tries, mid)
            fl.abandon()
            engine.lost(sa, now)
            return
        data = fl.retry(now, sa.timeout(fl.tries + 1))
        engine.ctx.counters.conn(sa.name).retransmits += 1
        # an unproven SA's (a flood's AM2s, MM2s) as IKEv2's messages of one: limited
        if sa.ctx.log_limit.wanted(log, logging.INFO, "half_open_sent", now, sa.unproven):
            log.info("%s: retransmit %d of M-ID %08x", sa.tag(), fl.tries, mid)
        sa.send(data)


def _child_timers(engine: Host, sa: IsakmpSa, now: float) -> None:
    for child in list(sa.children):
        if child.expire_at is not None and now >= child.expire_at:
            child.expire_at = None
            engine.delete_child(sa, child, "life_time", now)
        elif child.rekey_at is not None and now >= child.rekey_at:
            child.rekey_at = None
            # Only the side that ran the Quick Mode rekeys it: IKEv1 has no collision
            # handling, two rekeys would leave two pairs. The other side keeps its
            # life_time as the backstop.
            if child.state == ChildState.INSTALLED and child.initiator:
                log.info("%s: CHILD_SA %s{%d} rekey", sa.tag(), child.name, child.unique_id)
                engine.rekey_child(sa, child, now)


def _dpd(engine: Host, sa: IsakmpSa, now: float) -> None:
    verdict = liveness.check(sa, now, engine.config.daemon)
    if verdict == "dead":
        log.info("%s: DPD: peer did not answer, it is dead", sa.tag())
        engine.lost(sa, now)
    elif verdict == "probe":
        informational.notify(sa, NotifyV1.R_U_THERE, sa.dpd_seq.to_bytes(4, "big"))
