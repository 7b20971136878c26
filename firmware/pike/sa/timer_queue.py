"""One heap of deadlines for all SAs of an engine, so that asking for the next timer and
finding what is due cost O(log n) rather than a walk over every SA.

Each item has at most one current deadline; ``set`` replaces it. Replaced and removed
entries stay in the heap until they reach its top and are skipped there (lazy deletion),
and the heap is rebuilt when stale entries outnumber live ones (looked at on each removal
and every 64th new entry), so it stays O(live).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from functools import partial
from operator import is_not
from typing import Generic, TypeGuard, TypeVar, cast

T = TypeVar("T", bound=Hashable)

# ``min(filter(is_set, deadlines), default=None)``: the earliest deadline that is set,
# found in C (asked after every step of every SA)
is_set = cast(Callable[[object], TypeGuard[float]], partial(is_not, None))


class TimerQueue(Generic[T]):
    """Deadlines by item (items hash by identity: SAs are ``eq=False``)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        # item -> its live heap entry, the very tuple in the heap: an entry at the top is
        # live when it is its item's (one identity test, no tuple built to compare)
        self._due: dict[T, tuple[float, int, T]] = {}
        self._seq = 0  # ties: first set, first out; and never compares items

    def __len__(self) -> int:
        return len(self._due)

    def set(self, item: T, when: float | None) -> None:
        """``item`` is next due at ``when`` (None: no deadline)."""
        current = self._due.get(item)
        if current is not None and current[0] == when:
            return
        if when is not None:
            seq = self._seq = self._seq + 1
            entry = self._due[item] = (when, seq, item)
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
                return top[0]
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
            _, _, item = _heappop(self._heap)
            del self._due[item]
            out.append(item)
        return out


_heappush, _heappop = heapq.heappush, heapq.heappop
