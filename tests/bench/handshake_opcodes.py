"""What does an IKEv2 responder handshake execute in Python, counted rather than timed?

    .venv/bin/python tests/bench/handshake_opcodes.py [--handshakes 100] [--top 30] [--time N]

CPU time on a shared 2-core machine moves by +-25 % with the other tenants' load; the
number of bytecode instructions the hub's engine runs per IKE_SA_INIT+IKE_AUTH (one
CHILD_SA, PSK, aes128gcm16-prfsha256-x25519; ``bench_hub_engine``'s in-memory pair) does
not, so it shows what a change to the handshake path saves. Counted with
``sys.settrace`` opcode events: Python-level work only (crypto and other C code do not
count, and the tracer's own cost is outside). Also counted: member lookups on Enum
classes (``SomeEnum.MEMBER``), which on Python 3.11 go through
``EnumType.__getattr__`` and cost ~0.3 µs each, invisible to the instruction count.
Prints the totals per handshake, per package (``wire``, ``ikev2``, ...), the functions
with the most Enum member loads and the functions with the most instructions (a
dataclass-generated ``__init__`` under the name of its class: they all live in
"<string>"). Fewer instructions is not always less time: a scan moved into C (``filter``,
``Counter``) counts few instructions but allocates objects per call, so time a change
too: ``--time N`` then times N untraced handshakes, the hub's part and of it the codec's
entry points where the engine calls them (the collector off: its pauses land anywhere),
or a best-of-N loop like ``tests/wire/bench_codec.py``. A benchmark: it prints, never
asserts.
"""

from __future__ import annotations

import argparse
import collections
import dis
import enum
import gc
import itertools
import sys
import time
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench.bench_hub_engine import branch_text, hub_text
from ikev2.pair import Node
from ikev2.pair import engine as v2engine
from pike.ikev2 import engine as engine_module
from pike.ikev2 import ike_sa as ike_sa_module
from pike.ikev2 import responder as responder_module

Where = tuple[str, int, str]


class Counter:
    """A ``sys.settrace`` tracer counting opcodes and calls per code object, and the
    Enum member loads (a global that is an Enum class, then an attribute of it)."""

    def __init__(self) -> None:
        self.ops: collections.Counter[Where] = collections.Counter()
        self.calls: collections.Counter[Where] = collections.Counter()
        self.enum_loads = 0
        self.enum_where: collections.Counter[Where] = collections.Counter()
        self._loads: dict[CodeType, dict[int, str]] = {}
        self._where: dict[CodeType, Where] = {}

    @staticmethod
    def _generated(frame: FrameType, where: Where) -> Where:
        """A dataclass's generated ``__init__``/``__eq__``/``__hash__`` all come from
        ``<string>``: name them by the class of ``self`` so each class counts apart."""
        self_ = frame.f_locals.get("self")
        if self_ is None:
            return where
        cls = type(self_)
        return (f"{cls.__module__.removeprefix('pike.')}.{cls.__qualname__}", 0, where[2])

    def _globals_then_attr(self, code: CodeType) -> dict[int, str]:
        found = self._loads.get(code)
        if found is None:
            found = {}
            ins = list(dis.get_instructions(code))
            for a, b in itertools.pairwise(ins):
                if a.opname == "LOAD_GLOBAL" and b.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                    found[b.offset] = str(a.argval)
            self._loads[code] = found
        return found

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Counter:
        frame.f_trace_opcodes = True
        code = frame.f_code
        where = self._where.get(code)
        if where is None:
            where = (code.co_filename.rsplit("/pike/", 1)[-1], code.co_firstlineno, code.co_name)
            if code.co_filename == "<string>":  # generated (dataclass) methods
                where = self._generated(frame, where)
            else:
                self._where[code] = where
        if event == "call":
            self.calls[where] += 1
        elif event == "opcode":
            self.ops[where] += 1
            name = self._globals_then_attr(code).get(frame.f_lasti)
            if name is not None and isinstance(frame.f_globals.get(name), enum.EnumMeta):
                self.enum_loads += 1
                self.enum_where[where] += 1
        return self


def _package(path: str) -> str:
    """``wire/codec.py`` or ``wire.payloads.Message`` -> ``wire``; code outside pike (the
    standard library, the test pair) by its directory."""
    if path.startswith("/"):
        return f"{path.rsplit('/', 2)[-2]} (not pike)"
    return path.replace("/", ".").split(".", 1)[0]


def _function(where: Where) -> str:
    path, line, name = where
    return f"{name} ({path}:{line})" if line else f"{name} ({path})"


def print_counts(tracer: Counter, n: int, top: int) -> None:
    """``tracer``'s counts per handshake (``n`` of them): totals, per package, the
    functions with the most Enum member loads and with the most instructions."""
    print(f"  Python opcodes      {sum(tracer.ops.values()) / n:8.0f}")
    print(f"  Python calls        {sum(tracer.calls.values()) / n:8.0f}")
    print(f"  Enum member loads   {tracer.enum_loads / n:8.0f}")
    packages: collections.Counter[str] = collections.Counter()
    for (path, _, _), ops in tracer.ops.items():
        packages[_package(path)] += ops
    print("\nopcodes  package")
    for package, ops in packages.most_common():
        print(f"{ops / n:7.0f}  {package}")
    print("\nEnum member loads  function")
    for where, loads in tracer.enum_where.most_common(top):
        print(f"{loads / n:7.1f}  {_function(where)}")
    print(f"\nopcodes  calls  function (top {top})")
    for where, ops in tracer.ops.most_common(top):
        print(f"{ops / n:7.0f} {tracer.calls[where] / n:6.1f}  {_function(where)}")


def handshake(branch: Node, hub: Node, i: int, tracer: Counter | None) -> None:
    """Branch connection ``c<i>`` up; only the hub's part runs under ``tracer``."""
    branch.engine.initiate(f"c{i}", 0.0)
    pending = branch.drain()
    while pending:
        if tracer is not None:
            sys.settrace(tracer)
        try:
            for d in pending:
                hub.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
            back = hub.drain()
            hub.engine.get_timer()
        finally:
            sys.settrace(None)
        for d in back:
            branch.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
        pending = branch.drain()


# The codec's entry points as the engine calls them (module, names imported there).
CODEC_CALLS = (
    (engine_module, ("decode_header", "decode_message", "decrypt_message", "check_payloads")),
    (responder_module, ("decode_message", "check_payloads", "encode_message")),
    (ike_sa_module, ("encode_message",)),
)


def timed(branch: Node, hub: Node, first: int, n: int) -> tuple[float, float]:
    """Seconds of the hub's part of ``n`` handshakes, and of it in the codec's entry
    points, with the cyclic collector off: a collection costs milliseconds and is charged to
    whatever allocation trips it, so with it on the split moves between builds."""
    spent = [0.0]

    def clocked(f: Any) -> Any:
        def call(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*args)
            finally:
                spent[0] += time.perf_counter() - t

        return call

    saved = [(m, name, getattr(m, name)) for m, names in CODEC_CALLS for name in names]
    for m, name, f in saved:
        setattr(m, name, clocked(f))
    total = codec = 0.0
    gc.disable()
    try:
        for i in range(first, first + n):
            branch.engine.initiate(f"c{i}", 0.0)
            pending = branch.drain()
            while pending:
                spent[0] = 0.0
                t = time.perf_counter()
                for d in pending:
                    hub.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
                back = hub.drain()
                hub.engine.get_timer()
                total += time.perf_counter() - t
                codec += spent[0]
                for d in back:
                    branch.engine.receive_datagram(d.data, d.src, d.dst, 0.0)
                pending = branch.drain()
    finally:
        gc.enable()
        for m, name, f in saved:
            setattr(m, name, f)
    return total, codec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--handshakes", type=int, default=100)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--time",
        type=int,
        default=0,
        metavar="N",
        help="then time N more handshakes untraced: the hub's part and the codec's share",
    )
    args = ap.parse_args()
    warm, n = 20, args.handshakes
    branch = Node(v2engine(branch_text(warm + n + args.time), 1))
    hub = Node(v2engine(hub_text(1), 2))
    for i in range(warm):  # first-use caches and indexes are not a handshake's cost
        handshake(branch, hub, i, None)
    tracer = Counter()
    for i in range(warm, warm + n):
        handshake(branch, hub, i, tracer)
    up = sum(1 for sa in hub.engine.sas.values() if sa.state.value == "ESTABLISHED")
    print(f"{up} IKE SAs up; per responder handshake (mean of {n}):")
    print_counts(tracer, n, args.top)
    if args.time:
        total, codec = timed(branch, hub, warm + n, args.time)
        print(f"\ntimed, {args.time} handshakes, collector off: the hub's part", end=" ")
        print(f"{total / args.time * 1e6:.1f} µs, in the codec {codec / args.time * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
