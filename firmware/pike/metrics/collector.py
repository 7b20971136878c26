"""The Prometheus collector: engine state and kernel XFRM counters, read at scrape time.

Runs on the daemon's event loop (``pike.metrics.server`` serves from it), so it reads the
engine and queries the kernel without locks. Conventions (docs/architecture.md): prefix ``pike_``,
counters end in ``_total``, labels are stable names (connection, child, direction,
exchange, reason, state), never SPIs or unique ids, and times are Unix timestamps.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pike.metrics.firmware import Firmware
from pike.metrics.recorder import ChildKey, Recorder, TotalKey
from pike.policy.config import Config
from pike.sa.actions import IkeSaInfo
from pike.sa.context import ConnCounters, Counters

# IKE SA states shown for every configured connection (0 when none is in it), so that
# series exist before the first SA and alerts need no absent().
IKE_STATES = ("CONNECTING", "ESTABLISHED", "REKEYING", "REKEYED", "DELETING")
DIRECTIONS = ("in", "out")
OFFLOADS = ("no", "crypto", "packet")  # pike.board.offload.InUse
# Token states (pike.hsm.pkcs11.TokenState values) in which the token is not there.
TOKEN_NOT_PRESENT = frozenset({"absent", "module_missing", "unknown"})


@dataclass
class Sources:
    """Where the collector reads from; callables so it always sees the current values
    (the config and even the engine are replaced by a reload)."""

    config: Callable[[], Config]
    sas: Callable[[], list[IkeSaInfo]]
    counters: Callable[[], Counters | None]
    now: Callable[[], float]  # the engine's clock (loop.time())
    wall: Callable[[], float]  # time.time()
    esp: Callable[[], bool]
    recorder: Recorder
    version: str
    started_wall: float
    # Token label -> TokenState value ("ready", "absent", ...) of the keys in use.
    tokens: Callable[[], dict[str, str]] = field(default=lambda: {})
    # Connection -> (the hub its initiations go to, or None; times it moved to another)
    hubs: Callable[[str], tuple[str | None, int]] = field(default=lambda conn: (None, 0))
    # pike.daemon.certs_view: "certs", "crls", "sources" (lists of dicts) and "fetches"
    # ({(kind, result): count}) of the certificates and revocation sources in use.
    pki: Callable[[], dict[str, Any]] = field(default=lambda: {})
    # (worst over the last 10 s, worst since start) of the event loop's lateness.
    loop_lag: Callable[[], tuple[float, float]] = field(default=lambda: (0.0, 0.0))
    # The image build and A/B slot running (pike.metrics.firmware); None: not the image.
    firmware: Firmware | None = None


class PikeCollector(Collector):
    def __init__(self, src: Sources) -> None:
        self.src = src

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand only (the series depend on the config)

    def collect(self) -> Iterator[Metric]:
        s = _Scrape.of(self.src)
        for family in (
            _daemon, _ike_sas, _engine_counters, _child_sas, _key_custody, _pki, _operations
        ):  # fmt: skip
            yield from family(s)


@dataclass(frozen=True)
class _Scrape:
    """One scrape's view: what every metric family reads, taken once."""

    src: Sources
    rec: Recorder
    config: Config
    sas: list[IkeSaInfo]
    now: float
    wall: float
    counters: Counters
    conns: list[str]  # configured, and any the engine still counts for
    children: set[ChildKey]

    @classmethod
    def of(cls, src: Sources) -> _Scrape:
        config = src.config()
        counters = src.counters() or Counters()
        return cls(
            src,
            src.recorder,
            config,
            src.sas(),
            src.now(),
            src.wall(),
            counters,
            sorted(set(config.connections) | set(counters.per_conn)),
            {(c.name, ch.name) for c in config.connections.values() for ch in c.children},
        )

    def ts(self, at: float | None) -> float | None:
        """An engine time (monotonic) as a Unix timestamp, never in the future."""
        return None if at is None else round(self.wall - max(0.0, self.now - at), 3)


def _daemon(s: _Scrape) -> Iterator[Metric]:
    """The build, the start, the kernel, and what the config asks for."""
    src, config = s.src, s.config
    info = InfoMetricFamily("pike_build", "piked version")
    info.add_metric([], {"version": src.version, "python": platform.python_version()})
    yield info
    if src.firmware is not None:
        fw = InfoMetricFamily("pike_firmware", "firmware image build and the A/B slot it booted")
        fw.add_metric([], {"version": src.firmware.version, "slot": src.firmware.slot})
        yield fw
    yield _gauge(
        "pike_start_timestamp_seconds",
        "When piked started (Unix time)",
        [([], src.started_wall)],
    )
    recent, worst = src.loop_lag()
    yield _gauge(
        "pike_event_loop_lag_seconds",
        "How late the event loop woke a sleeping task, worst over the last 10 s",
        [([], round(recent, 6))],
    )
    yield _gauge(
        "pike_event_loop_lag_max_seconds",
        "How late the event loop woke a sleeping task, worst since piked started",
        [([], round(worst, 6))],
    )
    yield _gauge(
        "pike_kernel_esp_available",
        "1 when the kernel takes ESP SAs (else CHILD_SAs are refused)",
        [([], 1.0 if src.esp() else 0.0)],
    )
    yield _gauge(
        "pike_connection_configured",
        "Connections in the loaded config (1 each)",
        [([c], 1.0) for c in sorted(config.connections)],
        ["connection"],
    )
    # Alerts need to know which tunnels should be up: start_action = "start" keeps a
    # child up; "none" (up on request) and "trap" (up on traffic) may rest down.
    yield _gauge(
        "pike_connection_expected_up",
        'Connections piked keeps up (1: a child has start_action = "start"), else 0',
        [
            ([n], float(any(ch.start_action == "start" for ch in c.children)))
            for n, c in sorted(config.connections.items())
        ],
        ["connection"],
    )
    yield _gauge(
        "pike_child_sa_expected_up",
        'Children piked keeps up (1: start_action = "start"), else 0',
        [
            ([n, ch.name], float(ch.start_action == "start"))
            for n, c in sorted(config.connections.items())
            for ch in c.children
        ],
        ["connection", "child"],
    )
    yield _gauge(
        "pike_connection_ike_rekey_interval_seconds",
        "Configured IKE SA rekey_time (0: no rekey)",
        [([n], float(c.rekey_time)) for n, c in sorted(config.connections.items())],
        ["connection"],
    )


def _ike_sas(s: _Scrape) -> Iterator[Metric]:
    """IKE SAs: states, liveness, NAT, rekeys, establishments, deletes, handshakes."""
    rec, config, sas, now, wall, ts, conns = s.rec, s.config, s.sas, s.now, s.wall, s.ts, s.conns
    states: dict[tuple[str, str], int] = {(c, s): 0 for c in config.connections for s in IKE_STATES}
    est: dict[str, float] = {}
    last_in: dict[str, float] = {}
    dpd_out: dict[str, float] = {c: 0.0 for c in config.connections}
    nat: dict[tuple[str, str], float] = {}
    keepalive: dict[str, float] = {}
    for sa in sas:
        states[(sa.name, sa.state)] = states.get((sa.name, sa.state), 0) + 1
        if sa.state not in ("ESTABLISHED", "REKEYING"):
            continue
        at = ts(sa.established_at)
        if at is not None:
            est[sa.name] = max(est.get(sa.name, at), at)
        li = ts(sa.last_inbound)
        if li is not None:
            last_in[sa.name] = max(last_in.get(sa.name, li), li)
        if sa.dpd_outstanding:
            dpd_out[sa.name] = 1.0
        if sa.keepalive_at is not None:  # in the future: no clamping as in ts()
            ka = round(wall + (sa.keepalive_at - now), 3)
            keepalive[sa.name] = min(keepalive.get(sa.name, ka), ka)
        for side, flag in (("local", sa.nat_local), ("remote", sa.nat_remote)):
            nk = (sa.name, side)
            nat[nk] = max(nat.get(nk, 0.0), 1.0 if flag else 0.0)
    up = {c: 0.0 for c in config.connections}
    for (conn, state), n in states.items():
        if state in ("ESTABLISHED", "REKEYING") and n:
            up[conn] = 1.0
    yield _gauge(
        "pike_ike_sa_up",
        "1 when the connection has an established IKE SA",
        [([c], v) for c, v in sorted(up.items())],
        ["connection"],
    )
    yield _gauge(
        "pike_ike_sas",
        "IKE SAs by state",
        [([c, s], float(n)) for (c, s), n in sorted(states.items())],
        ["connection", "state"],
    )
    yield _gauge(
        "pike_ike_sa_established_timestamp_seconds",
        "When the current IKE SA was established or rekeyed (Unix time)",
        [([c], v) for c, v in sorted(est.items())],
        ["connection"],
    )
    yield _gauge(
        "pike_peer_last_inbound_timestamp_seconds",
        "Last sign of life from the peer (Unix time): an authenticated IKE message, or "
        "inbound ESP as seen by the DPD check (with dpd_delay)",
        [([c], v) for c, v in sorted(last_in.items())],
        ["connection"],
    )
    yield _gauge(
        "pike_dpd_outstanding",
        "1 while a DPD liveness check awaits the peer's answer",
        [([c], v) for c, v in sorted(dpd_out.items())],
        ["connection"],
    )
    yield _gauge(
        "pike_natt_keepalive_next_timestamp_seconds",
        "When the next NAT-T keepalive is due (Unix time); only while keepalives are on "
        "(behind a NAT or encap = true)",
        [([c], v) for c, v in sorted(keepalive.items())],
        ["connection"],
    )
    yield _gauge(
        "pike_nat_detected",
        "1 when a NAT was detected in front of us (side=local) or the peer (remote)",
        [([c, s], v) for (c, s), v in sorted(nat.items())],
        ["connection", "side"],
    )
    yield _gauge(
        "pike_ike_sa_last_rekey_timestamp_seconds",
        "Last IKE SA rekey (Unix time)",
        [([c], v) for c, v in sorted(rec.last_ike_rekey.items())],
        ["connection"],
    )
    established = rec.ike_establishments  # made when asked: once per scrape
    yield _counter(
        "pike_ike_sa_establishments",
        "IKE SAs established from scratch (not by rekey): a fast rise is a flapping tunnel",
        [([c], float(established.get(c, 0))) for c in conns],
        ["connection"],
    )
    yield _counter(
        "pike_ike_sa_deletes",
        "IKE SAs ended, by reason",
        [([c, r], float(n)) for (c, r), n in sorted(rec.ike_deleted.items())],
        ["connection", "reason"],
    )
    yield _counter(
        "pike_ike_auth_failures",
        "IKE SAs that failed authentication (the peer's or ours)",
        [([c], float(rec.auth_failures.get(c, 0))) for c in conns],
        ["connection"],
    )
    hist = HistogramMetricFamily(
        "pike_ike_handshake_duration_seconds",
        "First IKE_SA_INIT request to established IKE SA",
        labels=["connection"],
    )
    for conn, h in sorted(rec.handshakes.items()):
        hist.add_metric([conn], h.buckets(), h.total)
    yield hist


def _engine_counters(s: _Scrape) -> Iterator[Metric]:
    """The engine's per-connection counters and dropped datagrams."""
    counters, conns = s.counters, s.conns
    per = {c: counters.per_conn.get(c, ConnCounters()) for c in conns}
    for name, attr, help_ in (
        ("pike_ike_rekeys", "ike_rekeys", "IKE SA rekeys completed"),
        ("pike_child_sa_rekeys", "child_rekeys", "CHILD SA rekeys completed"),
        ("pike_dpd_probes", "dpd_probes", "DPD liveness checks sent"),
        ("pike_dpd_failures", "dpd_failures", "Peers declared dead (DPD unanswered)"),
        ("pike_natt_keepalives", "keepalives", "NAT-T keepalives sent"),
        ("pike_ike_retransmits", "retransmits", "IKE requests retransmitted"),
        (
            "pike_ike_sa_path_changes",
            "path_changes",
            "IKE SAs moved to new addresses with their CHILD SAs (MOBIKE)",
        ),
        (
            "pike_late_signatures",
            "late_signatures",
            "Our signatures answered after the exchange gave up on them (ignored)",
        ),
    ):
        yield _counter(
            name, help_, [([c], float(getattr(per[c], attr))) for c in conns], ["connection"]
        )
    msgs = []
    for c in conns:
        for direction, by_ex in (("in", per[c].messages_in), ("out", per[c].messages_out)):
            msgs += [([c, ex, direction], float(n)) for ex, n in sorted(by_ex.items())]
    yield _counter(
        "pike_ike_messages",
        "IKE messages by exchange and direction (requests and responses)",
        msgs,
        ["connection", "exchange", "direction"],
    )
    yield _counter(
        "pike_ike_invalid_messages",
        "Inbound IKE datagrams dropped or refused, by reason",
        [([r], float(n)) for r, n in sorted(counters.dropped.items())],
        ["reason"],
    )
    hubs = {c: s.src.hubs(c) for c in s.config.connections}
    yield _gauge(
        "pike_connection_active_peer",
        "1 for the remote_addrs entry (hub) the connection initiates to",
        [([c, h[0]], 1.0) for c, h in sorted(hubs.items()) if h[0] is not None],
        ["connection", "peer"],
    )
    yield _counter(
        "pike_connection_hub_changes",
        "Moves to the next hub of remote_addrs (the active one not answering or dead)",
        [([c], float(h[1])) for c, h in sorted(hubs.items()) if h[0] is not None],
        ["connection"],
    )


def _child_sas(s: _Scrape) -> Iterator[Metric]:
    """CHILD SAs: installed, rekeys, kernel byte/packet counters (kept across rekeys), failures."""
    rec, sas, ts, children = s.rec, s.sas, s.ts, s.children
    nbytes: dict[TotalKey, float] = {}
    npackets: dict[TotalKey, float] = {}
    for key in {(c, ch, d) for c, ch in children for d in DIRECTIONS}:
        nbytes[key] = npackets[key] = 0.0
    for key, n in rec.gone_bytes.items():
        nbytes[key] = nbytes.get(key, 0.0) + n
    for key, n in rec.gone_packets.items():
        npackets[key] = npackets.get(key, 0.0) + n
    installed: dict[ChildKey, float] = {k: 0.0 for k in children}
    # installed SAs by the NIC offload they got (hw_offload = auto decides per SA)
    offload: dict[tuple[str, str, str, str], float] = {
        (c, ch, d, mode): 0.0 for c, ch in children for d in DIRECTIONS for mode in OFFLOADS
    }
    child_at: dict[ChildKey, float] = {}
    for sa in sas:
        for ch in sa.children:
            ck = (sa.name, ch.name)
            if ch.state in ("INSTALLED", "REKEYING"):
                installed[ck] = installed.get(ck, 0.0) + 1.0
                at = ts(ch.installed_at)
                if at is not None:
                    child_at[ck] = max(child_at.get(ck, at), at)
            for direction, spec in (("in", ch.inbound), ("out", ch.outbound)):
                got = rec.read(spec) if spec is not None else None
                if got is not None:
                    tk = (sa.name, ch.name, direction)
                    nbytes[tk] = nbytes.get(tk, 0.0) + got.bytes
                    npackets[tk] = npackets.get(tk, 0.0) + got.packets
                    if ch.state in ("INSTALLED", "REKEYING"):
                        ok = (*tk, got.offload)
                        offload[ok] = offload.get(ok, 0.0) + 1.0
    yield _gauge(
        "pike_child_sa_installed",
        "CHILD SAs installed in the kernel (2 during a make-before-break rekey)",
        [([c, ch], v) for (c, ch), v in sorted(installed.items())],
        ["connection", "child"],
    )
    yield _gauge(
        "pike_child_sa_offload",
        "Installed CHILD SAs by the NIC ESP offload in use (no, crypto, packet)",
        [([c, ch, d, m], v) for (c, ch, d, m), v in sorted(offload.items())],
        ["connection", "child", "direction", "offload"],
    )
    yield _gauge(
        "pike_child_sa_installed_timestamp_seconds",
        "When the newest CHILD SA of the child was installed (Unix time)",
        [([c, ch], v) for (c, ch), v in sorted(child_at.items())],
        ["connection", "child"],
    )
    yield _gauge(
        "pike_child_sa_last_rekey_timestamp_seconds",
        "Last CHILD SA rekey (Unix time)",
        [([c, ch], v) for (c, ch), v in sorted(rec.last_child_rekey.items())],
        ["connection", "child"],
    )
    yield _counter(
        "pike_child_sa_bytes",
        "ESP payload bytes (kernel XFRM counters), kept across rekeys of the child",
        [([c, ch, d], v) for (c, ch, d), v in sorted(nbytes.items())],
        ["connection", "child", "direction"],
    )
    yield _counter(
        "pike_child_sa_packets",
        "ESP packets (kernel XFRM counters), kept across rekeys of the child",
        [([c, ch, d], v) for (c, ch, d), v in sorted(npackets.items())],
        ["connection", "child", "direction"],
    )
    yield _counter(
        "pike_child_sa_failures",
        "CHILD SAs that could not be created or rekeyed, by reason (the peer's error "
        "notify, kernel_no_esp, ...)",
        [([c, ch, r], float(n)) for (c, ch, r), n in sorted(rec.child_failures.items())],
        ["connection", "child", "reason"],
    )


def _key_custody(s: _Scrape) -> Iterator[Metric]:
    """Tokens and signatures."""
    src, rec = s.src, s.rec
    tokens = src.tokens()
    yield _gauge(
        "pike_token_present",
        "1 when the PKCS#11/TPM token holding a private key answers (0: absent, "
        "module missing, not reached yet)",
        [([t], 0.0 if st in TOKEN_NOT_PRESENT else 1.0) for t, st in sorted(tokens.items())],
        ["token"],
    )
    yield _gauge(
        "pike_token_state",
        "1 for the token's current state (ready, absent, pin_incorrect, pin_locked, ...)",
        [([t, st], 1.0) for t, st in sorted(tokens.items())],
        ["token", "state"],
    )
    sign = HistogramMetricFamily(
        "pike_sign_duration_seconds",
        "Our AUTH signatures, by key and mechanism (the signing itself, off the event loop)",
        labels=["token", "key", "mechanism"],
    )
    for (token, kname, mech), h in sorted(rec.sign_durations.items()):
        sign.add_metric([token, kname, mech], h.buckets(), h.total)
    yield sign
    yield _counter(
        "pike_sign_failures",
        "Signatures that failed (IKE_AUTH failed closed), by key and reason",
        [([t, k, r], float(n)) for (t, k, r), n in sorted(rec.sign_failures.items())],
        ["token", "key", "reason"],
    )


def _pki(s: _Scrape) -> Iterator[Metric]:
    """Certificate expiry and the health of CRLs and OCSP responders."""
    pki = s.src.pki()
    certs = pki.get("certs", [])
    yield _gauge(
        "pike_certificate_expiry_timestamp_seconds",
        "notAfter of each certificate in use: ours (local), the trusted CAs (ca) and the "
        "end entity of each authenticated peer (peer)",
        [([c["connection"], c["role"], c["subject"]], c["not_after"]) for c in certs],
        ["connection", "role", "subject"],
    )
    peers = [c for c in certs if c["role"] == "peer" and "revocation" in c]
    yield _gauge(
        "pike_peer_certificate_revocation_status",
        "1 for the revocation status the cache holds now for each peer's certificate "
        "(good, revoked, unknown, failed, pending)",
        [([c["connection"], c["subject"], c["revocation"]], 1.0) for c in peers],
        ["connection", "subject", "status"],
    )
    ours = [c for c in certs if c["role"] == "local" and "revocation" in c]
    yield _gauge(
        "pike_local_certificate_revocation_status",
        "1 for what the CRLs and OCSP answers held say of our own certificate (good, "
        "revoked, unknown: no fresh CRL of its CA held)",
        [([c["connection"], c["subject"], c["revocation"]], 1.0) for c in ours],
        ["connection", "subject", "status"],
    )
    crls = pki.get("crls", [])
    yield _gauge(
        "pike_crl_next_update_timestamp_seconds",
        "nextUpdate of each CRL held (a CRL past it is stale)",
        [([c["source"], c["issuer"]], c["next_update"]) for c in crls if c["next_update"]],
        ["source", "issuer"],
    )
    yield _gauge(
        "pike_crl_this_update_timestamp_seconds",
        "thisUpdate of each CRL held",
        [([c["source"], c["issuer"]], c["this_update"]) for c in crls],
        ["source", "issuer"],
    )
    yield _gauge(
        "pike_crl_revoked_certificates",
        "Entries of each CRL held",
        [([c["source"], c["issuer"]], float(c["revoked"])) for c in crls],
        ["source", "issuer"],
    )
    sources = pki.get("sources", [])
    yield _gauge(
        "pike_revocation_source_up",
        "1 when the last fetch from this CRL URI or OCSP responder succeeded",
        [([x["source"]], 0.0 if x["error"] else 1.0) for x in sources],
        ["source"],
    )
    yield _gauge(
        "pike_revocation_last_success_timestamp_seconds",
        "When a CRL or OCSP answer last came from this source",
        [([x["source"]], x["fetched_at"]) for x in sources if x["fetched_at"]],
        ["source"],
    )
    yield _counter(
        "pike_revocation_fetches",
        "CRL and OCSP fetches, by kind (crl, ocsp) and result (ok, failed)",
        [([k, r], float(n)) for (k, r), n in sorted(pki.get("fetches", {}).items())],
        ["kind", "result"],
    )


def _operations(s: _Scrape) -> Iterator[Metric]:
    """Config reloads."""
    rec = s.rec
    yield _counter(
        "pike_config_reloads",
        "pikectl reload / SIGHUP, by result",
        [([r], float(rec.reloads.get(r, 0))) for r in ("success", "failure")],
        ["result"],
    )
    if rec.last_reload is not None:
        yield _gauge(
            "pike_config_last_reload_success_timestamp_seconds",
            "Last successful config reload (Unix time)",
            [([], rec.last_reload)],
        )


Samples = list[tuple[list[str], float]]


def _gauge(name: str, help_: str, samples: Samples, labels: list[str] | None = None) -> Metric:
    m = GaugeMetricFamily(name, help_, labels=labels or [])
    for values, v in samples:
        m.add_metric(values, v)
    return m


def _counter(name: str, help_: str, samples: Samples, labels: list[str] | None = None) -> Metric:
    m = CounterMetricFamily(name, help_, labels=labels or [])
    for values, v in samples:
        m.add_metric(values, v)
    return m
