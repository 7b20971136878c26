"""Values made from an immutable object, remembered by that object's identity.

A hub answers every handshake with the same few things made from its config: the TSi/TSr
payloads of a child's selectors, a child's ESP proposals without KE, our IDr. Hashing
those objects by value runs Python per field (and per ``ipaddress`` inside), so the memo
is keyed on ``id()``: each entry holds its object, which keeps the id from being reused
while the entry lives. Bounded: a flood of distinct objects only empties it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """``make(obj)`` for an immutable ``obj`` (a tuple or frozen value), made once per
    object while it is among the last ``limit`` asked about."""

    __slots__ = ("_entries", "_make", "limit")

    def __init__(self, make: Callable[[K], V], limit: int = 256) -> None:
        self._make = make
        self._entries: dict[int, tuple[K, V]] = {}
        self.limit = limit

    def __call__(self, obj: K) -> V:
        known = self._entries.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        value = self._make(obj)
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
