"""The hub's part of responder handshakes alone in a process, for an instruction counter.

    .venv/bin/python tests/bench/hub_replay.py --record FILE [--handshakes 300]
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python tests/bench/hub_replay.py --replay FILE [--handshakes 0|300]

Timing a handshake on a shared 2-core machine moves by +-25 % with the other tenants'
load, even as thread CPU time (caches and clocks are shared too); the number of machine
instructions a process executes does not. ``--record`` runs ``bench_hub_engine``'s
in-memory pair (one CHILD_SA, PSK, aes128gcm16-prfsha256-x25519) and keeps every datagram
the branch sends; ``--replay`` feeds them into a fresh hub engine, so only the hub's part
runs (decoding, the engine, the crypto: everything a responder spends per handshake). The
pair's randomness is fixed, so the recorded datagrams fit the replaying hub's answers.
Counted under callgrind (``Collected``), the difference between ``--handshakes 300`` and
``--handshakes 0`` (the first 20 handshakes, config and imports are in both) divided by
300 is the instructions per responder handshake. Record with the code you replay (the
recording is that code's conversation). A benchmark: it prints, never asserts beyond
checking that the replay brought every IKE SA up.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (helpers)

from bench.bench_hub_engine import branch_text, bring_up, hub_text
from ikev2.pair import Node
from ikev2.pair import engine as v2engine
from pike.sa.actions import SendDatagram

WARM = 20  # in both runs: first-use caches and indexes

Round = list[tuple[bytes, tuple[str, int], tuple[str, int]]]  # the branch's datagrams


def record(n: int) -> list[Round]:
    """The branch's datagrams of ``WARM + n`` handshakes, one list per exchange."""
    branch = Node(v2engine(branch_text(WARM + n), 1))
    hub = Node(v2engine(hub_text(1), 2))
    rounds: list[Round] = []

    def keep(sent: list[SendDatagram]) -> None:
        rounds.append([(d.data, d.src, d.dst) for d in sent])

    for i in range(WARM + n):
        bring_up(branch, hub, f"c{i}", sent=keep)
    return rounds


def replay(rounds: list[Round], n: int) -> int:
    """The first ``WARM + n`` handshakes into a fresh hub; the IKE SAs it brought up."""
    hub = Node(v2engine(hub_text(1), 2))
    for exchange in rounds[: 2 * (WARM + n)]:  # IKE_SA_INIT and IKE_AUTH
        for data, src, dst in exchange:
            hub.engine.receive_datagram(data, src, dst, 0.0)
        hub.drain()
        hub.engine.get_timer()
    return sum(1 for sa in hub.engine.sas.values() if sa.state.value == "ESTABLISHED")


def main() -> None:
    ap = argparse.ArgumentParser()
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--record", type=Path, metavar="FILE")
    what.add_argument("--replay", type=Path, metavar="FILE")
    ap.add_argument("--handshakes", type=int, default=300)
    args = ap.parse_args()
    gc.disable()  # a collection lands anywhere; piked's threshold makes them rare
    if args.record is not None:
        args.record.write_bytes(pickle.dumps(record(args.handshakes)))
        print(f"recorded {WARM} + {args.handshakes} handshakes in {args.record}")
        return
    rounds: list[Round] = pickle.loads(args.replay.read_bytes())
    up = replay(rounds, args.handshakes)
    if up != WARM + args.handshakes:
        sys.exit(f"{up} IKE SAs up of {WARM + args.handshakes}: record with this code first")
    print(f"{up} IKE SAs up")


if __name__ == "__main__":
    main()
