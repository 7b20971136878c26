"""How long piked takes from start to ``READY=1`` with N connections (bench_hub.py's
config) and what it holds then: without a config cache entry (first boot, a piked not
under the unit), from the entry of the same file, and after an edit of one connection
(the entry is of the text before). Optionally interleaved with another checkout's piked
(``--other /work/main``) for a side-by-side. Medians of interleaved rounds; needs root
(a network namespace for piked's sockets).

    sudo .venv/bin/python tests/bench/bench_start.py [--conns 10000] [--rounds 3]
        [--python PATH] [--other TREE]

``--python``: the interpreter this checkout's piked runs under (a venv's python with pike
installed, e.g. one made from Debian's /usr/bin/python3; default ``.venv``).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench import bench_hub
from bench.bench_hub import GEN, RESP, pike_toml, start_piked
from interop.netns import Lab, Namespace, kill_pid


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one(ns: Namespace, d: Path, conns: int, edit: bool) -> tuple[float, float]:
    """Start piked in ``d`` (its cache as it is), return seconds to READY and RSS 1 s on."""
    text = None
    if edit:  # the text of the entry, with one connection changed and every line moved
        middle = f"[connections.h{conns // 2}]\n"
        text = "# edited\n" + pike_toml(conns, d / "pike.sock").replace(
            middle, middle + 'rekey_time = "3h"\n'
        )
    proc, took = start_piked(ns, d, conns, text)
    time.sleep(1.0)
    rss = rss_mib(proc.pid)
    kill_pid(proc.pid)
    return took, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--other", type=Path, help="another checkout (with its .venv) to compare")
    ap.add_argument("--python", type=Path, help="this checkout's piked's interpreter")
    args = ap.parse_args()
    # each tree's venv (its bin directory: piked's python)
    trees = {"this": args.python.parent if args.python else bench_hub.REPO / ".venv" / "bin"}
    if args.other:
        trees["other"] = args.other.resolve() / ".venv" / "bin"
    res: dict[str, list[tuple[float, float]]] = {}
    loads: list[float] = []
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        gen, resp = lab.add_ns("gen"), lab.add_ns("resp")
        lab.link(gen, resp, f"{GEN}/24", f"{RESP}/24")
        for _ in range(args.rounds):
            for tree_name, venv in trees.items():
                bench_hub.VENV = venv
                d = Path(tmp) / tree_name
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                for label, edit in (("no entry", False), ("entry", False), ("edited", True)):
                    res.setdefault(f"{tree_name}: {label}", []).append(
                        one(resp, d, args.conns, edit)
                    )
                loads.append(os.getloadavg()[0])
    for tree_name, venv in trees.items():
        print(f"# {tree_name}: {bench_hub.interpreter(venv / 'python')}")
    print(
        f"# {args.conns} connections; machine: shared 2 cores "
        f"(load average {min(loads):.1f}-{max(loads):.1f}); medians of {args.rounds}"
    )
    for label, vals in res.items():
        secs = [v[0] for v in vals]
        rss = [v[1] for v in vals]
        print(
            f"{label:18s} READY {statistics.median(secs):5.2f} s "
            f"({', '.join(f'{s:.2f}' for s in secs)})   "
            f"RSS {statistics.median(rss):5.1f} MiB ({', '.join(f'{r:.1f}' for r in rss)})"
        )


if __name__ == "__main__":
    main()
