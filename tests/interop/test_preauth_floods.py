"""Host tier: floods before authentication while strongSwan connects (issue 13, item 7).

The scenario is tests/interop/floods.py: piked on ``left`` answers charon on ``right``
while ``mallory`` floods it, one flood at a time: spoofed IKE_SA_INIT from many addresses,
a cookie-echoing source, certificate-laden IKE_AUTHs after a proper IKE_SA_INIT, SKF
fragments over max_packet on half-open SAs. During each, charon's IKE SA is up within 2 s,
piked's RSS and event-loop lag stay bounded, and piked never misses a watchdog ping
(``WATCHDOG_USEC`` 2 s, as systemd would judge it). The bounds are generous: they catch a
flood that makes piked hold or compute per datagram (the issue measured 11.2 s on the loop
and 83 MB held before these limits); the figures go to docs/interop.md.

IKEv1 (no COOKIE there): Main Mode first messages from one address left half-open,
spoofed Aggressive Mode and then spoofed Main Mode first messages filling
``half_open_max``, while charon's IKEv1 Main Mode comes up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.prereq import Require
from pike.sa.log_limit import LINES_PER_SECOND

from . import floods
from .netns import Lab
from .piked import piked_available
from .strongswan import charon_available

pytestmark = pytest.mark.interop

PEER_UP = 2.0  # seconds, the bar
RSS_GROWTH = 32 * 1024  # KiB per flood
LOOP_LAG = 1.0  # seconds: the watchdog's health check would fail at its 2 s interval
BLOCK = 5  # piked's default block_threshold: proven half-open SAs per address


def test_strongswan_connects_during_each_flood(lab: Lab, tmp_path: Path, require: Require) -> None:
    require(charon_available(), "strongSwan charon/swanctl not installed")
    require(piked_available(), "piked/pikectl not installed in the venv")
    out = floods.run(lab, tmp_path, floods.floods())
    for fig in out.figures:
        print(fig.line())
    gaps = out.watchdog_gaps
    print(f"watchdog: {len(gaps) + 1} pings, longest gap {max(gaps, default=0):.2f} s")
    assert [f.kind for f in out.figures] == ["spoof", "echo", "certs", "frags"]
    by = {f.kind: f for f in out.figures}
    for fig in out.figures:
        assert fig.peer_up < PEER_UP, fig.line()
        assert fig.rss_after - fig.rss_before < RSS_GROWTH, fig.line()
        assert fig.lag_worst < LOOP_LAG, fig.line()
        assert fig.status_rtt < LOOP_LAG, fig.line()
        # spoofed sources are held only below cookie_threshold (10); the others by address
        assert fig.half_open <= 10 + BLOCK * len(floods.MALLORY), fig.line()
    # each flood reached piked and did what it is meant to (else the test proves nothing)
    spoofed = floods.floods()[0].count
    assert by["spoof"].flood["sent"] == spoofed
    assert by["spoof"].packets_in >= spoofed
    # answered with COOKIEs: all when piked keeps up; on a loaded machine the kernel drops
    # some at piked's full socket buffer first (counted), which is the cheap place to drop
    spoof = by["spoof"]
    assert spoof.packets_out + spoof.rcvbuf_drops >= 0.9 * spoofed, spoof.line()
    assert spoof.packets_out >= 0.25 * spoofed, spoof.line()
    assert 0 < by["echo"].flood["answered_after_cookie"] <= BLOCK  # then blocked
    assert by["certs"].flood["ike_auth_sent"] > 0
    assert by["frags"].flood["fragments"] > 0
    assert 0 < by["frags"].flood["half_open_sas"] <= BLOCK * len(floods.floods()[3].sources)
    log = out.piked_log
    _log_volume(log)
    assert "Traceback" not in log
    assert "unhealthy" not in log
    assert "certificate of flood.example not accepted" in log
    # systemd's view: a WATCHDOG=1 at least every WATCHDOG_USEC (pinged at half of it)
    assert len(gaps) >= 2 and max(gaps) < floods.WATCHDOG_USEC / 1e6, gaps


HALF_OPEN_MAX = floods.HALF_OPEN_MAX
# IKEv1 has no COOKIE: each spoofed first message is real work (an SA; in Aggressive Mode a
# Diffie-Hellman too), so a flood above what piked handles (about 600 MM1/s here) queues up
# to the socket buffer (the kernel drops the rest) and the loop is late by up to that
# backlog. Bounded, and far below the watchdog (asserted separately).
LOOP_LAG_V1 = 2.0


def test_strongswan_ikev1_connects_during_each_ikev1_flood(
    lab: Lab, tmp_path: Path, require: Require
) -> None:
    """IKEv1 has no COOKIE: spoofed Main Mode first messages each cost piked a half-open
    ISAKMP SA (bounded by ``half_open_max``), spoofed Aggressive Mode ones a Diffie-Hellman
    too, and one address's half-open SAs replace each other past ``block_threshold``; none
    of them keeps charon's IKEv1 Main Mode (``hq1``) from coming up."""
    require(charon_available(), "strongSwan charon/swanctl not installed")
    require(piked_available(), "piked/pikectl not installed in the venv")
    plan = floods.floods_v1()
    out = floods.run(lab, tmp_path, plan)
    for fig in out.figures:
        print(fig.line())
    gaps = out.watchdog_gaps
    print(f"watchdog: {len(gaps) + 1} pings, longest gap {max(gaps, default=0):.2f} s")
    assert [f.kind for f in out.figures] == ["v1half", "v1am", "v1mm"]
    by = {f.kind: f for f in out.figures}
    for fig in out.figures:
        assert fig.peer_up < PEER_UP, fig.line()
        assert fig.rss_after - fig.rss_before < RSS_GROWTH, fig.line()
        assert fig.lag_worst < LOOP_LAG_V1, fig.line()
        assert fig.status_rtt < LOOP_LAG_V1, fig.line()
        assert fig.half_open <= HALF_OPEN_MAX, fig.line()
        assert fig.half_open_most <= BLOCK, fig.line()  # spoofed or not, per address
        sent = next(p.count for p in plan if p.kind == fig.kind)
        assert fig.flood["sent"] == sent and fig.packets_in >= sent, fig.line()
    # one address: each MM1 answered (MM2), the sixth on replacing the oldest
    half = by["v1half"]
    assert half.packets_out >= 0.9 * half.flood["sent"], half.line()
    assert half.half_open_most == BLOCK, half.line()
    # spoofed AM1s: answered (a Diffie-Hellman each) until half_open_max is full
    assert by["v1am"].packets_out > 0, by["v1am"].line()
    # then spoofed MM1s fill it; charon's MM1, sent once it is full, passes it (its
    # address is hq1's peer)
    assert by["v1mm"].half_open == HALF_OPEN_MAX, by["v1mm"].line()
    log = out.piked_log
    _log_volume(log)
    assert "replaced by a newer first message from 198.51.100.2" in log
    assert "half_open_limit" in log
    assert "Traceback" not in log
    assert "unhealthy" not in log
    assert len(gaps) >= 2 and max(gaps) < floods.WATCHDOG_USEC / 1e6, gaps


def _log_volume(log: str) -> None:
    """Whatever the floods sent, no kind of line fills piked's log: what they set off goes
    through the rate limit. Before the limit covered them, the IKEv2 floods logged each
    message of a half-open SA received and sent and each failed authentication (up to 51
    of one kind in a second), the IKEv1 ones each retransmission of the answers to spoofed
    Aggressive Mode first messages (286 in a second)."""
    lines = log.count("\n")
    most, kind = floods.log_burst(log)
    print(f"piked log: {lines} lines, at most {most} of one kind in a second ({kind[:60]})")
    # two windows of a reason can fall in one clock second, and a line is stamped when the
    # loop gets to it (up to its lag after the datagram's time, which the window goes by)
    assert most <= 3 * LINES_PER_SECOND, (most, kind)
