"""The peer's last sign of life, for DPD in both IKE versions: an authenticated IKE or
ISAKMP message, or inbound ESP on an installed CHILD_SA as the kernel counts it. A probe
goes only when neither came within dpd_delay (how it goes is each version's own)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pike.policy.ipsec import SaSpec
from pike.sa.child_sa import ChildSa
from pike.sa.state import log

# The last inbound use of an SA (monotonic), from the kernel; None: never used.
EspActivity = Callable[[SaSpec], float | None]


def last_sign_of_life(
    last_inbound: float, children: Iterable[ChildSa], esp: EspActivity | None, now: float
) -> float:
    """``last_inbound``, or later inbound ESP on one of ``children`` (never after ``now``)."""
    if esp is None:
        return last_inbound
    for child in children:
        if child.inbound is None or child.installed_at is None:
            continue
        seen = esp(child.inbound)
        if seen is not None and seen > last_inbound:
            last_inbound = min(seen, now)
    return last_inbound


def log_probe(tag: str, dpd_delay: float) -> None:
    log.info("%s: no traffic for %ss, sending DPD", tag, dpd_delay)
