"""Fixtures for host-tier interop tests: namespaces, gateway pairs, strongSwan nodes.

``lab``             a fresh :class:`Lab` per test (namespaces ``<run_prefix><n>-*``),
                    torn down after the test even on failure.
``gateways``        two gateway namespaces ``left``/``right`` joined by veth
                    (192.0.2.1/24, 2001:db8::1/64 <-> 192.0.2.2/24, 2001:db8::2/64), each with
                    a host namespace on its LAN (10.1.0.0/24 left, 10.2.0.0/24 right).
``make_charon``     factory ``make_charon(ns, name, *connections_and_secrets)`` starting a
                    charon (kernel-libipsec when the kernel has no ESP); stopped and its
                    log tail printed at teardown (shown when the test fails).
``make_piked``      the same for piked (``piked --config``, ``pikectl list-sas --json``);
                    skips (fails in CI) while piked is not installed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lib.prereq import Require

from .netns import Lab, Namespace, cleanup_stale
from .piked import PikedNode, piked_available
from .strongswan import Connection, Secret, StrongswanNode, charon_available, kernel_has_esp
from .topology import Gateways, make_gateways

__all__ = ["Gateways", "MakeCharon", "MakePiked", "Require", "charon_nodes"]

_lab_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _remove_stale_namespaces() -> None:
    """Namespaces ``pk<pid>x-*`` left by killed runs (PID gone, nothing inside)."""
    if os.geteuid() == 0:
        for name in cleanup_stale():
            print(f"removed stale network namespace {name}")


@pytest.fixture
def lab(run_prefix: str) -> Iterator[Lab]:
    with Lab.create(f"{run_prefix}{next(_lab_counter)}-") as la:
        yield la


@pytest.fixture
def gateways(lab: Lab) -> Gateways:
    return make_gateways(lab)


MakeCharon = Callable[..., StrongswanNode]
MakePiked = Callable[..., PikedNode]


@contextmanager
def charon_nodes(tmp_path: Path, prefix: Path | None = None) -> Iterator[MakeCharon]:
    """A factory of charon nodes (from the build at ``prefix``, else the installed one),
    each stopped with its log tail printed on leaving (shown when the test fails)."""
    nodes: list[StrongswanNode] = []

    def make(
        ns: Namespace,
        name: str,
        *items: Connection | Secret,
        libipsec: bool | None = None,
        start: bool = True,
    ) -> StrongswanNode:
        if libipsec is None:
            libipsec = not kernel_has_esp(ns)
        node = StrongswanNode(ns, tmp_path, name, libipsec=libipsec, prefix=prefix)
        node.add(*items)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in nodes:
        node.stop()
        print(f"--- {node.name} charon log tail ({node.log_path}) ---")
        print(node.log_tail(60))


@pytest.fixture
def make_charon(lab: Lab, tmp_path: Path, require: Require) -> Iterator[MakeCharon]:
    require(charon_available(), "strongSwan charon/swanctl not installed")
    with charon_nodes(tmp_path) as make:
        yield make


@pytest.fixture
def make_piked(lab: Lab, tmp_path: Path, require: Require) -> Iterator[MakePiked]:
    require(piked_available(), "piked/pikectl not installed in the venv")
    nodes: list[PikedNode] = []

    def make(
        ns: Namespace, name: str, *items: Connection | Secret, start: bool = True
    ) -> PikedNode:
        node = PikedNode(ns, tmp_path, name)
        node.add(*items)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    for node in nodes:
        status = node.stop()
        print(f"--- {node.name} piked log tail ({node.log_path}), exit {status} ---")
        print(node.log_tail(80))
