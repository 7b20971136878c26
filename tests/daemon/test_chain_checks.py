"""Peers' certificate chains are checked off piked's event loop (``ChainChecks``): while
a flood of the largest chains piked accepts (end entity and eight P-521 intermediates)
is checked in pike-keyd, the loop's timers stay on time.

The same work done inline is measured first: it would hold the loop for at least
``STALL`` seconds (about what 64 such IKE_AUTHs, one wake-up of ``IkeSockets._readable``,
cost inline), so a lag bound well below that shows where the work ran. The bound leaves
room for a machine shared with guests and other test runs (13-45 ms measured on a quiet
one, up to 130 ms beside qemu and UML guests: the loop's thread then waits for a core).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ikev2.x509gen import issue, make_ca
from pike.daemon.chain_checks import ChainChecks
from pike.keyd.client import KeyHelper, path_of
from pike.sa.actions import CheckChain
from pike.sa.certs import CertError, check_chain

_DER = serialization.Encoding.DER
STALL = 0.5  # seconds of inline checking the flood amounts to (at least)
LAG_BOUND = STALL / 2  # the loop may be late by this much at most meanwhile


def _chain() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    root = make_ca("ecdsa-p521", "flood root")
    cas = [root]
    for i in range(8):
        cas.append(make_ca("ecdsa-p521", f"flood intermediate {i}", issuer=cas[-1]))
    leaf = issue(cas[-1], "ecdsa-p521", "peer.example.net")
    certs = [leaf.cert, *reversed([c.cert for c in cas[1:]])]
    return tuple(c.public_bytes(_DER) for c in certs), (root.cert.public_bytes(_DER),)


async def _flood(checks: ChainChecks, reqs: list[CheckChain], got: dict[int, object]) -> float:
    """Submit every check at once; the loop's worst lateness until all are answered."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    for r in reqs:
        checks.submit(r)
    deadline = loop.time() + 60
    while len(got) < len(reqs) and loop.time() < deadline:
        due = loop.time() + 0.005
        await asyncio.sleep(0.005)
        worst = max(worst, loop.time() - due)
    return worst


def test_a_chain_flood_does_not_stall_the_loop(tmp_path: Path) -> None:
    certs, anchors = _chain()
    when = datetime.now(UTC)
    expected = check_chain(certs, anchors, when)
    assert len(expected) == 10  # leaf, eight intermediates, root
    # as many checks as hold a loop for STALL seconds when done inline (calibrated here:
    # the machine's speed and load vary)
    n, t0 = 0, time.perf_counter()
    while (inline := time.perf_counter() - t0) < STALL or n < 8:
        check_chain(certs, anchors, when)
        n += 1
    broken = (certs[0], *certs[2:])  # a missing intermediate: refused, by the helper
    reqs = [CheckChain(i, "peer", certs, anchors, when) for i in range(n)]
    reqs.append(CheckChain(n, "peer", broken, anchors, when))
    helper = KeyHelper.spawn()
    # started (at its first request) before the loop runs, as piked's config load does
    assert path_of(helper.check_chain(certs, anchors, when).result(30)) == expected
    try:
        got: dict[int, object] = {}

        async def run() -> float:
            loop = asyncio.get_running_loop()
            checks = ChainChecks(loop, lambda ref, r: got.__setitem__(ref, r), helper)
            return await _flood(checks, reqs, got)

        lag = asyncio.run(run())
    finally:
        helper.close()
    assert all(got[i] == expected for i in range(n))
    assert isinstance(got[n], CertError) and "no trusted path" in str(got[n])
    print(
        f"\n{n} checks: {inline * 1000:.0f} ms inline; loop lag {lag * 1000:.1f} ms with pike-keyd"
    )
    assert lag < LAG_BOUND


def test_without_the_helper_a_worker_thread_checks(tmp_path: Path) -> None:
    """``key_helper = "off"``: the same checks in piked's chain thread, answered right."""
    certs, anchors = _chain()
    when = datetime.now(UTC)
    reqs = [CheckChain(i, "peer", certs, anchors, when) for i in range(4)]
    got: dict[int, object] = {}

    async def run() -> float:
        loop = asyncio.get_running_loop()
        checks = ChainChecks(loop, lambda ref, r: got.__setitem__(ref, r), None)
        try:
            return await _flood(checks, reqs, got)
        finally:
            checks.close()

    asyncio.run(run())
    assert set(got) == {0, 1, 2, 3}
    assert all(r == check_chain(certs, anchors, when) for r in got.values())
