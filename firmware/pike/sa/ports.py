"""What the engines are given to reach beyond themselves: objects the context holds, never
callbacks into the runtime (the sans-I/O boundary, docs/architecture.md).

``SpiSource`` gives the inbound SPI of a new CHILD_SA. The daemon's asks the kernel (XFRM
allocates a larval SA, as strongSwan's kernel_ipsec does) and draws a random one when it
cannot; ``RandomSpis`` is the one for engines without a kernel (no ESP, in-memory tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pike.policy.ts import IPAddress

Random = Callable[[int], bytes]  # os.urandom's shape

# strongSwan's range for allocated SPIs (as pike.kernel.xfrm allocates them), used for
# random SPIs too; values below 256 are reserved (RFC 4303 §2.1).
FALLBACK_SPI_MIN = 0xC0000000
FALLBACK_SPI_MAX = 0xCFFFFFFF


class SpiSource(Protocol):
    def child_spi(self, src: IPAddress, dst: IPAddress) -> int:
        """An SPI for the inbound SA ``src`` -> ``dst`` (``dst`` is us). Never raises."""
        ...


def random_spi(random: Random) -> int:
    """A random SPI from FALLBACK_SPI_MIN..FALLBACK_SPI_MAX."""
    span = FALLBACK_SPI_MAX - FALLBACK_SPI_MIN + 1
    return FALLBACK_SPI_MIN + int.from_bytes(random(4), "big") % span


class RandomSpis:
    """SPIs from the engine's randomness: deterministic for a seeded ``random``."""

    def __init__(self, random: Random) -> None:
        self._random = random

    def child_spi(self, src: IPAddress, dst: IPAddress) -> int:
        return random_spi(self._random)
