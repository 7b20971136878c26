"""One heap of deadlines for all SAs of an engine, so that asking for the next timer and
finding what is due cost O(log n) rather than a walk over every SA.

Each item has at most one current deadline; ``set`` replaces it. Replaced and removed
entries stay in the heap until they reach its top and are skipped there (lazy deletion),
and the heap is rebuilt when stale entries outnumber live ones (looked at on each removal
and every 64th new entry), so it stays O(live). A replaced or removed entry lets go of
its item at once (entries are lists, their item set to None): a deleted SA is not kept
alive by its old deadlines, which may reach the top hours later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from functools import partial
from operator import is_not
from typing import Any, Generic, TypeGuard, TypeVar, cast

T = TypeVar("T", bound=Hashable)
_Entry = list[Any]  # [when, seq, item]; item None once stale

# ``min(filter(is_set, deadlines), default=None)``: the earliest deadline that is set,
# found in C (asked after every step of every SA)
is_set = cast(Callable[[object], TypeGuard[float]], partial(is_not, None))


class TimerQueue(Generic[T]):
    """Deadlines by item (items hash by identity: SAs are ``eq=False``)."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        # item -> its live heap entry [when, seq, item], the very list in the heap: an
        # entry at the top is live when it is its item's (one identity test, nothing
        # built to compare); a stale one's item is None
        self._due: dict[T, _Entry] = {}
        self._seq = 0  # ties: first set, first out; and never compares items

    def __len__(self) -> int:
        return len(self._due)

    def set(self, item: T, when: float | None) -> None:
        """``item`` is next due at ``when`` (None: no deadline)."""
        current = self._due.get(item)
        if current is not None:
            if current[0] == when:
                return
            current[2] = None  # stale from now on: it keeps no SA alive
        if when is not None:
            seq = self._seq = self._seq + 1
            entry = self._due[item] = [when, seq, item]
            _heappush(self._heap, entry)
            if seq & 63:
                return  # the heap's size is looked at every 64th entry (twice a handshake)
        elif current is not None:
            del self._due[item]
        else:
            return  # had none, has none
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = list(self._due.values())
            heapq.heapify(self._heap)

    def discard(self, item: T) -> None:
        self.set(item, None)

    def next(self) -> float | None:
        """The earliest live deadline."""
        heap, due = self._heap, self._due
        while heap:
            top = heap[0]
            if due.get(top[2]) is top:
                return top[0]  # type: ignore[no-any-return]
            _heappop(heap)
        return None

    def due(self, now: float) -> list[T]:
        """The items due at ``now``, left in place: a walk of the heap's top, which costs
        what is due (and stale), not what is held."""
        heap, out, stack = self._heap, [], [0]
        while stack:
            i = stack.pop()
            if i >= len(heap) or heap[i][0] > now:
                continue
            entry = heap[i]
            if self._due.get(entry[2]) is entry:
                out.append(entry[2])
            stack += (2 * i + 1, 2 * i + 2)
        return out

    def pop_due(self, now: float) -> list[T]:
        """The items due at ``now``, earliest first; they have no deadline afterwards."""
        out: list[T] = []
        while (when := self.next()) is not None and when <= now:
            item: T = _heappop(self._heap)[2]
            del self._due[item]
            out.append(item)
        return out


_heappush, _heappop = heapq.heappush, heapq.heappop
