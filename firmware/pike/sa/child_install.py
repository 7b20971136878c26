"""A negotiated CHILD_SA goes into the kernel, or fails for want of ESP: one rule and one
log wording for both IKE versions (IKEv2's CREATE_CHILD_SA/IKE_AUTH, IKEv1's Quick Mode).

Without ESP in our kernel the CHILD_SA fails and the caller deletes it with the peer, as
strongSwan does when an install fails, so that the peer does not keep a half tunnel.
"""

from __future__ import annotations

from pike.sa.actions import ChildSaEstablished, ChildSaFailed
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context
from pike.sa.state import ChildState, log


def kernel_refuses(ctx: Context, tag: str, ike_name: str, child: ChildSa) -> bool:
    """True (and ``child`` FAILED, logged, reported) when our kernel lacks ESP: the caller
    then deletes it with the peer."""
    if ctx.caps.esp:
        return False
    missing = ", ".join(ctx.caps.missing) or "ESP"
    log.error(
        "%s: CHILD_SA %s negotiated but kernel lacks %s; deleting it", tag, child.name, missing
    )
    child.set_state(ChildState.FAILED, ike_name)
    ctx.emit(ChildSaFailed(ike_name, child.name, "kernel_no_esp"))
    return True


def install(ctx: Context, tag: str, ike_name: str, child: ChildSa, now: float, rekey: bool) -> None:
    """Into the kernel (its specs built already), timers set, INSTALLED, reported."""
    ctx.emit(child.install(ike_name))
    child.installed_at = now
    child.schedule(now, ctx.random)
    child.set_state(ChildState.INSTALLED, ike_name)
    log.info(
        "%s: CHILD_SA %s{%d} %s with SPIs %08x_i %08x_o and TS %s === %s",
        tag,
        child.name,
        child.unique_id,
        "rekeyed" if rekey else "established",
        child.spi_in,
        child.spi_out,
        " ".join(str(t) for t in child.local_ts),
        " ".join(str(t) for t in child.remote_ts),
    )
    if rekey:
        ctx.counters.conn(ike_name).child_rekeys += 1
    ctx.emit(ChildSaEstablished(ike_name, child.name, child.unique_id))
