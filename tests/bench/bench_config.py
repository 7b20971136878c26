"""How long does a hub's config take to load: ``pike.toml`` with N connections (one per
branch ID, as bench_hub.py writes it), through ``load_checked`` as piked's start, reload
and ``pikectl check-config`` run it: parsed and validated (no cache), parsed and stored
(the first start), read from the config cache (every later start or reload of the same
file), and after an edit of one connection (the cache holds the entry of the text
before). Also ``tomllib`` and pike's reader (``pike.policy.toml_fast``) alone. Medians
over interleaved rounds; no root.

    .venv/bin/python tests/bench/bench_config.py [--conns 10000] [--rounds 5]

A benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench.bench_hub import pike_toml
from pike.daemon.configfile import load_checked
from pike.policy import toml_fast


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    res: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        conf = Path(tmp) / "pike.toml"
        conf.write_text(pike_toml(args.conns, Path(tmp) / "pike.sock"))
        conf.chmod(0o600)
        cache = Path(tmp) / "cache"
        text = conf.read_text()
        print(f"# {args.conns} connections, {len(text) / 1e6:.1f} MB", flush=True)

        def load(cache_dir: str) -> Callable[[], object]:
            def run() -> object:
                os.environ["PIKE_CONFIG_CACHE"] = cache_dir
                return load_checked(str(conf), probe=False)

            return run

        def edit_and_load(cache_dir: str) -> Callable[[], object]:
            """One connection changed and every line moved (the cache holds the entry of
            the text before): what a reload after an operator's edit costs."""
            middle = f"[connections.h{args.conns // 2}]\n"
            edited = "# edited\n" + text.replace(middle, middle + 'rekey_time = "3h"\n')
            run = load(cache_dir)

            def edit_run() -> object:
                conf.write_text(edited)
                return run()

            return edit_run

        loads: list[float] = []
        for _ in range(args.rounds):
            for label, fn in (
                ("tomllib.loads alone", lambda: tomllib.loads(text)),
                ("toml_fast.loads alone", lambda: toml_fast.loads(text)),
                ("load, no cache", load("")),
                ("load, cache miss (parse + store)", load(str(cache))),
                ("load, cache hit", load(str(cache))),
                ("load after an edit", edit_and_load(str(cache))),
            ):
                res.setdefault(label, []).append(timed(fn))
            conf.write_text(text)
            shutil.rmtree(cache)
            loads.append(os.getloadavg()[0])
    load_range = f"{min(loads):.1f}-{max(loads):.1f}"
    print(f"machine: shared 2 cores (load average {load_range}); medians of {args.rounds}")
    for label, vals in res.items():
        rounds = ", ".join(f"{v:.2f}" for v in vals)
        print(f"{label:34s} {statistics.median(vals):6.2f} s   ({rounds})")


if __name__ == "__main__":
    main()
