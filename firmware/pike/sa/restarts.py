"""What starts again after an IKE or ISAKMP SA ended: dpd_action = restart and keyingtries;
and after the peer deleted a CHILD_SA (alone or with its IKE SA): close_action.

One rule and one wording for both IKE versions (strongSwan's meanings). A peer found dead
on an established SA follows ``dpd_action = restart`` (either role: whoever can reach the
peer initiates again). An initiation of ours whose retransmissions all went unanswered
starts again, up to ``keyingtries`` attempts in all (0: until it works); errors the peer
answered (NO_PROPOSAL_CHOSEN, AUTHENTICATION_FAILED...) are final, and so is a connection
removed or changed by a reload. The retransmission sequence spaces the attempts.

A box nobody logs into must keep trying (a deliberate difference from strongSwan): a
connection with a ``start_action = start`` child defaults to ``keyingtries = 0``, and with
``keyingtries = 0`` an attempt the peer refused starts again too, and every new attempt
starts at least ``backoff`` after the one before (10 s, doubling, at most 2 min).
A CHILD_SA the peer deletes follows its ``close_action``: ``start`` initiates it again,
``trap`` leaves its policies as a trap, ``none`` lets it go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pike.policy.config import ConnectionConfig
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context
from pike.sa.hubs import hubs_of
from pike.sa.state import ChildState, log
from pike.sa.traps import Traps


class Ended(Protocol):
    """What the decision reads of an IKE or ISAKMP SA that ended."""

    @property
    def conn(self) -> ConnectionConfig | None: ...

    @property
    def initiator(self) -> bool: ...

    @property
    def established_at(self) -> float | None: ...

    @property
    def created_at(self) -> float: ...

    @property
    def delete_reason(self) -> str: ...

    @property
    def keyingtry(self) -> int:
        """Attempts of keyingtries that went before this SA's."""

    @property
    def dpd_outstanding(self) -> bool:
        """A liveness probe of ours is unanswered."""

    @property
    def remote(self) -> tuple[str, int]:
        """The peer's address and port (a hub of several: the one that went silent)."""

    def tag(self) -> str: ...


RETRY_BASE = 10.0  # seconds between the starts of the first and second attempt
RETRY_CAP = 120.0  # the longest wait between the starts of two attempts


def backoff(keyingtry: int) -> float:
    """The least time from the start of attempt ``keyingtry`` (0: the first) to the start
    of the next, with keyingtries = 0: doubling, capped."""
    return min(RETRY_CAP, RETRY_BASE * 2.0 ** min(keyingtry, 16))


@dataclass(frozen=True)
class Restart:
    conn: str
    children: tuple[str, ...]  # (): the connection's first child
    keyingtry: int  # attempts of keyingtries that went before this one
    note: str  # the log line that says why
    at: float = 0.0  # not before this time (engine clock): the backoff


class Pending:
    """Restarts that wait for their backoff, in either engine."""

    def __init__(self) -> None:
        self.items: list[Restart] = []

    def add(self, again: Restart) -> None:
        self.items.append(again)

    def deadline(self) -> float | None:
        if not self.items:  # (asked after every step)
            return None
        return min(r.at for r in self.items)

    def due(self, now: float) -> list[Restart]:
        """The restarts whose time has come (taken out)."""
        ready = [r for r in self.items if r.at <= now]
        self.items = [r for r in self.items if r.at > now]
        return ready

    def forget(self, conn: str) -> None:
        """A terminate, a reload or a new initiation of ``conn`` supersedes its retries."""
        self.items = [r for r in self.items if r.conn != conn]


def restart(ctx: Context, sa: Ended, lost: Sequence[str], asked: Sequence[str]) -> Restart | None:
    """The new initiation after ``sa`` ended, if any. ``lost``: the children that were up
    (dpd_action = restart brings them back); ``asked``: the children an unanswered
    initiation asked for (a retry asks again). Counts a peer found dead by DPD; logs when
    keyingtries are used up."""
    conn, config = sa.conn, ctx.config
    if conn is None:
        return None
    if dead_peer(sa) and sa.dpd_outstanding:
        ctx.counters.conn(conn.name).dpd_failures += 1
    several = len(hubs_of(conn)) > 1
    if dead_peer(sa) and several:
        ctx.hubs.advance(conn, sa.remote[0], "is dead")
    if dead_peer(sa) and conn.dpd_action == "restart":
        to = f" to hub {ctx.hubs.active(conn)}" if several else ""
        note = f"{conn.name}: peer is dead, dpd_action=restart: initiating again{to}"
        return Restart(conn.name, tuple(lost), 0, note)
    if config.connections.get(conn.name) != conn:
        return None  # its connection removed or changed by a reload
    if conn.keyingtries == 0 and _refused(sa):
        at = sa.created_at + backoff(sa.keyingtry)
        note = (
            f"{sa.tag()}: initiation failed ({sa.delete_reason}), keyingtries unlimited: "
            f"attempt {sa.keyingtry + 2} at +{at - sa.created_at:.0f}s"
        )
        return Restart(conn.name, tuple(asked), sa.keyingtry + 1, note, at)
    if not _unanswered(sa):
        return None
    if several and not ctx.hubs.advance(conn, sa.remote[0], "is not answering"):
        # the next hub at once: a round over all of them is one attempt of keyingtries
        note = f"{sa.tag()}: peer not responding: trying hub {ctx.hubs.active(conn)}"
        return Restart(conn.name, tuple(asked), sa.keyingtry, note)
    if conn.keyingtries == 0 or sa.keyingtry + 1 < conn.keyingtries:
        note = (
            f"{sa.tag()}: peer not responding, keyingtries: attempt {sa.keyingtry + 2} "
            f"of {conn.keyingtries or 'unlimited'}"
        )
        at = sa.created_at + backoff(sa.keyingtry) if conn.keyingtries == 0 else 0.0
        return Restart(conn.name, tuple(asked), sa.keyingtry + 1, note, at)
    log.warning(
        "%s: peer not responding, giving up after %d attempt(s) (keyingtries = %d)",
        sa.tag(),
        sa.keyingtry + 1,
        conn.keyingtries,
    )
    return None


def dead_peer(sa: Ended) -> bool:
    """An established SA that ended because the peer stopped answering."""
    return sa.established_at is not None and sa.delete_reason == "retransmit_timeout"


# Ends of an initiation that are not a failure to retry: ours, or a peer that came back
_NOT_FAILURES = ("retransmit_timeout", "terminated", "initial_contact", "reauthenticated")


def _refused(sa: Ended) -> bool:
    """An initiation of ours that never came up for a reason other than silence (the peer
    refused, or we could not go on): retried only with keyingtries = 0."""
    return sa.initiator and sa.established_at is None and sa.delete_reason not in _NOT_FAILURES


def _unanswered(sa: Ended) -> bool:
    """An initiation of ours that never came up because the peer never answered."""
    return sa.initiator and sa.established_at is None and sa.delete_reason == "retransmit_timeout"


def closed_by_peer(
    conn: ConnectionConfig | None,
    child: ChildSa,
    others: Iterable[ChildSa],
    traps: Traps,
    whole: bool = False,
) -> bool:
    """close_action for ``child``, which the peer deletes (alone or with its IKE SA), called
    before it leaves the kernel. ``trap``: its policies stay as a trap (so they are kept);
    returns whether it starts again (``start``). Nothing happens to a child that was not
    in use or whose successor (a rekey, a reauthentication) is up: ``others``, the
    children of the connection's SAs (read only when close_action is not none, so a
    generator keeps a hub's deletes from walking its SAs). ``whole``: its IKE SA goes
    with it."""
    cfg = conn.child(child.name) if conn is not None else None
    if conn is None or cfg is None or cfg.close_action == "none":
        return False
    up = (ChildState.INSTALLED, ChildState.REKEYING) if whole else (ChildState.INSTALLED,)
    if child.state not in up:
        return False  # never up; or alone and rekeying: its successor is on its way
    live = (ChildState.INSTALLED, ChildState.REKEYING, ChildState.CREATED)
    if any(o is not child and o.name == child.name and o.state in live for o in others):
        return False  # IKEv1's rekey or a reauthentication: the successor is up
    if cfg.close_action == "trap":
        traps.install(conn, child.name, child.reqid, child)
        return False
    log.info(
        "%s.%s: deleted by the peer, close_action=start: initiating again", conn.name, child.name
    )
    return True
