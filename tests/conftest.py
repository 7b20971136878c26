"""Shared pytest fixtures for every test tier.

- ``run_prefix``: the unique network-namespace prefix of this test run (``pk<pid>x-``).
- ``require(condition, reason)``: tests/lib/prereq.py's ``require`` as a fixture: skip
  when a prerequisite is missing, but *fail* when ``CI=true`` (in CI everything must run).
  Tests marked ``interop`` get the common prerequisites (root, ``ip``, ``unshare``) checked
  automatically the same way.
"""

from __future__ import annotations

import os
import shutil

import pytest

from lib.prereq import Require, require


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Unique prefix for network namespaces created by this test run."""
    return f"pk{os.getpid()}x-"


@pytest.fixture(name="require")
def require_fixture() -> Require:
    return require


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("interop") is None:
        return
    require(os.geteuid() == 0, "interop tests need root (network namespaces)")
    for tool in ("ip", "unshare", "mount"):
        require(shutil.which(tool) is not None, f"interop tests need `{tool}`")
