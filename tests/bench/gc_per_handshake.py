"""What does Python's cyclic collector cost per IKE_SA_INIT+IKE_AUTH, and why?

    .venv/bin/python tests/bench/gc_per_handshake.py [--sas 3000] [--threshold 10000]

In memory, the pair of ``bench_hub_engine.py`` (a branch engine with one connection per
SA against a wildcard hub, both in this process): ``--sas`` handshakes with piked's
collector threshold (``gc.set_threshold(10_000)``, or ``--threshold``). Printed: the
collections of each generation per 1000 handshakes and their time (``gc.callbacks``),
the objects the collector tracks per held SA pair (what every young and middle
collection scans once more), and the objects found in reference cycles per handshake
(garbage the reference counts could not free). A benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench.bench_hub_engine import branch_text, bring_up, hub_text
from ikev2.pair import Node
from ikev2.pair import engine as v2engine


def up(branch: Node, hub: Node, lo: int, hi: int) -> None:
    for i in range(lo, hi):
        bring_up(branch, hub, f"c{i}")
        for node in (hub, branch):  # the harness keeps no action: piked's runtime does not
            node.events.clear()
            node.outbox.clear()


def tracked() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sas", type=int, default=3000)
    ap.add_argument("--threshold", type=int, default=10_000)
    args = ap.parse_args()
    n, warm = args.sas, 100
    branch = Node(v2engine(branch_text(n + warm + 200), 1))
    hub = Node(v2engine(hub_text(1), 2))
    up(branch, hub, 0, warm)
    gc.collect()
    gc.set_threshold(args.threshold)
    runs: collections.Counter[int] = collections.Counter()
    spent = [0.0, 0.0]  # total, start of the current collection

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            runs[info["generation"]] += 1
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(watch)
    t0 = time.process_time()
    up(branch, hub, warm, warm + n)
    cpu = time.process_time() - t0
    gc.callbacks.remove(watch)
    per_k = {g: round(runs[g] * 1000 / n, 1) for g in sorted(runs)}
    print(f"{n} handshakes, threshold {args.threshold}, both engines in this process")
    print(f"  collections per 1000 handshakes by generation: {per_k}")
    print(
        f"  collector time: {spent[0] * 1e6 / n:.1f} µs per handshake pair "
        f"({spent[0] / cpu * 100:.1f} % of the process time)"
    )
    # what a held SA pair leaves for the collector: tracked objects, by type
    gc.collect()
    before = tracked()
    up(branch, hub, warm + n, warm + n + 200)
    gc.collect()
    grown = tracked() - before
    print(f"  tracked objects per held SA pair: {sum(grown.values()) / 200:.1f}")
    for name, count in grown.most_common(12):
        print(f"    {count / 200:5.2f} {name}")
    # garbage in reference cycles
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    del gc.garbage[:]
    b2, h2 = Node(v2engine(branch_text(200), 1)), Node(v2engine(hub_text(1), 3))
    gc.collect()
    del gc.garbage[:]
    up(b2, h2, 0, 200)
    gc.collect()
    print(f"  objects in reference cycles per handshake pair: {len(gc.garbage) / 200:.2f}")
    gc.set_debug(0)


if __name__ == "__main__":
    main()
