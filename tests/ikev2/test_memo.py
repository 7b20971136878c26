"""``ByIdentity``: values made once per immutable object, remembered by its identity."""

from __future__ import annotations

import gc

from pike.ikev2.memo import ByIdentity


def test_made_once_per_object_and_anew_for_an_equal_one() -> None:
    made: list[tuple[int, ...]] = []

    def total(t: tuple[int, ...]) -> int:
        made.append(t)
        return sum(t)

    memo: ByIdentity[tuple[int, ...], int] = ByIdentity(total)
    first = (1, 2, 3)
    assert memo(first) == 6 and memo(first) == 6
    assert made == [first]
    equal = tuple(list(first))  # equal, another object
    assert equal is not first
    assert memo(equal) == 6 and len(made) == 2


def test_an_entry_keeps_its_object_so_no_other_takes_its_id() -> None:
    """A dropped object's id may be reused by a new one: the memo holds what it keyed, so
    while its entry lives no other object can have that id (no wrong answer)."""
    memo: ByIdentity[tuple[int, ...], int] = ByIdentity(sum, limit=4)
    for i in range(1000):
        t = tuple(range(i % 7 + 1))
        assert memo(t) == sum(t)  # each a fresh object; an id reused must not answer
        del t
        gc.collect(0)


def test_bounded() -> None:
    memo: ByIdentity[tuple[int, ...], int] = ByIdentity(sum, limit=8)
    keep = [tuple(range(i)) for i in range(100)]
    for t in keep:
        memo(t)
        assert len(memo) <= 8
