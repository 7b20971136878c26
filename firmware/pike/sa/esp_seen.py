"""Inbound ESP on one CHILD_SA as the kernel counted it: what DPD (``pike.sa.liveness``)
takes as the peer's sign of life between IKE messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EspSeen:
    """What the kernel counted on a CHILD_SA's inbound SA, as last reported."""

    packets: int = 0  # 0 at install: any packet counted later is ESP activity
    grew_at: float | None = None  # when the packet counter was last seen growing
    at: float | None = None  # the verdict: the last inbound ESP, on the engine's clock

    def report(self, packets: int, last_use: float | None, now: float) -> None:
        """``last_use``: the kernel's last use, already on the engine's clock. Linux moves
        an SA's last use on output only (an inbound SA keeps its first use), so a packet
        counter that grew since the previous report counts as use ``now``."""
        if packets > self.packets:
            self.grew_at = now
        self.packets = packets
        grew = self.grew_at
        self.at = grew if grew is not None and (last_use is None or grew > last_use) else last_use
