"""pike.sa.ports: the engine takes inbound SPIs from the ``SpiSource`` its context holds,
in both IKE versions, and draws them from its own randomness when given none."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from ikev2.pair import transfer
from pike.policy.ts import IPAddress
from pike.sa.actions import InstallChildSa
from pike.sa.ports import FALLBACK_SPI_MAX, FALLBACK_SPI_MIN, RandomSpis

from .both import A, B, pair


class Numbered:
    """A deterministic source: 0xC0000100, 0xC0000101, ... and the addresses asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[IPAddress, IPAddress]] = []

    def child_spi(self, src: IPAddress, dst: IPAddress) -> int:
        self.asked.append((src, dst))
        return 0xC0000100 + len(self.asked) - 1


@pytest.mark.parametrize("version", [1, 2])
def test_inbound_spis_come_from_the_source(version: int) -> None:
    a, b = pair(version)
    source_a, source_b = Numbered(), Numbered()
    a.engine.ctx.spis = source_a
    b.engine.ctx.spis = source_b
    a.engine.initiate("gw", 0.0, "net")
    transfer(a, b, 0.0)
    installs = {
        name: [e for e in node.events if isinstance(e, InstallChildSa)]
        for name, node in (("a", a), ("b", b))
    }
    assert len(installs["a"]) == len(installs["b"]) == 1
    a_in, b_in = installs["a"][0].inbound, installs["b"][0].inbound
    assert a_in.spi == 0xC0000100 and b_in.spi == 0xC0000100
    assert installs["a"][0].outbound.spi == b_in.spi  # the peer's inbound is our outbound
    # asked as the inbound SA's (source, destination): from the peer to us
    assert source_a.asked == [(ip_address(B), ip_address(A))]
    assert source_b.asked == [(ip_address(A), ip_address(B))]


def test_random_spis_are_the_engines_randomness_in_strongswans_range() -> None:
    draws = iter([bytes(4), b"\xff" * 4, b"\x12\x34\x56\x78"])
    spis = RandomSpis(lambda n: next(draws))
    got = [spis.child_spi(ip_address(A), ip_address(B)) for _ in range(3)]
    assert got == [FALLBACK_SPI_MIN, FALLBACK_SPI_MAX, 0xC2345678]
