"""Does an IKEv2 responder's cost per datagram stay flat as it holds more SAs, and what
does a responder handshake cost in memory with 1 or 10 000 connections configured?

    .venv/bin/python tests/bench/bench_hub_engine.py [--sas 10000] [--rounds 3] [--conns 10000]

In memory (two ``Ikev2Engine``s, no sockets, no kernel, one process): a branch engine with
one connection per SA (ids ``cN.branch.example``) brings up ``--sas`` IKE SAs with a
CHILD_SA each against a hub engine with one wildcard connection (``*.branch.example``),
then (a) 300 DPD requests to random SAs: the hub's CPU per datagram including its
``get_timer``, and ``get_timer``/``handle_timer`` alone, with 10 SAs and with ``--sas``;
(b) the hub's CPU per IKE_SA_INIT+IKE_AUTH (responder only, process time), with the
wildcard hub and with a hub of ``--conns`` connections, one per branch ID. Medians over
``--rounds`` interleaved rounds. The strongSwan comparison (load-tester, real sockets) is
not here: see docs/performance.md. A benchmark: it prints, never asserts.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from ikev2.pair import PSK, Node
from ikev2.pair import engine as v2engine
from lib.pikeconf import Child, Conn, PikeConf, Secret
from pike.ikev2.tasks.ike_delete import Informational
from pike.sa.actions import SendDatagram

HUB, BRANCH = "192.0.2.2", "192.0.2.1"
IKE = "aes128gcm16-prfsha256-x25519"


def conn(name: str, local: str, remote: str, my_id: str, peer_id: str, lts: str, rts: str) -> Conn:
    return Conn(
        name=name,
        local_addrs=[local],
        remote_addrs=[remote],
        proposals=[IKE],
        local={"auth": "psk", "id": my_id},
        remote={"auth": "psk", "id": peer_id},
        children=[Child([lts], [rts], "net", ["aes128gcm16"], start_action="none")],
    )


def text(*conns: Conn) -> str:
    return PikeConf(
        daemon={"control_socket": "/tmp/unused.sock", "log_level": "warning"},
        connections=conns,
        secrets=[Secret("all", PSK)],
    ).render()


def branch_text(n: int) -> str:
    return text(
        *(
            conn(
                f"c{i}",
                BRANCH,
                HUB,
                f"c{i}.branch.example",
                "hub.example",
                "10.1.0.0/24",
                "10.2.0.0/24",
            )
            for i in range(n)
        )
    )


def hub_text(n_conns: int) -> str:
    if n_conns <= 1:
        return text(
            conn(
                "hub", HUB, "%any", "hub.example", "*.branch.example", "10.2.0.0/24", "10.1.0.0/24"
            )
        )
    return text(
        *(
            conn(
                f"h{i}",
                HUB,
                "%any",
                "hub.example",
                f"c{i}.branch.example",
                "10.2.0.0/24",
                "10.1.0.0/24",
            )
            for i in range(n_conns)
        )
    )


def bring_up(
    branch: Node,
    hub: Node,
    name: str,
    now: float = 0.0,
    sent: Callable[[list[SendDatagram]], None] | None = None,
) -> float:
    """The branch's connection ``name`` up against the hub, exchange by exchange (each
    batch of the branch's datagrams shown to ``sent`` first); returns the hub's process
    CPU seconds."""
    hub_cpu = 0.0
    branch.engine.initiate(name, now)
    pending = branch.drain()
    while pending:
        if sent is not None:
            sent(pending)
        t0 = time.process_time()
        for d in pending:
            hub.engine.receive_datagram(d.data, d.src, d.dst, now)
        back = hub.drain()
        hub.engine.get_timer()
        hub_cpu += time.process_time() - t0
        for d in back:
            branch.engine.receive_datagram(d.data, d.src, d.dst, now)
        pending = branch.drain()
    return hub_cpu


def establish(branch: Node, hub: Node, n: int) -> float:
    """Bring up c0..c(n-1); returns the hub's process CPU seconds per handshake."""
    hub_cpu = sum(bring_up(branch, hub, f"c{i}") for i in range(n))
    hub.events.clear()
    branch.events.clear()
    up = sum(1 for sa in hub.engine.sas.values() if sa.state.value == "ESTABLISHED")
    assert up == n, (up, n)
    return hub_cpu / n


def per_datagram(branch: Node, hub: Node, probes: int = 300) -> tuple[float, float, float]:
    """Hub CPU (µs) per DPD request (+ get_timer), per get_timer, per idle handle_timer."""
    sas = list(branch.engine.sas.values())
    rng = random.Random(7)
    total = 0.0
    for _ in range(probes):
        sa = rng.choice(sas)
        sa.tasks.queue(Informational(sa, True))
        sa.tasks.initiate(1.0)
        (req,) = branch.drain()
        t0 = time.perf_counter()
        hub.engine.receive_datagram(req.data, req.src, req.dst, 1.0)
        back = hub.drain()
        hub.engine.get_timer()
        total += time.perf_counter() - t0
        for d in back:
            branch.engine.receive_datagram(d.data, d.src, d.dst, 1.0)
        branch.drain()
    t0 = time.perf_counter()
    for _ in range(1000):
        hub.engine.get_timer()
    gt = (time.perf_counter() - t0) / 1000
    t0 = time.perf_counter()
    for _ in range(1000):
        hub.engine.handle_timer(1.0)  # nothing due yet
    ht = (time.perf_counter() - t0) / 1000
    return total / probes * 1e6, gt * 1e6, ht * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sas", type=int, default=10_000)
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"# building configs ({args.sas} branch connections, {args.conns} hub connections)")
    branch_big = branch_text(args.sas)
    branch_small = branch_text(10)
    hub_one, hub_many = hub_text(1), hub_text(args.conns)
    res: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for label, n, btext, htext in (
            ("10 SAs", 10, branch_small, hub_one),
            (f"{args.sas} SAs", args.sas, branch_big, hub_one),
        ):
            branch = hub = None  # the last pair's SAs and config are garbage in cycles:
            gc.collect()  # freed here, not by a full collection inside a measured phase
            branch, hub = Node(v2engine(btext, 1)), Node(v2engine(htext, 2 + r))
            hs = establish(branch, hub, n)
            dg, gt, ht = per_datagram(branch, hub)
            for k, v in (
                ("handshake ms, 1 conn, " + label, hs * 1e3),
                ("datagram µs, " + label, dg),
                ("get_timer µs, " + label, gt),
                ("handle_timer µs, " + label, ht),
            ):
                res.setdefault(k, []).append(v)
        # the responder handshake with one connection per branch configured
        n = min(args.sas, 1000)
        branch = hub = None
        gc.collect()
        branch, hub = Node(v2engine(branch_text(n), 1)), Node(v2engine(hub_many, 9 + r))
        res.setdefault(f"handshake ms, {args.conns} conns, {n} SAs", []).append(
            establish(branch, hub, n) * 1e3
        )
        print(f"# round {r + 1} done", flush=True)
    print("machine: shared 2 cores; medians of", args.rounds, "rounds")
    for k, vals in res.items():
        rounds = ", ".join(f"{x:.2f}" for x in vals)
        print(f"{k:45s} {statistics.median(vals):10.2f}   (rounds: {rounds})")
    small = statistics.median(res["datagram µs, 10 SAs"])
    big = statistics.median(res[f"datagram µs, {args.sas} SAs"])
    print(f"datagram cost ratio {args.sas} SAs / 10 SAs: {big / small:.2f}")


if __name__ == "__main__":
    main()
