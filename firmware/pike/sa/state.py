"""IKE and CHILD SA states, and the transitions allowed between them (one table each)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from pike.sa.log_limit import LogLimit


class IkeState(Enum):
    # Members are singletons compared by identity: the C hash, not Enum's Python
    # ``hash(self._name_)`` (the transition tables look states up at every change)
    __hash__ = object.__hash__

    CREATED = "CREATED"
    CONNECTING = "CONNECTING"
    ESTABLISHED = "ESTABLISHED"
    REKEYING = "REKEYING"  # an IKE SA rekey of ours is under way
    REKEYED = "REKEYED"  # replaced by a new IKE SA; waits for its delete
    DELETING = "DELETING"
    DESTROYED = "DESTROYED"


class ChildState(Enum):
    # Members are singletons compared by identity: the C hash, not Enum's Python
    # ``hash(self._name_)`` (the transition tables look states up at every change)
    __hash__ = object.__hash__

    CREATED = "CREATED"
    INSTALLED = "INSTALLED"
    REKEYING = "REKEYING"  # our rekey of it is under way
    REKEYED = "REKEYED"  # a successor is installed; this one waits for its delete
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"


IKE_TRANSITIONS: dict[IkeState, frozenset[IkeState]] = {
    IkeState.CREATED: frozenset({IkeState.CONNECTING, IkeState.DESTROYED}),
    IkeState.CONNECTING: frozenset(
        {IkeState.CONNECTING, IkeState.ESTABLISHED, IkeState.DELETING, IkeState.DESTROYED}
    ),
    IkeState.ESTABLISHED: frozenset(
        {IkeState.REKEYING, IkeState.REKEYED, IkeState.DELETING, IkeState.DESTROYED}
    ),
    IkeState.REKEYING: frozenset(
        {IkeState.ESTABLISHED, IkeState.REKEYED, IkeState.DELETING, IkeState.DESTROYED}
    ),
    IkeState.REKEYED: frozenset({IkeState.DELETING, IkeState.DESTROYED}),
    IkeState.DELETING: frozenset({IkeState.DESTROYED}),
    IkeState.DESTROYED: frozenset(),
}

CHILD_TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    ChildState.CREATED: frozenset({ChildState.INSTALLED, ChildState.FAILED, ChildState.DELETED}),
    ChildState.INSTALLED: frozenset(
        {
            ChildState.REKEYING,
            ChildState.REKEYED,
            ChildState.DELETING,
            ChildState.FAILED,
            ChildState.DELETED,
        }
    ),
    ChildState.REKEYING: frozenset(
        {ChildState.INSTALLED, ChildState.REKEYED, ChildState.DELETING, ChildState.DELETED}
    ),
    ChildState.REKEYED: frozenset({ChildState.DELETING, ChildState.DELETED}),
    ChildState.FAILED: frozenset({ChildState.DELETING, ChildState.DELETED}),
    ChildState.DELETING: frozenset({ChildState.DELETED}),
    ChildState.DELETED: frozenset(),
}

log = logging.getLogger("pike.sa")


class StateError(RuntimeError):
    """A transition the tables forbid: a bug in the engine, never the peer's doing."""


def sa_tag(name: str, unique_id: int, spi_i: bytes, spi_r: bytes) -> str:
    """Connection name and SPIs of an IKE or ISAKMP SA, for every log line (docs/architecture.md
    "Conventions")."""
    return f"{name}[{unique_id}] {spi_i.hex()}_i {spi_r.hex()}_r"


def unproven(initiator: bool, established_at: float | None) -> bool:
    """A responder's SA that never came up: what it logs, anyone could set off (a flood of
    first messages makes many), so its lines go through the rate limit."""
    return not initiator and established_at is None


def ike_transition(
    tag: Callable[[], str],
    kind: str,
    old: IkeState,
    new: IkeState,
    logger: logging.Logger,
    limit: tuple[LogLimit, float] | None = None,
) -> IkeState:
    """``new`` if the table allows ``old`` -> ``new`` (logged as ``kind``, through
    ``limit``'s rate limit at its time if given: a half-open SA's), else StateError.
    ``tag`` gives the SA's tag, asked for only when a line or the error needs it."""
    if new not in IKE_TRANSITIONS[old]:
        raise StateError(f"{tag()}: {old.value} -> {new.value}")
    if new == old or not logger.isEnabledFor(logging.INFO):  # its arguments cost
        return new
    if limit is not None:
        line = ("%s: %s %s -> %s", tag(), kind, old.value, new.value)
        limit[0].log(logger, logging.INFO, "half_open_state", limit[1], *line)
    else:
        logger.info("%s: %s %s -> %s", tag(), kind, old.value, new.value)
    return new


class RekeyRefused(ValueError):
    """``rekey()`` cannot act now (nothing installed to rekey, or a rekey or setup is under
    way): an operator's request, answered with this one-line reason, never a bug."""
