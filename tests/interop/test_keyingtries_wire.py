"""Host tier: ``keyingtries`` on the wire (issues 3, 7): a real piked gives up after N
attempts, IKEv2 and IKEv1.

piked on ``left`` (192.0.2.1) initiates towards ``right`` (192.0.2.2), where nothing
answers: no charon at all, or a charon killed (SIGKILL by PID) after the IKE SA came up
with ``dpd_action = "restart"``. A capture on left's wan0 sees every first request piked
sends (IKE_SA_INIT; IKEv1: Main Mode's first message, responder cookie zero). With
``keyingtries = 3``, ``retransmit_timeout = 0.25s`` and two retransmits (0.25 + 0.45 +
0.81 = 1.51 s per attempt): three attempts, each a new initiator SPI (cookie) with its
request and two retransmits, 1.51 s apart; then silence, one log line that says piked gave up,
and no IKE SA left.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from .conftest import Gateways, MakeCharon, MakePiked
from .lifecycle_tools import wait_for
from .strongswan import Connection, Secret
from .test_lifecycle_interop import FAST, SECRET, conn
from .topology import branch_hq_v1
from .udp_capture import CAPTURE

pytestmark = pytest.mark.interop

IKE_SA_INIT = 34
ID_PROT = 2  # IKEv1 Main Mode
TRIES = 3
# a short schedule, so the test does not wait out the default one (3.02 s per attempt)
SCHEDULE = {"retransmit_timeout": "0.25s", "retransmit_tries": 2}
SPAN = 0.25 + 0.45 + 0.81  # one attempt: the request, two retransmits, the last wait


def _inits(capture: Path, version: int) -> list[tuple[float, str]]:
    """(time, initiator SPI) of every IKE_SA_INIT request (IKEv1: MM1) piked sent."""
    out = []
    for line in capture.read_text().splitlines()[1:]:
        d = json.loads(line)
        data = bytes.fromhex(d["data"])
        if d["src"] != "192.0.2.1":
            continue
        if d["sport"] == 4500 or d["dport"] == 4500:
            data = data[4:]  # non-ESP marker
        if len(data) < 28:
            continue
        if version == 2 and data[18] == IKE_SA_INIT and not data[19] & 0x20:
            out.append((d["t"], data[:8].hex()))
        if version == 1 and data[18] == ID_PROT and data[8:16] == bytes(8):
            out.append((d["t"], data[:8].hex()))
    return out


def _secret(version: int) -> Secret:
    return SECRET if version == 2 else Secret("hq", SECRET.secret)  # v1: address IDs


def _conn(side: str, version: int) -> Connection:
    return conn(side) if version == 2 else branch_hq_v1(side)


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("how", ["initiate", "dpd_restart"])
def test_piked_gives_up_after_keyingtries(
    gateways: Gateways,
    make_piked: MakePiked,
    make_charon: MakeCharon,
    tmp_path: Path,
    how: str,
    version: int,
) -> None:
    extra: dict[str, str | int] = {"keyingtries": TRIES}
    if how == "dpd_restart":
        extra |= {"dpd_delay": "1s", "dpd_action": "restart"}
    piked = make_piked(
        gateways.left, "piked", _conn("left", version), _secret(version), start=False
    )
    piked.daemon.update(FAST | SCHEDULE)
    piked.extra = {"hq": extra}
    piked.poll_via_socket = True
    piked.start()
    capture = tmp_path / "wan0.jsonl"
    with capture.open("wb") as f:
        cap = gateways.left.popen(
            [sys.executable, "-c", CAPTURE, "wan0", "40", "500,4500", "64"], stdout=f
        )
    wait_for("capture ready", lambda: capture.read_bytes().startswith(b"ready"), 30)
    if how == "dpd_restart":
        charon = make_charon(
            gateways.right,
            "charon",
            _conn("right", version),
            _secret(version),
            libipsec=gateways.libipsec,
        )
        piked.initiate("hq")
        piked.wait_established("hq", timeout=15)
        charon.wait_established("hq", timeout=15)
        assert charon.pid is not None
        os.kill(charon.pid, signal.SIGKILL)
        charon.proc.wait(timeout=5)  # type: ignore[union-attr]
    t0 = time.monotonic()
    before = len(_inits(capture, version))
    if how == "initiate":
        piked.initiate("hq", check=False)
    wait_for("piked gave up", lambda: "attempt(s) (keyingtries" in piked.log_text(), 60)
    gave_up = time.monotonic() - t0
    time.sleep(SPAN + 1.0)  # nothing more may follow
    cap.send_signal(signal.SIGTERM)
    cap.wait(timeout=10)
    sent = _inits(capture, version)[before:]
    starts: dict[str, float] = {}
    for t, spi in sent:
        starts.setdefault(spi, t)
    firsts = sorted(starts.values())
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(firsts)]
    log = piked.log_text()
    print(
        f"\nIKEv{version} keyingtries = {TRIES} ({how}): {len(sent)} first requests, {len(starts)} "
        f"initiator SPIs, attempts {gaps} s apart; gave up {gave_up:.2f}s after "
        f"{'the kill' if how == 'dpd_restart' else 'pikectl initiate'}"
    )
    assert len(starts) == TRIES, sent
    assert len(sent) == 3 * TRIES, sent  # each attempt: the request and two retransmits
    assert all(abs(g - SPAN) < 0.5 for g in gaps), gaps
    line = next(x for x in log.splitlines() if "attempt(s) (keyingtries" in x)
    assert f"after {TRIES} attempt(s) (keyingtries = {TRIES})" in line, line
    assert piked.ike_sa("hq") is None
