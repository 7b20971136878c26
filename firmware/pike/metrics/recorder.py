"""What the metrics need to remember between scrapes, fed by the engine's actions.

The engine keeps counters per connection (``Context.counters``) and reports live SAs;
what only the runtime sees is recorded here: the kernel byte and packet counts of CHILD
SAs that are gone (so ``pike_child_sa_bytes_total`` keeps counting across rekeys of the
same child), wall-clock times of the last rekeys, handshake durations, deletes by reason,
failed CHILD_SAs, config reloads and our signatures (duration, failures; reported by
``pike.daemon.signing``). Keys are stable names, never SPIs, unique ids or secrets.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from types import MethodType
from typing import Any

from pike.policy.ipsec import SaCounters, SaSpec
from pike.sa.actions import (
    Action,
    ChildSaFailed,
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    InstallChildSa,
)

# Counters of one SA from the kernel, or None when it cannot tell (no ESP, SA gone).
QueryCounters = Callable[[SaSpec], SaCounters | None]
ChildKey = tuple[str, str]  # (connection, child)
TotalKey = tuple[str, str, str]  # (connection, child, direction "in"/"out")
SaKey = tuple[str, int]  # (destination address, SPI): only as a cache key, never a label

# IKE_SA_INIT to established, seconds: LAN peers answer in milliseconds, a signing token
# on a loaded board or a lossy uplink (retransmissions at 4 s x 1.8^n) take seconds.
HANDSHAKE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# One signature: SoftHSM and file keys take well under a millisecond to a few ms, a TPM
# 4-15 ms through a resource manager (a chip more), a busy or failing token seconds.
SIGN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
SignKey = tuple[str, str, str]  # (token, key, mechanism) or (token, key, reason)


@dataclass
class Histogram:
    """Buckets as Prometheus exposes them (cumulative, upper bounds, +Inf last).

    ``counts`` holds each bucket's own observations (one increment per observation, at
    every handshake); ``buckets`` adds them up when scraped, and ``n`` is their sum."""

    bounds: tuple[float, ...] = HANDSHAKE_BUCKETS
    counts: list[int] = field(default_factory=list)  # per bucket, the last one above all
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value
        self.total += value

    @property
    def n(self) -> int:
        """Observations in all (the +Inf bucket): added up when asked, not per handshake."""
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        out = [
            (_le(b), float(c))
            for b, c in zip(self.bounds, accumulate(self.counts[:-1]), strict=True)
        ]
        return [*out, ("+Inf", float(self.n))]


_NOTIFY = re.compile(r"\bnotify ([A-Z][A-Z0-9_]*)")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def reason_label(reason: str) -> str:
    """A bounded label value for why an SA failed or ended. The engines give a word
    (``kernel_no_esp``, ``peer_deleted``), a word and a detail (IKEv1: ``auth_failed: HASH
    mismatch``) or, for a refused CHILD_SA, a sentence naming the peer's error notify
    (``TS_UNACCEPTABLE``) or what was wrong with its answer (``invalid_response``)."""
    m = _NOTIFY.search(reason)
    if m:
        return m.group(1)
    word = reason.split(":", 1)[0]
    return word if _WORD.fullmatch(word) else "invalid_response"


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass
class Recorder:
    """Fed every action before the runtime handles it (``observe``), read by the
    collector at scrape time."""

    query: QueryCounters
    wall: Callable[[], float] = time.time
    # Bytes/packets of CHILD SAs already removed, per (conn, child, direction).
    gone_bytes: Counter[TotalKey] = field(default_factory=Counter)
    gone_packets: Counter[TotalKey] = field(default_factory=Counter)
    # Last counts read of each live SA: what a vanished SA (hard expire) had.
    last_seen: dict[SaKey, SaCounters] = field(default_factory=dict)
    installed: dict[ChildKey, set[int]] = field(default_factory=dict)
    ike_deleted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (conn, reason)
    auth_failures: Counter[str] = field(default_factory=Counter)  # by connection
    child_failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # +reason
    # (reason, wall clock) of each child's last failure, until it is installed again.
    child_failed: dict[ChildKey, tuple[str, float]] = field(default_factory=dict)
    last_ike_rekey: dict[str, float] = field(default_factory=dict)  # wall clock
    last_child_rekey: dict[ChildKey, float] = field(default_factory=dict)
    handshakes: dict[str, Histogram] = field(default_factory=dict)
    reloads: Counter[str] = field(default_factory=Counter)  # "success" / "failure"
    last_reload: float | None = None  # wall clock of the last successful reload
    sign_durations: dict[SignKey, Histogram] = field(default_factory=dict)
    sign_failures: Counter[SignKey] = field(default_factory=Counter)  # (token, key, reason)

    def observe(self, a: Action) -> None:
        """Record ``a`` if it is of a kind recorded (looked up by type)."""
        record = _RECORDS.get(type(a))
        if record is not None:
            record(self, a)

    def records(self) -> dict[type, Callable[[Any], None]]:
        """What records each kind of action in ``RECORDED``: the runtime hands each
        action of these kinds straight to its record, without ``observe``."""
        return {kind: MethodType(record, self) for kind, record in _RECORDS.items()}

    @property
    def ike_establishments(self) -> Counter[str]:
        """IKE SAs established from scratch, per connection: each one's handshake
        duration is observed once (``_ike_up``), so its histogram's count is the count
        (added up at scrape time, not per handshake)."""
        return Counter({conn: hist.n for conn, hist in self.handshakes.items()})

    def _ike_up(self, a: IkeSaEstablished) -> None:
        if a.rekey:
            self.last_ike_rekey[a.conn] = self.wall()
        else:
            hist = self.handshakes.get(a.conn)
            if hist is None:
                hist = self.handshakes[a.conn] = Histogram()
            hist.observe(a.handshake_seconds)

    def _ike_down(self, a: IkeSaDeleted) -> None:
        reason = reason_label(a.reason)
        self.ike_deleted[(a.conn, reason)] += 1
        # IKEv2 says "auth_failed", IKEv1 "auth_failed: what", in either role (an IKEv1
        # responder when the refused SA times out half-open).
        if reason == "auth_failed":
            self.auth_failures[a.conn] += 1

    def _child_installed(self, a: InstallChildSa) -> None:
        key = (a.conn, a.child)
        live = self.installed.get(key)
        if live is None:
            live = self.installed[key] = set()
        elif live:  # another SA of the same child is up: this one replaces it
            self.last_child_rekey[key] = self.wall()
        live.add(a.unique_id)
        if self.child_failed:
            self.child_failed.pop(key, None)

    def _child_failed(self, a: ChildSaFailed) -> None:
        self.child_failures[(a.conn, a.child, reason_label(a.reason))] += 1
        self.child_failed[(a.conn, a.child)] = (a.reason, self.wall())

    def _child_deleted(self, a: DeleteChildSa) -> None:
        self.installed.get((a.conn, a.child), set()).discard(a.unique_id)
        # Read the final counts now: the runtime removes the SAs right after this.
        for direction, spec in (("in", a.inbound), ("out", a.outbound)):
            key = (spec.dst.compressed, spec.spi)
            c = self.query(spec) or self.last_seen.get(key)
            self.last_seen.pop(key, None)
            if c is not None:
                self.gone_bytes[(a.conn, a.child, direction)] += c.bytes
                self.gone_packets[(a.conn, a.child, direction)] += c.packets

    def read(self, spec: SaSpec) -> SaCounters | None:
        """Counters of a live SA (remembered for when it vanishes without a query)."""
        c = self.query(spec)
        if c is not None:
            self.last_seen[(spec.dst.compressed, spec.spi)] = c
        return c

    def signed(
        self, token: str, key: str, mechanism: str, seconds: float, failure: str | None
    ) -> None:
        """One signature asked by the engine: its duration, or why it failed."""
        if failure is not None:
            self.sign_failures[(token, key, failure)] += 1
            return
        hist = self.sign_durations.get((token, key, mechanism))
        if hist is None:
            hist = self.sign_durations[(token, key, mechanism)] = Histogram(SIGN_BUCKETS)
        hist.observe(seconds)

    def reloaded(self, ok: bool) -> None:
        self.reloads["success" if ok else "failure"] += 1
        if ok:
            self.last_reload = self.wall()


_RECORDS: dict[type, Callable[[Recorder, Any], None]] = {
    IkeSaEstablished: Recorder._ike_up,
    IkeSaDeleted: Recorder._ike_down,
    InstallChildSa: Recorder._child_installed,
    ChildSaFailed: Recorder._child_failed,
    DeleteChildSa: Recorder._child_deleted,
}
RECORDED = frozenset(_RECORDS)  # the kinds of action ``Recorder.observe`` records
