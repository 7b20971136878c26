"""Run the structure-aware fuzzer: ``python tests/fuzz/run.py [--target T] [-n N] [--seed S]``.

Prints, per target, the inputs run, the rate and each distinct finding (an exception out
of a target, by type and the innermost pike frame) with the seed and index that
reproduce it: ``--target T --seed S --start I -n 1``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (as pytest has it)

from fuzz.targets import make_targets


@dataclass
class Result:
    target: str
    inputs: int = 0
    unsent: int = 0  # mutations the harness could not encode
    seconds: float = 0.0
    findings: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (index, tb)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def _key(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/pike/" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def run(target: str, count: int, seed: int, start: int = 0, seconds: float | None = None) -> Result:
    fn = make_targets()[target]
    result = Result(target)
    t0 = time.perf_counter()
    for i in range(start, start + count):
        rng = random.Random(f"{seed}:{target}:{i}")
        try:
            if not fn(rng):
                result.unsent += 1
        except Exception as exc:  # a finding: the targets catch what their contract allows
            key = _key(exc)
            if key not in result.findings:
                result.findings[key] = (i, traceback.format_exc())
        result.inputs += 1
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
    result.seconds = time.perf_counter() - t0
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", default="all")
    p.add_argument("-n", "--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--seconds", type=float, default=None, help="stop each target after this")
    p.add_argument("-v", "--verbose", action="store_true", help="print each traceback")
    args = p.parse_args()
    logging.disable(logging.CRITICAL)  # millions of drops: their log lines cost more
    names = list(make_targets()) if args.target == "all" else args.target.split(",")
    total = 0
    for name in names:
        r = run(name, args.count, args.seed, args.start, args.seconds)
        total += len(r.findings)
        print(
            f"{name}: {r.inputs} inputs ({r.unsent} unencodable) in {r.seconds:.1f} s "
            f"({r.rate:.0f}/s), {len(r.findings)} findings"
        )
        for key, (i, tb) in r.findings.items():
            print(f"  {key}  (--target {name} --seed {args.seed} --start {i} -n 1)")
            if args.verbose:
                print("    " + tb.replace("\n", "\n    "))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
