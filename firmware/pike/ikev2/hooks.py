"""The shared context with the IKEv2 engine's hooks: what its tasks ask of the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pike.sa.child_sa import ChildSa
from pike.sa.context import Context, Selectors

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa


@dataclass
class Ikev2Context(Context):
    # Set by the engine: registers an IKE SA created by a task (IKE rekey successor).
    adopt: Callable[[IkeSa], None] = field(default=lambda sa: None, repr=False)
    # Set by the engine: start reauthenticating an IKE SA (reauth_time reached).
    reauth: Callable[[IkeSa, float], None] = field(default=lambda sa, now: None, repr=False)
    # Set by the engine: the installed child (config name, selectors) on another IKE SA
    # of the same connection and peer, if any (a peer's reauthentication).
    overlapping: Callable[[IkeSa, str, Selectors, Selectors], ChildSa | None] = field(
        default=lambda sa, name, lts, rts: None, repr=False
    )
    # Set by the engine: whether a child's policies must outlive it (shared or trapped).
    keeps_policies: Callable[[ChildSa], bool] = field(default=lambda c: False, repr=False)
    # Set by the engine: the fixed reqid of a trapped child config, else None.
    trap_reqid: Callable[[str, str], int | None] = field(default=lambda c, n: None, repr=False)
    # Set by the engine: called as an IKE SA ends, before its children go.
    before_fail: Callable[[IkeSa, str], None] = field(default=lambda sa, r: None, repr=False)
