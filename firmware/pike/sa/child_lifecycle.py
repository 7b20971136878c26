"""A CHILD_SA's way in and out of the kernel, one rule and one log wording for both IKE
versions (IKEv2's CREATE_CHILD_SA/IKE_AUTH/INFORMATIONAL, IKEv1's Quick Mode/Informational).

Without ESP in our kernel no CHILD_SA is pretended and the peer keeps no half of one, in
either version. Where we can still say no, we refuse with NO_PROPOSAL_CHOSEN
(``refuse_without_esp``): as responder of both versions, and as IKEv1 initiator, whose
peer installs only on QM3 (we answer QM2 with the notify instead, as strongSwan does).
An IKEv2 initiator learns of the CHILD_SA when the peer has installed it already: it
fails and the caller deletes it with the peer (``kernel_refuses``), as strongSwan does
when an install fails.
"""

from __future__ import annotations

import logging

from pike.policy.ts import TsText
from pike.sa.actions import (
    ChildSaEstablished,
    ChildSaFailed,
    DeleteChildSa,
    IkeRef,
    InstallOutboundSa,
)
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context
from pike.sa.state import ChildState, log

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_INSTALLED = ChildState.INSTALLED


def refuse_without_esp(ctx: Context, tag: str, ike_name: str, child_name: str) -> bool:
    """True (logged, reported) when our kernel lacks ESP: the caller then answers
    NO_PROPOSAL_CHOSEN instead of agreeing to a CHILD_SA it cannot install."""
    if ctx.caps.esp:
        return False
    log.error(
        "%s: cannot install CHILD_SA %s: kernel lacks %s; answering NO_PROPOSAL_CHOSEN",
        tag,
        child_name,
        _missing(ctx),
    )
    ctx.emit(ChildSaFailed(ike_name, child_name, "kernel_no_esp"))
    return True


def kernel_refuses(ctx: Context, tag: str, ike_name: str, child: ChildSa) -> bool:
    """True (and ``child`` FAILED, logged, reported) when our kernel lacks ESP: the
    caller then deletes it with the peer."""
    if ctx.caps.esp:
        return False
    log.error(
        "%s: CHILD_SA %s negotiated but kernel lacks %s; deleting it",
        tag,
        child.name,
        _missing(ctx),
    )
    child.set_state(ChildState.FAILED, ike_name)
    ctx.emit(ChildSaFailed(ike_name, child.name, "kernel_no_esp"))
    return True


def install(
    ctx: Context,
    tag: str,
    ike_name: str,
    child: ChildSa,
    now: float,
    rekey: bool,
    ike: IkeRef | None = None,
) -> None:
    """Into the kernel (its specs built already), timers set, INSTALLED, reported."""
    ctx.emit(child.install(ike_name, ike))
    child.installed_at = now
    ctx.policy_users.add(child)
    child.schedule(now, ctx.random)
    child.set_state(_INSTALLED, ike_name)
    if log.isEnabledFor(logging.INFO):  # its arguments cost; a busy hub logs less
        log.info(
            "%s: CHILD_SA %s{%d} %s with SPIs %08x_i %08x_o and TS %s === %s",
            tag,
            child.name,
            child.unique_id,
            "rekeyed" if rekey else "established",
            child.spi_in,
            child.spi_out,
            TsText(child.local_ts),
            TsText(child.remote_ts),
        )
    if rekey:
        ctx.counters.conn(ike_name).child_rekeys += 1
    spis = (child.spi_in, child.spi_out)
    ctx.emit(ChildSaEstablished(ike_name, child.config.name, child.unique_id, spis))


def remove(
    ctx: Context,
    tag: str,
    ike_name: str,
    child: ChildSa,
    reason: str,
    keep_policies: bool,
    ike: IkeRef | None = None,
) -> None:
    """Forget a CHILD_SA: its SAs leave the kernel if they were there, and its policies
    too unless ``keep_policies`` (``Traps.keeps_policies``, or the caller's own reason).
    The caller takes it off its IKE or ISAKMP SA."""
    if child.state == ChildState.DELETED:
        return
    ctx.policy_users.discard(child)
    successor = child.replaced_by_peer
    # (a successor on another IKE SA, after a peer's reauthentication, may be gone)
    if (
        successor is not None
        and successor.outbound_deferred
        and successor.state != ChildState.DELETED
    ):
        # make before break: the successor's outbound SA goes in before the old one goes
        assert successor.outbound is not None
        successor.outbound_deferred = False
        ctx.emit(
            InstallOutboundSa(ike_name, successor.name, successor.unique_id, successor.outbound)
        )
    if child.inbound is not None and child.outbound is not None and child.installed_at is not None:
        ctx.emit(
            DeleteChildSa(
                ike_name,
                child.name,
                child.unique_id,
                child.inbound,
                child.outbound,
                child.policies,
                keep_policies,
                ike,
            )
        )
    log.info("%s: CHILD_SA %s{%d} removed: %s", tag, child.name, child.unique_id, reason)
    child.set_state(ChildState.DELETED, ike_name)


EARLY_MARGIN = 5.0  # seconds: a hard expiry this much before life_time is not ours


def hard_expired_early(tag: str, child: ChildSa, now: float) -> bool:
    """True when the kernel's hard expiry of ``child`` came more than ``EARLY_MARGIN``
    before its life_time and no byte or packet limit explains it. The kernel judges time
    lifetimes on the wall clock when its timer fires, so after a step forward it removes
    SAs long before their (monotonic) time: the caller then makes the CHILD_SA again (a
    rekey) if it is INSTALLED, instead of deleting it; the other direction's expiry, with
    the rekey under way, is ignored. Logged once, for the INSTALLED one."""
    cfg = child.config
    if child.expire_at is None or cfg.life_bytes or cfg.life_packets:
        return False
    left = child.expire_at - now
    if left <= EARLY_MARGIN:
        return False
    if child.state == ChildState.INSTALLED:
        log.warning(
            "%s: CHILD_SA %s{%d} removed by the kernel %d s before its life_time "
            "(wall clock stepped forward?): creating it again",
            tag,
            child.name,
            child.unique_id,
            int(left),
        )
    return True


def _missing(ctx: Context) -> str:
    return ", ".join(ctx.caps.missing) or "ESP"
