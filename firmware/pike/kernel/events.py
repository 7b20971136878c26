"""What the kernel tells the daemon on its own: typed events, free of netlink.

``KernelIpsec.read_events()`` returns these; the runtime hands them to the engine
(``Acquire`` -> ``engine.acquire``, ``Expire`` -> ``engine.child_expired``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pike.kernel.xfrm_selectors import Selector
from pike.policy.ts import IPAddress


@dataclass(frozen=True, slots=True)
class Acquire:
    """Traffic matched a policy whose template has no SA (XFRM_MSG_ACQUIRE): the kernel
    asks for the SA ``src`` -> ``dst`` with ``reqid``; ``selector`` is the packet's."""

    reqid: int
    src: IPAddress
    dst: IPAddress
    selector: Selector


@dataclass(frozen=True, slots=True)
class Expire:
    """An SA's lifetime ran out (XFRM_MSG_EXPIRE), in time, bytes or packets: ``hard``
    means the kernel removed it, soft means "rekey now"."""

    spi: int
    dst: IPAddress
    hard: bool
    reqid: int = 0


KernelEvent = Acquire | Expire
