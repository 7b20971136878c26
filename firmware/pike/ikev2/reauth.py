"""IKEv2 reauthentication (reauth_time): a new IKE SA from scratch, make-before-break.

At reauth_time the side that has it configured runs IKE_SA_INIT and IKE_AUTH again (new
SPIs, keys and authentication, without INITIAL_CONTACT: the peer must keep the SAs still
in use) and recreates every CHILD_SA of the old IKE SA with the old reqid, the first in
IKE_AUTH, the others by CREATE_CHILD_SA. Only when all of them are in does the old IKE SA
get deleted; its children's policies are shared with the new ones and stay in the
kernel, so traffic never meets a gap. If the new IKE SA fails, the old one stays.
"""

from __future__ import annotations

from pike.ikev2.ike_sa import IkeSa, Ikev2Context
from pike.ikev2.log import log
from pike.ikev2.tasks.child_create import ChildCreate
from pike.ikev2.tasks.ike_auth import IkeAuth
from pike.ikev2.tasks.ike_delete import IkeDelete
from pike.ikev2.tasks.ike_init import IkeInit
from pike.sa.state import ChildState, IkeState
from pike.wire.constants import ExchangeType

# Children that are, or are about to be, carrying traffic (a REKEYED one has a successor).
_LIVE = (ChildState.INSTALLED, ChildState.REKEYING)


def start(ctx: Ikev2Context, old: IkeSa, now: float) -> IkeSa | None:
    """The replacement of ``old``, initiating (the engine registers it by SPI)."""
    conn = old.conn
    if conn is None or ctx.config.connections.get(conn.name) != conn:
        return None  # removed or changed meanwhile: reload deals with it
    children = []
    seen: set[str] = set()
    for child in old.children:
        if child.state in _LIVE and child.name not in seen:
            seen.add(child.name)
            children.append(child)
    sa = IkeSa(
        ctx,
        ctx.unique_id(),
        True,
        ctx.ike_spi(),
        (old.local[0], ctx.config.daemon.ike_port),
        (old.remote[0], conn.remote_port),
        conn,
        created_at=now,
    )
    sa.initiate_child = children[0].name if children else None
    sa.replaces = old
    old.replaced_by = sa
    sa.set_state(IkeState.CONNECTING)
    log.info(
        "%s: reauthenticating with %d CHILD_SA(s): new IKE_SA %s",
        old.tag(),
        len(children),
        sa.tag(),
    )
    for task in (IkeInit, IkeAuth):
        sa.tasks.queue(task(sa, True))
    for i, child in enumerate(children):
        exchange = ExchangeType.IKE_AUTH if i == 0 else ExchangeType.CREATE_CHILD_SA
        sa.tasks.queue(
            ChildCreate(
                sa, True, child.config, exchange=exchange, reqid=child.reqid, expect=child.chosen
            )
        )
    sa.tasks.initiate(now)
    return sa


def settle(sa: IkeSa, now: float) -> None:
    """After every engine step, for a replacement ``sa``: once it is up with all its
    children created, delete the old IKE SA; if it failed, the old one carries on."""
    old = sa.replaces
    if old is None:
        return
    if sa.state == IkeState.DESTROYED or sa.state == IkeState.DELETING:
        log.info("%s: reauthentication failed (%s), old IKE_SA stays", old.tag(), sa.delete_reason)
        sa.replaces = old.replaced_by = None
        return
    if sa.state != IkeState.ESTABLISHED or old.state == IkeState.REKEYING:
        return  # (an IKE rekey of the old one hands ``replaced_by`` to its successor)
    if any(isinstance(t, ChildCreate) for t in sa.tasks.queued + sa.tasks.active):
        return
    sa.replaces = old.replaced_by = None
    if old.state == IkeState.ESTABLISHED:
        log.info("%s: reauthenticated as %s, deleting the old IKE_SA", old.tag(), sa.tag())
        old.tasks.queue(IkeDelete(old, True, reason="reauthenticated"))
        old.tasks.initiate(now)
