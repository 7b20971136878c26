"""The IKE or ISAKMP SA that holds each CHILD_SA SPI (ours and the peer's), for both
versions: the kernel's expiries and ESP counters name an SPI, and a hub must not walk
every SA per event. Refreshed for the SAs a step touched; a caller that misses (within
the step that made the SPI) walks its SAs as before."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

from pike.sa.child_sa import ChildSa

S = TypeVar("S", bound=Hashable)


def child_spis(children: Sequence[ChildSa]) -> tuple[int, ...]:
    """The SPIs of ``children`` that are set, both directions."""
    if len(children) == 1:  # the usual IKE SA: one CHILD_SA, no generator
        c = children[0]
        if c.spi_in and c.spi_out:
            return (c.spi_in, c.spi_out)
    return tuple(s for c in children for s in (c.spi_in, c.spi_out) if s)


class SpiIndex(Generic[S]):
    def __init__(self) -> None:
        self._by_spi: dict[int, S] = {}
        # tuples, not sets: ints only, the collector stops tracking them after one pass
        self._spis: dict[S, tuple[int, ...]] = {}

    def get(self, spi: int) -> S | None:
        return self._by_spi.get(spi)

    def refresh(self, sa: S, children: Sequence[ChildSa]) -> None:
        """``sa``'s SPIs are those of its ``children`` now."""
        spis = child_spis(children) if children else ()
        if spis != self._spis.get(sa, ()):
            self._set(sa, spis)

    def forget(self, sa: S) -> None:
        self._set(sa, ())

    def _set(self, sa: S, now_spis: tuple[int, ...]) -> None:
        for spi in self._spis.pop(sa, ()):
            if spi not in now_spis and self._by_spi.get(spi) is sa:
                del self._by_spi[spi]
        self._by_spi.update(dict.fromkeys(now_spis, sa))
        if now_spis:
            self._spis[sa] = now_spis
