"""What the IKEv1 exchange modules (``responder``, ``informational``, ``timers``) ask of
the engine that holds the ISAKMP SAs: a protocol, so that they need not import the
engine (no import cycle), and they change its SA table only through its methods."""

from __future__ import annotations

from typing import Protocol

from pike.ikev1.isakmp_sa import IsakmpSa
from pike.ikev1.sa_table import SaTable
from pike.policy.config import Config
from pike.sa.child_sa import ChildSa
from pike.sa.context import Context
from pike.wire.isakmp_payloads import V1Message


class Host(Protocol):
    @property
    def ctx(self) -> Context: ...

    @property
    def config(self) -> Config: ...

    @property
    def table(self) -> SaTable: ...

    def count_in(self, sa: IsakmpSa, msg: V1Message) -> None: ...

    def remove_child(self, child: ChildSa, reason: str, sa: IsakmpSa | None = None) -> None: ...

    def delete_child(self, sa: IsakmpSa, child: ChildSa, reason: str, now: float) -> None: ...

    def rekey_child(self, sa: IsakmpSa, child: ChildSa, now: float) -> None: ...

    def reauth(self, sa: IsakmpSa, now: float) -> None: ...

    def lost(self, sa: IsakmpSa, now: float) -> None: ...

    def closed_by_peer(self, sa: IsakmpSa, children: list[ChildSa], whole: bool) -> None: ...

    def sign_done(self, ref: int, result: bytes | Exception, now: float) -> None: ...
