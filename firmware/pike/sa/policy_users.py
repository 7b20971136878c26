"""Which installed CHILD_SAs use each kernel policy, for both IKE versions.

The kernel holds one copy of a policy (its selectors, direction, if_id and mark) however
many CHILD_SAs were installed with it: a rekey's successor and predecessor, the new SA
after INITIAL_CONTACT, a backup connection's child with the same selectors. When one of
them goes, its policies stay while another live one uses them. Asked on every CHILD_SA's
removal, so it is an index kept at install and removal, not a walk over every child of a
hub (which grew with the SA count: a rekey storm over 10 000 SAs was quadratic).

Every policy of a child comes from one (local, remote) selector pair, so two children
with a policy in common have a pair in common: the index holds each child under the hash
of each of its pairs (an int: a hub holds 10 000 of these), and the candidates it gives
are then compared policy by policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pike.sa.state import ChildState

if TYPE_CHECKING:
    from pike.sa.child_sa import ChildSa

_LIVE = (ChildState.INSTALLED, ChildState.REKEYING, ChildState.REKEYED)


def _pairs(child: ChildSa) -> set[int]:
    return {
        hash((p.src_ts, p.dst_ts) if p.direction == "out" else (p.dst_ts, p.src_ts))
        for p in child.policies
    }


def _keys(child: ChildSa) -> set[tuple[object, ...]]:
    """What makes two policies one in the kernel."""
    return {(p.src_ts, p.dst_ts, p.direction, p.if_id, p.mark) for p in child.policies}


class PolicyUsers:
    def __init__(self) -> None:
        # a pair's hash -> the installed child with it, or those by unique id when several
        # (a hub's branches may all have the same selectors: then one bucket holds them all)
        self._by_pair: dict[int, ChildSa | dict[int, ChildSa]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, child: ChildSa) -> None:
        """``child`` is in the kernel with its policies (a second add changes nothing)."""
        added = False
        for key in _pairs(child):
            users = self._by_pair.get(key)
            if users is None:
                self._by_pair[key] = child
            elif isinstance(users, dict):
                if child.unique_id in users:
                    continue
                users[child.unique_id] = child
            elif users is child:
                continue
            else:
                self._by_pair[key] = {users.unique_id: users, child.unique_id: child}
            added = True
        self._count += added

    def discard(self, child: ChildSa) -> None:
        """``child`` is gone (or never was installed). Its selectors are those it was
        added with: a MOBIKE update rebuilds its policies with new addresses only."""
        removed = False
        for key in _pairs(child):
            users = self._by_pair.get(key)
            if users is child:
                del self._by_pair[key]
            elif isinstance(users, dict) and users.get(child.unique_id) is child:
                del users[child.unique_id]
                if len(users) == 1:
                    (self._by_pair[key],) = users.values()
            else:
                continue
            removed = True
        self._count -= removed

    def shared(self, child: ChildSa) -> bool:
        """Another live, installed CHILD_SA has one of ``child``'s policies."""
        mine: set[tuple[object, ...]] | None = None
        for key in _pairs(child):
            users = self._by_pair.get(key)
            if users is None:
                continue
            for other in users.values() if isinstance(users, dict) else (users,):
                if other is child or other.state not in _LIVE or other.installed_at is None:
                    continue
                mine = _keys(child) if mine is None else mine
                if mine & _keys(other):
                    return True
        return False
