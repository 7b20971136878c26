"""The engines' one heap of deadlines: replace, remove, due order, and staying small."""

from __future__ import annotations

from pike.sa.timer_queue import TimerQueue


class Item:
    """Hashes by identity, like the engines' SAs."""


def test_next_and_pop_due_in_order() -> None:
    q: TimerQueue[Item] = TimerQueue()
    a, b, c = Item(), Item(), Item()
    q.set(a, 5.0)
    q.set(b, 2.0)
    q.set(c, 9.0)
    assert q.next() == 2.0
    assert q.pop_due(5.0) == [b, a]
    assert q.next() == 9.0 and len(q) == 1
    assert q.pop_due(8.9) == []


def test_set_replaces_and_none_removes() -> None:
    q: TimerQueue[Item] = TimerQueue()
    a, b = Item(), Item()
    q.set(a, 1.0)
    q.set(b, 3.0)
    q.set(a, 4.0)  # later now: the old entry is stale
    assert q.next() == 3.0
    q.set(b, None)
    assert q.next() == 4.0
    q.discard(a)
    assert q.next() is None and len(q) == 0


def test_ties_first_set_first_out() -> None:
    q: TimerQueue[Item] = TimerQueue()
    items = [Item() for _ in range(5)]
    for it in items:
        q.set(it, 1.0)
    assert q.pop_due(1.0) == items


def test_stale_entries_do_not_pile_up() -> None:
    q: TimerQueue[Item] = TimerQueue()
    a = Item()
    for n in range(10_000):
        q.set(a, float(n))
    assert len(q._heap) < 200  # rebuilt once stale entries outnumber live ones
    assert q.next() == 9999.0


def test_due_leaves_items_in_place() -> None:
    q: TimerQueue[Item] = TimerQueue()
    items = [Item() for _ in range(50)]
    for n, it in enumerate(items):
        q.set(it, float(n))
    q.set(items[3], 100.0)  # a stale entry at 3.0 is not reported
    assert set(q.due(10.0)) == set(items[:11]) - {items[3]}
    assert len(q) == 50 and q.next() == 0.0
