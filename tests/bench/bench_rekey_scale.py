"""Does a hub's CPU per CHILD_SA rekey stay flat as it holds more SAs?

    .venv/bin/python tests/bench/bench_rekey_scale.py [--sas 200,2000,8000] [--rekeys 200]

In memory (two ``Ikev2Engine``s, no sockets, no kernel): branches ``cN`` bring up one IKE
SA with a CHILD_SA each against a hub with one wildcard connection, then ``--rekeys``
random branches rekey their CHILD_SA (CREATE_CHILD_SA, then the old pair's delete): the
hub's wall time per rekey, with every branch behind its own subnet (10.100.0.0/24 ...,
as a real hub sees them) and with all branches on the same selectors (as the
load-tester's). A rekey's old pair leaves the kernel with its policies unless another
live CHILD_SA still uses them (``pike.sa.policy_users``): that question used to walk
every child of the hub. A benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench.bench_hub_engine import BRANCH, HUB, conn, establish, text
from ikev2.pair import Node
from ikev2.pair import engine as v2engine


def branch_text(n: int, own_subnets: bool) -> str:
    def lts(i: int) -> str:
        return f"10.{100 + i // 250}.{i % 250}.0/24" if own_subnets else "10.1.0.0/24"

    return text(
        *(
            conn(f"c{i}", BRANCH, HUB, f"c{i}.branch.example", "hub.example", lts(i), "10.2.0.0/24")
            for i in range(n)
        )
    )


def hub_text(own_subnets: bool) -> str:
    rts = "10.0.0.0/8" if own_subnets else "10.1.0.0/24"
    return text(conn("hub", HUB, "%any", "hub.example", "*.branch.example", "10.2.0.0/24", rts))


def per_rekey(n: int, rekeys: int, own_subnets: bool) -> float:
    """The hub's µs per CHILD_SA rekey with ``n`` SAs held."""
    branch = Node(v2engine(branch_text(n, own_subnets), 1, True))
    hub = Node(v2engine(hub_text(own_subnets), 2, True))
    establish(branch, hub, n)
    by_name = {sa.name: sa for sa in branch.engine.sas.values()}
    total, now = 0.0, 100.0
    for i in random.Random(3).sample(range(n), min(rekeys, n)):
        branch.engine.rekey(f"c{i}", now, by_name[f"c{i}"].children[0].name)
        pending = branch.drain()
        while pending:
            t0 = time.perf_counter()
            for d in pending:
                hub.engine.receive_datagram(d.data, d.src, d.dst, now)
            back = hub.drain()
            total += time.perf_counter() - t0
            for d in back:
                branch.engine.receive_datagram(d.data, d.src, d.dst, now)
            pending = branch.drain()
    return total / min(rekeys, n) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sas", default="200,2000,8000")
    ap.add_argument("--rekeys", type=int, default=200)
    args = ap.parse_args()
    for n in (int(x) for x in args.sas.split(",")):
        own = per_rekey(n, args.rekeys, True)
        same = per_rekey(n, args.rekeys, False)
        print(
            f"{n:>6} SAs held: hub µs per CHILD_SA rekey  own subnets {own:8.1f}"
            f"  same selectors {same:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
