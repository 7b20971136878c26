"""The image tier: the ``image`` marker (slow: builds the arm64 image, ~10 min, and boots
it under qemu, ~4 min).

Opt-in so that a plain ``pytest tests`` never starts a quarter-hour build: the tests run
under CI (``CI=true``, as .ci/run sets it), with ``PIKE_IMAGE_TESTS=1``, or when ``-m``
names the marker (``-m image``); otherwise they are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lib.prereq import in_ci, require

IMAGE_DIR = Path(__file__).resolve().parents[2] / "image"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the arm64 gateway image and boots it under qemu (slow, root)"
    )


def _opted_in(config: pytest.Config) -> bool:
    if os.environ.get("PIKE_IMAGE_TESTS", "") not in ("", "0"):
        return True
    if in_ci():
        return True  # CI runs every tier
    expr = str(config.getoption("-m", default="") or "")
    return "image" in expr and "not image" not in expr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _opted_in(config):
        return
    skip = pytest.mark.skip(
        reason="image tier is opt-in: set PIKE_IMAGE_TESTS=1 or run with -m image "
        "(build ~10 min, boot ~4 min, root)"
    )
    for item in items:
        if item.get_closest_marker("image") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image() -> Path:
    """The image under test: ``PIKE_IMAGE`` if set, else one build for the whole session
    (the boot test and the A/B update test share it)."""
    require(os.geteuid() == 0, "the image build needs root (mmdebstrap --mode=root, chroot)")
    require(shutil.which("apt-get") is not None, "the image build needs a Debian host")
    given = os.environ.get("PIKE_IMAGE")
    if given:
        return Path(given)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(IMAGE_DIR / "build.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    print(f"\nimage/build.sh: exit {proc.returncode} in {time.monotonic() - t0:.0f}s")
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stderr[-5000:]
    # build.sh writes to $PIKE_IMAGE_OUT when set: look there, not at an older image/out
    out = Path(os.environ.get("PIKE_IMAGE_OUT") or IMAGE_DIR / "out")
    images = sorted(out.glob("pike-*-arm64.img"), key=lambda p: p.stat().st_mtime)
    assert images, "build.sh made no image"
    return images[-1]
