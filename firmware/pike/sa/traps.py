"""On-demand tunnels (start_action = trap): the trap policies the engine installed.

A trap is a child config whose policies are in the kernel before any CHILD_SA exists;
the first packet makes the kernel send an ACQUIRE for the trap's reqid, and the engine
negotiates that child. dpd_action = trap puts the policies of a dead peer's children
back as traps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pike.policy.addrs import any_of
from pike.policy.config import ConnectionConfig
from pike.sa.actions import InstallTrap
from pike.sa.child_sa import ChildSa, trap_policies
from pike.sa.context import Context
from pike.sa.state import ChildState, log


class EndingSa(Protocol):
    """What ``before_fail`` reads of an IKE or ISAKMP SA that ends."""

    @property
    def conn(self) -> ConnectionConfig | None: ...

    @property
    def children(self) -> Sequence[ChildSa]: ...


class Traps:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.reqids: dict[tuple[str, str], int] = {}  # (conn, child) -> reqid
        # the same the other way (asked on every CHILD_SA's removal and every ACQUIRE)
        self._by_reqid: dict[int, tuple[str, str]] = {}

    def install_configured(self, conn: ConnectionConfig) -> None:
        """Every child of ``conn`` with start_action = trap, each with a new reqid."""
        for child in conn.children:
            if child.start_action == "trap":
                self.install(conn, child.name, self.ctx.reqid(), None)

    def install(
        self, conn: ConnectionConfig, child_name: str, reqid: int, child: ChildSa | None
    ) -> None:
        cfg = conn.child(child_name)
        if cfg is None or not conn.remote_addrs:
            return
        if child is not None:
            policies = child.policies
        else:
            local = conn.local_addrs[0] if conn.local_addrs else any_of(conn.remote_addrs[0])
            policies = trap_policies(cfg, reqid, local, conn.remote_addrs[0])
        self._set((conn.name, child_name), reqid)
        log.info("%s.%s: trap installed (reqid %d)", conn.name, child_name, reqid)
        self.ctx.emit(InstallTrap(conn.name, child_name, reqid, policies))

    def reqid(self, conn: str, child: str) -> int | None:
        return self.reqids.get((conn, child))

    def _set(self, key: tuple[str, str], reqid: int) -> None:
        old = self.reqids.get(key)
        if old is not None and self._by_reqid.get(old) == key:
            del self._by_reqid[old]
        self.reqids[key] = reqid
        self._by_reqid[reqid] = key

    def holds(self, reqid: int) -> bool:
        """A trap uses ``reqid``: its policies stay when a CHILD_SA of it goes."""
        return reqid in self._by_reqid

    def keeps_policies(self, child: ChildSa) -> bool:
        """Whether ``child``'s policies must outlive it: a trap holds them, or another
        live child (of either version) has one of them (a rekey's successor or
        predecessor, a backup connection's child with the same selectors)."""
        return self.holds(child.reqid) or self.ctx.policy_users.shared(child)

    def find(self, reqid: int) -> tuple[str, str] | None:
        """The (connection, child) an ACQUIRE for ``reqid`` is about."""
        return self._by_reqid.get(reqid)

    def forget(self, conn_names: list[str]) -> None:
        for key in [k for k in self.reqids if k[0] in conn_names]:
            reqid = self.reqids.pop(key)
            if self._by_reqid.get(reqid) == key:
                del self._by_reqid[reqid]

    def before_fail(self, sa: EndingSa, reason: str) -> None:
        """dpd_action = trap: the children of a dead peer go back to on-demand, so that
        the next packet brings the tunnel up again."""
        conn = sa.conn
        if conn is None or reason != "retransmit_timeout" or conn.dpd_action != "trap":
            return
        for child in sa.children:
            if child.state in (ChildState.INSTALLED, ChildState.REKEYING):
                self.install(conn, child.name, child.reqid, child)
