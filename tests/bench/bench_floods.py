"""Floods before authentication while strongSwan connects, at a larger scale than the test
(issue 13, item 7): prints, per flood, the time until charon's IKE SA is up, piked's RSS
before and after, the event loop's lag (piked's own probe and the control socket's answer
time), the half-open SAs held, the packets in and out, and the longest gap between
piked's WATCHDOG=1 notifications.

    sudo .venv/bin/python tests/bench/bench_floods.py [--scale 5]

The scenario is tests/interop/floods.py (namespaces made here, nothing leaves them);
tests/interop/test_preauth_floods.py runs it at scale 1 and asserts the bounds. A
benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from interop import floods
from interop.netns import Lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=5.0, help="flood counts x this")
    args = ap.parse_args()
    plan = floods.floods(args.scale)
    for f in plan:
        print(f"{f.kind}: {f.count} at {f.rate:g}/s from {','.join(f.sources)}")
    with tempfile.TemporaryDirectory(prefix="pike-floods-") as tmp, Lab.create() as lab:
        out = floods.run(lab, Path(tmp), plan)
    for fig in out.figures:
        print(fig.line())
    gaps = out.watchdog_gaps
    print(
        f"watchdog: {len(gaps) + 1} pings, longest gap {max(gaps, default=0):.2f} s "
        f"(WATCHDOG_USEC {floods.WATCHDOG_USEC / 1e6:g} s)"
    )


if __name__ == "__main__":
    main()
