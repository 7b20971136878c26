"""strongSwan's load-tester's own conversation with piked, replayed into an in-memory hub.

    sudo .venv/bin/python tests/bench/live_replay.py --record FILE [--sas 1000]
    .venv/bin/python tests/bench/live_replay.py --replay FILE [--rounds 5] [--count] [--top 40]

``bench_hub_engine``'s in-memory pair is pike talking to pike; the load-tester that
``bench_hub.py`` measures piked against sends what charon sends (CERTREQ and IDr in
IKE_AUTH, REDIRECT_SUPPORTED, ESP_TFC_PADDING_NOT_SUPPORTED, notifies pike does not know,
up to 32 handshakes interleaved), so the engine's work per handshake differs. ``--record``
runs piked (``piked_fake_kernel.py``, one connection as ``bench_hub.py --conns 1``) under
the load-tester in two network namespaces of its own, with the engine's randomness drawn
from a fixed seed, and keeps every datagram and timer the engines got, in order, with
their times. ``--replay`` feeds them into fresh in-memory ``Engines`` with the same seed,
config and SPI numbering: the hub draws the same keys, so it opens the generator's
IKE_AUTH messages and answers them as piked did. It prints the hub's time per
established IKE_SA+CHILD_SA (thread CPU time, collector off; the fastest of ``--rounds`` replays; no
sockets, no kernel, no event loop) and with ``--count`` the Python bytecode instructions
and calls per SA by package and function (``handshake_opcodes.Counter``). A benchmark:
it prints, and exits non-zero only when the replay does not bring the recorded SAs up
(record again with the code you replay).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import pickle
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench import bench_hub
from bench.handshake_opcodes import Counter, print_counts
from bench.piked_fake_kernel import RECORD_SEED
from interop.netns import Lab, kill_pid
from pike.daemon.engines import Engines
from pike.ikev2.ike_sa import IkeState
from pike.policy.ipsec import KernelCaps
from pike.policy.loader import load_config_text
from pike.policy.ts import IPAddress

Events = list[tuple[str, tuple[Any, ...]]]


class KernelSpis:
    """The SPIs ``piked_fake_kernel.FakeKernel.get_spi`` hands out, in the same order."""

    def __init__(self) -> None:
        self._next = itertools.count(0xC0000001)

    def child_spi(self, src: IPAddress, dst: IPAddress) -> int:
        return next(self._next)


def record(path: Path, sas: int, python: Path | None) -> None:
    """piked under the load-tester's ``sas`` IKE SAs; its conversation to ``path``."""
    if os.geteuid() != 0:
        sys.exit("--record needs root (network namespaces)")
    prefix = bench_hub.REPO / "tests" / "bench" / ".load-tester"
    bench_hub.ensure_load_tester(prefix)
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="live-replay-") as tmp:
        d = Path(tmp)
        gen, resp = lab.add_ns("gen"), lab.add_ns("resp")
        lab.link(gen, resp, f"{bench_hub.GEN}/24", f"{bench_hub.RESP}/24")
        proc, _ = bench_hub.start_piked(resp, d, 1, python=python, record=path)
        gd = d / "gen"
        gd.mkdir()
        generator = bench_hub.start_charon(gen, prefix, gd, bench_hub.generator_plugins(sas))
        try:
            log = gd / "charon.log"
            bench_hub.wait_up(log, sas, quiet=10)
            time.sleep(0.3)  # the last responses are out
            path.unlink(missing_ok=True)
            os.kill(proc.pid, signal.SIGUSR2)
            bench_hub.wait_for(path.exists, 30, "the recording")
            up = bench_hub.established(log)
        finally:
            kill_pid(generator.pid)
            kill_pid(proc.pid)
    print(f"recorded {up} IKE SAs the generator saw up in {path}")


def hub(config_text: str) -> Engines:
    """A fresh in-memory hub as the recording piked made its engines."""
    return Engines(
        load_config_text(config_text),
        random=random.Random(RECORD_SEED).randbytes,
        kernel_caps=KernelCaps(esp=True),
        spis=KernelSpis(),
    )


def replay(config_text: str, events: Events) -> int:
    """Every recorded event into a fresh hub, its actions taken as the runtime takes them;
    the IKE SAs it brought up."""
    engines = hub(config_text)
    receive, timer = engines.receive_datagram, engines.handle_timer
    next_action = engines.next_action
    for kind, args in events:
        if kind == "datagram":
            receive(*args)
        else:
            timer(*args)
        while next_action() is not None:
            pass
        engines.get_timer()
    return sum(1 for sa in engines.v2.sas.values() if sa.state == IkeState.ESTABLISHED)


def main() -> None:
    ap = argparse.ArgumentParser()
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--record", type=Path, metavar="FILE")
    what.add_argument("--replay", type=Path, metavar="FILE")
    ap.add_argument("--sas", type=int, default=1000)
    ap.add_argument("--python", type=Path, help="the recording piked's interpreter")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", action="store_true", help="bytecode instructions per SA")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    if args.record is not None:
        record(args.record.resolve(), args.sas, args.python)
        return
    config_text, events = pickle.loads(args.replay.read_bytes())
    datagrams = sum(1 for kind, _ in events if kind == "datagram")
    up = replay(config_text, events)  # also warms first-use caches
    if up == 0:
        sys.exit("no IKE SA came up: record again with the code you replay")
    print(f"{len(events)} events ({datagrams} datagrams), {up} IKE SAs up")
    gc.disable()  # a collection lands anywhere; piked's threshold makes them rare
    best = []
    for _ in range(args.rounds):
        t = time.thread_time()
        replay(config_text, events)
        best.append(time.thread_time() - t)
        gc.collect()
    per_sa = sorted(best)[0] / up * 1e6
    rounds = ", ".join(f"{b / up * 1e6:.1f}" for b in best)
    print(f"the hub's part per IKE_SA+CHILD_SA: {per_sa:.1f} µs (fastest; rounds {rounds})")
    if args.count:
        tracer = Counter()
        sys.settrace(tracer)
        try:
            replay(config_text, events)
        finally:
            sys.settrace(None)
        print_counts(tracer, up, args.top)


if __name__ == "__main__":
    main()
