"""The ISAKMP SAs of one IKEv1 engine and what hangs off them: Quick Modes under way,
half-open responder SAs (by the MM1/AM1 that made them, so that its retransmits find
them), and the children each SA is to negotiate once phase 1 is up. The only owner of
these maps: the engine and the exchange modules go through its methods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pike.ikev1.isakmp_sa import IsakmpSa
from pike.ikev1.quick_mode import QuickMode
from pike.sa.child_sa import ChildSa
from pike.sa.state import IkeState
from pike.wire.isakmp_payloads import V1Message

HalfOpenKey = tuple[bytes, str, int]  # the peer's cookie, address and port


class SaTable:
    def __init__(self) -> None:
        self._sas: dict[bytes, IsakmpSa] = {}  # by our cookie
        self._half_open: dict[HalfOpenKey, IsakmpSa] = {}
        self._quick: dict[tuple[bytes, int], QuickMode] = {}  # by (our cookie, M-ID)
        self._wanted: dict[int, list[str]] = {}  # SA unique id -> children to negotiate

    # -- ISAKMP SAs ----------------------------------------------------------------------------
    @property
    def sas(self) -> Mapping[bytes, IsakmpSa]:
        return self._sas

    def all(self) -> list[IsakmpSa]:
        """A copy: callers may end SAs while they walk it."""
        return list(self._sas.values())

    def children(self) -> Iterator[ChildSa]:
        return (c for sa in self._sas.values() for c in sa.children)

    def owner(self, child: ChildSa) -> IsakmpSa | None:
        return next((sa for sa in self._sas.values() if child in sa.children), None)

    def add(self, sa: IsakmpSa, wanted: list[str] | None = None) -> None:
        self._sas[sa.our_spi] = sa
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
        self._half_open[(sa.spi_i, *sa.remote)] = sa

    def half_open(self, key: HalfOpenKey) -> IsakmpSa | None:
        return self._half_open.get(key)

    def half_open_from(self, ip: str) -> int:
        return sum(1 for k in self._half_open if k[1] == ip)

    def authenticated(self, sa: IsakmpSa) -> None:
        """The peer authenticated: no longer half-open."""
        self._half_open.pop((sa.spi_i, *sa.remote), None)

    # -- children to negotiate once phase 1 is up ------------------------------------------
    def want(self, sa: IsakmpSa, child: str) -> None:
        self._wanted.setdefault(sa.unique_id, []).append(child)

    def wanted(self, sa: IsakmpSa) -> list[str]:
        return list(self._wanted.get(sa.unique_id, []))

    def take_wanted(self, sa: IsakmpSa) -> list[str]:
        return self._wanted.pop(sa.unique_id, [])

    # -- Quick Modes ----------------------------------------------------------------------------
    def add_quick(self, qm: QuickMode) -> None:
        self._quick[(qm.sa.our_spi, qm.mid)] = qm

    def quick(self, sa: IsakmpSa, mid: int) -> QuickMode | None:
        return self._quick.get((sa.our_spi, mid))

    def drop_quick(self, qm: QuickMode) -> None:
        self._quick.pop((qm.sa.our_spi, qm.mid), None)

    def quick_modes(self, sa: IsakmpSa) -> list[QuickMode]:
        return [qm for key, qm in self._quick.items() if key[0] == sa.our_spi]

    # -- after every step -------------------------------------------------------------------
    def sweep(self) -> list[tuple[IsakmpSa, list[str]]]:
        """Forget destroyed SAs and all that hangs off them; returns them, each with the
        children it was to negotiate."""
        gone: list[tuple[IsakmpSa, list[str]]] = []
        for key, sa in list(self._sas.items()):
            if sa.state != IkeState.DESTROYED:
                continue
            del self._sas[key]
            gone.append((sa, self._wanted.pop(sa.unique_id, [])))
            for qk in [qk for qk in self._quick if qk[0] == key]:
                del self._quick[qk]
            for hk in [hk for hk, v in self._half_open.items() if v is sa]:
                del self._half_open[hk]
        return gone
