"""The Quick Modes under way on one ISAKMP SA, owned by it (``IsakmpSa.quick``): each
exchange's state by its M-ID, from QM1 until its SAs are installed or it is refused.
What the messages do with that state is ``quick_mode``'s; nothing else holds it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pike.crypto.ke import KeyExchange
from pike.ikev1.proposals import Phase2Choice
from pike.policy.config import ChildConfig
from pike.policy.ts import TrafficSelector
from pike.sa.child_sa import ChildSa


@dataclass
class QuickMode:
    """One Quick Mode exchange (RFC 2409 §5.5), either role."""

    mid: int
    initiator: bool
    cfg: ChildConfig
    local_ts: TrafficSelector
    remote_ts: TrafficSelector
    spi_in: int
    rekey_of: ChildSa | None = None
    choices: list[Phase2Choice] = field(default_factory=list)
    ni: bytes = b""
    nr: bytes = b""
    ke: KeyExchange | None = None
    shared: bytes | None = field(default=None, repr=False)
    chosen: Phase2Choice | None = None
    encap: int = 0
    spi_out: int = 0
    lifetime: int = 0
    step: int = 0
    reqid: int | None = None  # a trapped child's: its SAs must match the trap policies

    @property
    def spi_in_b(self) -> bytes:
        return self.spi_in.to_bytes(4, "big")


class QuickModes:
    """An ISAKMP SA's Quick Modes under way, by M-ID."""

    def __init__(self) -> None:
        self._by_mid: dict[int, QuickMode] = {}

    def __iter__(self) -> Iterator[QuickMode]:
        return iter(list(self._by_mid.values()))

    def __len__(self) -> int:
        return len(self._by_mid)

    def add(self, qm: QuickMode) -> None:
        self._by_mid[qm.mid] = qm

    def get(self, mid: int) -> QuickMode | None:
        return self._by_mid.get(mid)

    def done(self, qm: QuickMode) -> None:
        """Its SAs are in (or it failed): no longer under way."""
        self._by_mid.pop(qm.mid, None)

    def take_refused(self, spi: int | None) -> list[QuickMode]:
        """What an error notify from the peer ends: ours under way, and those we answered
        whose SPI (ours, which the peer names) is ``spi``, or all of them for None."""
        gone = [
            qm
            for qm in self._by_mid.values()
            if qm.initiator or spi is None or spi in (qm.spi_in, qm.spi_out)
        ]
        for qm in gone:
            del self._by_mid[qm.mid]
        return gone

    def clear(self) -> None:
        self._by_mid.clear()
