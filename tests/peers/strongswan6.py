"""strongSwan 6.0.6 with ML-KEM, built from ../shared/peers/strongswan-6.0.6.tar.gz.

:func:`strongswan6_prefix` builds it once (tests/peers/build-strongswan6.sh caches the
result under /var/cache/pike-strongswan6 by tarball and script hash: about 1.5 minutes
on 2 cores the first time, nothing afterwards) and returns the install prefix. Without
the tarball (or root, which the cache needs) the test skips, and fails under CI; a build
that breaks with the tarball present always fails the test.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from lib.prereq import unavailable

REPO = Path(__file__).resolve().parents[2]
TARBALL = REPO.parent / "shared" / "peers" / "strongswan-6.0.6.tar.gz"
SCRIPT = Path(__file__).with_name("build-strongswan6.sh")
_built: list[Path] = []


def strongswan6_prefix() -> Path:
    """The install prefix of the built strongSwan 6 (built now if not cached)."""
    if _built:
        return _built[0]
    if not TARBALL.exists():
        unavailable(f"strongSwan 6 source {TARBALL} is absent")
    if os.geteuid() != 0:
        unavailable("building strongSwan 6 into /var/cache/pike-strongswan6 needs root")
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(SCRIPT), str(TARBALL)], capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    prefix = Path(proc.stdout.strip().splitlines()[-1])
    print(f"# strongSwan 6 at {prefix} ({time.monotonic() - t0:.1f} s)")
    _built.append(prefix)
    return prefix
