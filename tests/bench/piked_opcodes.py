"""What piked's runtime runs per IKE SA under strongSwan's load-tester, counted rather than
timed.

    sudo .venv/bin/python tests/bench/piked_opcodes.py [--sas 400] [--top 40]
        [--python PATH] [--prefix DIR]

``handshake_opcodes.py`` counts the engine's Python in memory; the runtime around it
(sockets, the action drain, the data plane, metrics, logging, asyncio) only runs in a real
piked. This runs ``piked_fake_kernel.py`` (one connection, as ``bench_hub.py``) under a
``sys.settrace`` opcode counter (``handshake_opcodes.Counter``) in a network namespace on
CPU 0, the load-tester's generator in another on CPU 1 (``bench_hub``'s helpers). The
counter starts on SIGRTMIN once piked is ready and stops on SIGRTMIN+1 once the generator
saw its SAs established; piked then writes the counts, printed here per established SA:
per package, the runtime's share (``pike.daemon``, ``pike.metrics`` and the standard
library's ``logging`` and ``asyncio``, each of these two split by which pike package called
it) and the functions with the most instructions. Counts move by a few per cent between
runs (how the generator's datagrams batch per wake-up), timing on a shared machine by
+-25 %. A benchmark: it prints, never asserts. Needs root (namespaces) and the
load-tester build (``bench_hub.py --prefix``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench import bench_hub
from bench.handshake_opcodes import Counter, Where, _function, _package
from interop.netns import Lab, kill_pid

# Standard library packages whose instructions are charged to the pike package that
# called into them (a log call from the runtime is the runtime's cost).
ATTRIBUTED = ("logging", "asyncio")
RUNTIME = ("daemon", "metrics")
# Callers whose logging and asyncio are the runtime's: its packages, the event loop
# itself and pike.board's loop-lag probe.
RUNTIME_CALLERS = (*RUNTIME, "loop", "board")


def _stdlib(path: str) -> str | None:
    """``/usr/lib/python3.11/logging/__init__.py`` -> ``logging``; None for others."""
    for name in ATTRIBUTED:
        if f"/{name}/" in path:
            return name
    return None


class CallerCounter(Counter):
    """``Counter`` that also charges the instructions of ``logging`` and ``asyncio`` to
    the nearest pike package up the stack (the event loop's own work, ``asyncio.run`` from
    ``pike.cli``, as ``loop``)."""

    def __init__(self) -> None:
        super().__init__()
        self.charged: collections.Counter[tuple[str, str]] = collections.Counter()
        self._frames: dict[FrameType, tuple[str, str]] = {}

    def _caller(self, frame: FrameType) -> str:
        f = frame.f_back
        while f is not None:
            path = f.f_code.co_filename
            if "/pike/" in path:
                package = _package(path.rsplit("/pike/", 1)[-1])
                return "loop" if package == "cli" else package
            f = f.f_back
        return "loop"

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Counter:
        if event == "call":
            lib = _stdlib(frame.f_code.co_filename)
            if lib is not None:
                self._frames[frame] = (lib, self._caller(frame))
        elif event == "opcode":
            charge = self._frames.get(frame)
            if charge is not None:
                self.charged[charge] += 1
        elif event == "return":
            self._frames.pop(frame, None)
        return super().__call__(frame, event, arg)


def traced_piked(out: Path, argv: list[str]) -> None:
    """In piked's process: the fake-kernel piked, counted between SIGRTMIN and
    SIGRTMIN+1; the counts go to ``out`` (JSON) at the stop."""
    tracer = CallerCounter()

    def start(*_: object) -> None:
        sys.settrace(tracer)

    def stop(*_: object) -> None:
        sys.settrace(None)
        ops: list[tuple[Where, int, int]] = [
            (w, n, tracer.calls[w]) for w, n in tracer.ops.most_common()
        ]
        tmp = out.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "ops": [[list(w), n, calls] for w, n, calls in ops],
                    "charged": [[lib, caller, n] for (lib, caller), n in tracer.charged.items()],
                }
            )
        )
        tmp.replace(out)

    signal.signal(signal.SIGRTMIN, start)
    signal.signal(signal.SIGRTMIN + 1, stop)
    sys.argv = [str(Path(__file__).with_name("piked_fake_kernel.py")), *argv]
    runpy.run_path(sys.argv[0], run_name="__main__")


def drive(sas: int, python: Path, prefix: Path, out: Path) -> int:
    """piked (counted) and the generator in two namespaces; the SAs established."""
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="piked-ops-") as tmp:
        d = Path(tmp)
        gen, resp = lab.add_ns("gen"), lab.add_ns("resp")
        lab.link(gen, resp, f"{bench_hub.GEN}/24", f"{bench_hub.RESP}/24")
        (d / "pike.toml").write_text(bench_hub.pike_toml(1, d / "pike.sock"))
        (d / "pike.toml").chmod(0o600)
        env = dict(os.environ, PIKE_CONFIG_CACHE=str(d / "cache"))
        argv = [str(python), __file__, "--piked", str(out), "--config", str(d / "pike.toml")]
        with (d / "piked.log").open("wb") as log_out:
            piked = resp.popen(
                bench_hub.pinned(argv, bench_hub.RESPONDER_CPU), stdout=log_out, env=env
            )
        generator = None
        try:
            bench_hub.wait_for((d / "pike.sock").exists, 60, "piked's control socket")
            time.sleep(0.5)  # READY follows the control socket
            os.kill(piked.pid, signal.SIGRTMIN)
            time.sleep(0.3)
            gd = d / "gen"
            gd.mkdir()
            plugins = bench_hub.generator_plugins(sas)
            generator = bench_hub.start_charon(gen, prefix, gd, plugins, bench_hub.GENERATOR_CPU)
            log = gd / "charon.log"
            bench_hub.wait_up(log, sas)
            time.sleep(0.5)  # the last answers are out
            os.kill(piked.pid, signal.SIGRTMIN + 1)
            bench_hub.wait_for(out.exists, 30, "piked's counts")
            return bench_hub.established(log)
        finally:
            if generator is not None:
                kill_pid(generator.pid)
            kill_pid(piked.pid)


def report(path: Path, sas: int, top: int) -> None:
    data = json.loads(path.read_text())
    packages: collections.Counter[str] = collections.Counter()
    total = calls = 0
    rows = []
    for (file, line, name), n, c in data["ops"]:
        packages[_package(file)] += n
        total, calls = total + n, calls + c
        rows.append((n, c, _function((file, line, name))))
    charged = {(lib, caller): n for lib, caller, n in data["charged"]}
    print(f"{sas} IKE SAs established; per SA, the whole process: {total / sas:.0f}", end=" ")
    print(f"instructions, {calls / sas:.0f} calls\n\ninstructions  package")
    for package, n in packages.most_common(12):
        print(f"{n / sas:10.0f}  {package}")
    print("\nthe runtime's share per SA (``loop``: the event loop, run from pike.cli):")
    own = sum(packages[p] for p in RUNTIME)
    for p in RUNTIME:
        print(f"{packages[p] / sas:10.0f}  pike.{p}")
    for (lib, caller), n in sorted(charged.items()):
        mine = caller in RUNTIME_CALLERS
        own += n if mine else 0
        note = "" if mine else " (not in the runtime's sum)"
        print(f"{n / sas:10.0f}  {lib}, called from {caller}{note}")
    print(f"{own / sas:10.0f}  the runtime's in all: daemon, metrics, their logging and asyncio")
    print(f"\ninstructions  calls  function (top {top})")
    for n, c, where in rows[:top]:
        print(f"{n / sas:10.1f} {c / sas:6.2f}  {where}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sas", type=int, default=400)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--python", type=Path, default=bench_hub.VENV / "python")
    ap.add_argument("--prefix", type=Path, default=bench_hub.REPO / "tests/bench/.load-tester")
    ap.add_argument("--keep", type=Path, help="also keep the raw counts (JSON) here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("piked_opcodes needs root (network namespaces)")
    prefix = args.prefix.resolve()
    bench_hub.ensure_load_tester(prefix)
    with tempfile.TemporaryDirectory(prefix="piked-ops-out-") as tmp:
        out = Path(tmp) / "counts.json"
        os.chmod(tmp, 0o755)
        got = drive(args.sas, args.python, prefix, out)
        if args.keep is not None:
            args.keep.write_text(out.read_text())
        report(out, got, args.top)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--piked":  # in piked's process (``drive``)
        traced_piked(Path(sys.argv[2]), sys.argv[3:])
    else:
        main()
