"""The peer's last sign of life, for DPD in both IKE versions: an authenticated IKE or
ISAKMP message, or inbound ESP on an installed CHILD_SA. A probe goes only when neither
came within dpd_delay (how it goes is each version's own). A probe counts once
(``probe_sent``); its retries count as retransmissions (``probe_retried``), in IKEv1 as
in IKEv2 (whose probe is an INFORMATIONAL request that its task manager retransmits).

The engine never reads the kernel: when a DPD decision is due, the runtime asks which
inbound SAs it needs (``esp_wanted``), reads their kernel counters and reports each with
``esp_seen`` (docs/architecture.md, "The kernel boundary"); this module judges them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pike.policy.ipsec import SaSpec
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context
from pike.sa.esp_seen import EspSeen
from pike.sa.state import log


def _watched(children: Iterable[ChildSa]) -> Iterable[ChildSa]:
    return (c for c in children if c.inbound is not None and c.installed_at is not None)


def esp_wanted(children: Iterable[ChildSa]) -> list[SaSpec]:
    """The inbound SAs whose counters a DPD decision over ``children`` looks at."""
    return [c.inbound for c in _watched(children) if c.inbound is not None]


def esp_seen(
    children: Iterable[ChildSa], spi: int, packets: int, last_use: float | None, now: float
) -> bool:
    """Record the kernel's counters of the inbound SA ``spi``; False if not one of these."""
    for child in _watched(children):
        if child.spi_in == spi:
            if child.esp is None:
                child.esp = EspSeen()
            child.esp.report(packets, last_use, now)
            return True
    return False


def last_sign_of_life(last_inbound: float, children: Iterable[ChildSa], now: float) -> float:
    """``last_inbound``, or later inbound ESP on one of ``children`` (never after ``now``)."""
    for child in _watched(children):
        seen = child.esp.at if child.esp is not None else None
        if seen is not None and seen > last_inbound:
            last_inbound = min(seen, now)
    return last_inbound


def probe_sent(ctx: Context, tag: str, ike_name: str, dpd_delay: float) -> None:
    """A new DPD probe goes out: logged and counted (``dpd_probes``)."""
    log.info("%s: no traffic for %ss, sending DPD", tag, dpd_delay)
    ctx.counters.conn(ike_name).dpd_probes += 1


def probe_retried(ctx: Context, tag: str, ike_name: str, tries: int) -> None:
    """The ``tries``-th retry of an unanswered probe: a retransmission, not a new probe."""
    log.info("%s: retransmit %d of the DPD probe", tag, tries)
    ctx.counters.conn(ike_name).retransmits += 1
