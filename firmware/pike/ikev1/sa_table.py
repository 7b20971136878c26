"""The ISAKMP SAs of one IKEv1 engine and what hangs off them: half-open responder SAs
(by the MM1/AM1 that made them, so that its retransmits find them), and the children each
SA is to negotiate once phase 1 is up. The only owner of these maps: the engine and the
exchange modules go through its methods. (Each SA owns its Quick Modes: ``IsakmpSa.quick``.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from pike.ikev1.isakmp_sa import IsakmpSa
from pike.sa.admission import Admission
from pike.sa.child_sa import ChildSa
from pike.sa.context import IdKey
from pike.sa.spi_index import SpiIndex
from pike.sa.state import IkeState
from pike.sa.timer_queue import TimerQueue
from pike.wire.isakmp_payloads import V1Message

HalfOpenKey = tuple[bytes, str, int]  # the peer's cookie, address and port


class SaTable:
    def __init__(self, admission: Admission | None = None) -> None:
        self._sas: dict[bytes, IsakmpSa] = {}  # by our cookie
        self._half_open: dict[HalfOpenKey, IsakmpSa] = {}
        # The same by unique id, with the key it was added under (the peer may move).
        self._half_open_ids: dict[int, tuple[HalfOpenKey, IsakmpSa]] = {}
        # Counts the half-open SAs per address as they come and go (pike.sa.admission).
        self.admission = admission if admission is not None else Admission()
        self._wanted: dict[int, list[str]] = {}  # SA unique id -> children to negotiate
        # One heap of every SA's next deadline, and the SAs a step touched: only they are
        # looked at again (``retime``, ``sweep``), so a step costs the same with 10 000 SAs.
        self.timers: TimerQueue[IsakmpSa] = TimerQueue()
        self._dirty: dict[IsakmpSa, None] = {}  # an ordered set
        # The established SAs by the peer's identity (INITIAL-CONTACT, both ways, asks
        # once per Main Mode: a walk over every SA would grow with the hub), kept on every
        # state change (``touch``) with the key each one is under.
        self._up_by_peer: dict[IdKey, dict[IsakmpSa, None]] = {}
        self._up_keys: dict[IsakmpSa, IdKey] = {}
        # The SA whose IPsec SAs have an SPI (the kernel's expiries and counters name
        # SPIs), refreshed for the SAs each step touched (``sweep``).
        self._by_spi: SpiIndex[IsakmpSa] = SpiIndex()

    # -- ISAKMP SAs ----------------------------------------------------------------------------
    @property
    def sas(self) -> Mapping[bytes, IsakmpSa]:
        return self._sas

    def all(self) -> list[IsakmpSa]:
        """A copy: callers may end SAs while they walk it."""
        return list(self._sas.values())

    def with_spi(self, spi: int) -> Iterator[IsakmpSa]:
        """The SA with an IPsec SA of ``spi`` first (indexed by ``sweep``), then, should
        the index be behind (within the step that made it), every SA."""
        hit = self.by_spi(spi)
        if hit is not None:
            yield hit
        yield from list(self._sas.values())

    def by_spi(self, spi: int) -> IsakmpSa | None:
        """The index alone: the SA with an IPsec SA of ``spi`` as of the last sweep."""
        return self._by_spi.get(spi)

    def established_with(self, peer: IdKey) -> list[IsakmpSa]:
        """The established SAs whose peer has this identity (a copy)."""
        return list(self._up_by_peer.get(peer, ()))

    def owner(self, child: ChildSa) -> IsakmpSa | None:
        return next((sa for sa in self._sas.values() if child in sa.children), None)

    def add(self, sa: IsakmpSa, wanted: list[str] | None = None) -> None:
        self._sas[sa.our_spi] = sa
        sa.touched = self.touch
        self.touch(sa)
        if wanted is not None:
            self._wanted[sa.unique_id] = wanted

    def find(self, msg: V1Message) -> IsakmpSa | None:
        """The SA a message's cookies name (the responder's may still be zero)."""
        sa = self._sas.get(msg.spi_r)
        if sa is not None and not sa.initiator and sa.spi_i == msg.spi_i:
            return sa
        sa = self._sas.get(msg.spi_i)
        if sa is not None and sa.initiator and sa.spi_r in (msg.spi_r, bytes(8)):
            return sa
        return None

    # -- half-open responder SAs ---------------------------------------------------------
    def add_half_open(self, sa: IsakmpSa) -> None:
        self.add(sa)
        key = (sa.spi_i, *sa.remote)
        self._half_open[key] = sa
        self._half_open_ids[sa.unique_id] = (key, sa)
        self.admission.opened(sa.remote[0], sa.unique_id, False)

    def half_open(self, key: HalfOpenKey) -> IsakmpSa | None:
        return self._half_open.get(key)

    def half_open_by_id(self, unique_id: int) -> IsakmpSa | None:
        entry = self._half_open_ids.get(unique_id)
        return entry[1] if entry is not None else None

    def answered(self, sa: IsakmpSa) -> None:
        """The peer of a half-open SA answered our first message: it receives at its
        address (so its half-open SA is never the one replaced, pike.sa.admission)."""
        if sa.unique_id in self._half_open_ids:
            self.admission.prove(sa.unique_id)

    def authenticated(self, sa: IsakmpSa) -> None:
        """The peer authenticated: no longer half-open."""
        self._forget_half_open(sa)

    def _forget_half_open(self, sa: IsakmpSa) -> None:
        entry = self._half_open_ids.pop(sa.unique_id, None)
        if entry is not None:
            self._half_open.pop(entry[0], None)
        self.admission.closed(sa.unique_id)

    # -- children to negotiate once phase 1 is up ------------------------------------------
    def want(self, sa: IsakmpSa, child: str) -> None:
        self._wanted.setdefault(sa.unique_id, []).append(child)

    def wanted(self, sa: IsakmpSa) -> list[str]:
        return list(self._wanted.get(sa.unique_id, []))

    def take_wanted(self, sa: IsakmpSa) -> list[str]:
        return self._wanted.pop(sa.unique_id, [])

    # -- after every step -------------------------------------------------------------------
    def touch(self, sa: IsakmpSa) -> None:
        self._dirty[sa] = None
        up = sa.state == IkeState.ESTABLISHED and sa.peer_id is not None
        key = (sa.peer_id.id_type, sa.peer_id.data) if up and sa.peer_id is not None else None
        old = self._up_keys.get(sa)
        if old == key:
            return
        if old is not None:
            del self._up_keys[sa]
            same = self._up_by_peer[old]
            del same[sa]
            if not same:
                del self._up_by_peer[old]
        if key is not None:
            self._up_keys[sa] = key
            self._up_by_peer.setdefault(key, {})[sa] = None

    def retime(self, deadline: Callable[[IsakmpSa], float | None]) -> None:
        """The heap entries of the SAs touched since the last sweep."""
        for sa in self._dirty:
            self.timers.set(sa, None if sa.state == IkeState.DESTROYED else deadline(sa))

    def sweep(
        self, deadline: Callable[[IsakmpSa], float | None]
    ) -> list[tuple[IsakmpSa, list[str]]]:
        """Forget destroyed SAs and all that hangs off them, set the others' timers (only
        the SAs touched since the last sweep); returns the destroyed ones, each with the
        children it was to negotiate."""
        gone: list[tuple[IsakmpSa, list[str]]] = []
        dirty, self._dirty = self._dirty, {}
        for sa in dirty:
            if sa.state != IkeState.DESTROYED:
                self.timers.set(sa, deadline(sa))
                self._by_spi.refresh(sa, sa.children)
                continue
            self.timers.discard(sa)
            self._by_spi.forget(sa)
            key = sa.our_spi
            if self._sas.get(key) is not sa:
                continue
            del self._sas[key]
            gone.append((sa, self._wanted.pop(sa.unique_id, [])))
            self._forget_half_open(sa)  # by its key: no scan (8 192 expiring took 1.7 s)
        return gone
