"""A private network namespace with a veth pair for the board tests (root only).

Named ``<run_prefix>bd<n>`` (the run prefix is unique per pytest process) and deleted at
teardown, whatever the test did inside it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

Require = Callable[[bool, str], None]

_counter = itertools.count()


@dataclass(frozen=True)
class Netns:
    name: str

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "-n", self.name, *args], capture_output=True, text=True, check=check
        )


@pytest.fixture
def netns(run_prefix: str, require: Require) -> Iterator[Netns]:
    require(os.geteuid() == 0, "board namespace tests need root")
    require(shutil.which("ip") is not None, "board namespace tests need `ip` (iproute2)")
    name = f"{run_prefix}bd{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ns = Netns(name)
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def veth(netns: Netns) -> Netns:
    """``netns`` with v0 (192.0.2.1/24) <-> v1 (no address: 192.0.2.2 routes via v0)."""
    netns.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    netns.ip("addr", "add", "192.0.2.1/24", "dev", "v0")
    netns.ip("link", "set", "v0", "up")
    netns.ip("link", "set", "v1", "up")
    return netns
