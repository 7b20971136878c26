"""pike.metrics: the collector's exposition (promtool-clean, stable labels, no SPIs) and
CHILD SA byte/packet counters that keep counting across rekeys (and hard expires)."""

from __future__ import annotations

import re
import shutil
import subprocess
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from pike.metrics.collector import PikeCollector, Sources
from pike.metrics.recorder import Recorder, reason_label
from pike.policy.ipsec import SaCounters, SaSpec
from pike.policy.loader import ConfigError, load_config_text
from pike.sa.actions import (
    ChildSaFailed,
    ChildSaInfo,
    DeleteChildSa,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaInfo,
    InstallChildSa,
)
from pike.sa.context import Counters

ROOT = Path(__file__).parents[2]
CONFIG = """
[daemon]
metrics_listen = "127.0.0.1:9447"
[connections.hq]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = "a.example" }
remote = { auth = "psk", id = "b.example" }
[connections.hq.children.lan]
local_ts = ["10.1.0.0/24"]
remote_ts = ["10.2.0.0/24"]
esp_proposals = ["aes128gcm16"]
start_action = "start"
[connections.spare]
remote_addrs = ["192.0.2.9"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = "a.example" }
remote = { auth = "psk", id = "c.example" }
[secrets.s]
secret = "0x00112233445566778899"
"""


def _spec(src: str, dst: str, spi: int) -> SaSpec:
    return SaSpec(
        src=ip_address(src),
        dst=ip_address(dst),
        spi=spi,
        reqid=1,
        mode="tunnel",
        encr_id=20,
        encr_key=bytes(20),
        encr_key_length=128,
        integ_id=0,
        integ_key=b"",
    )


class Kernel:
    """SA counters by (dst, spi); a missing key is an SA the kernel does not have."""

    def __init__(self) -> None:
        self.sas: dict[tuple[str, int], SaCounters] = {}

    def query(self, spec: SaSpec) -> SaCounters | None:
        return self.sas.get((str(spec.dst), spec.spi))

    def set(self, spec: SaSpec, nbytes: int, packets: int) -> None:
        self.sas[(str(spec.dst), spec.spi)] = SaCounters(nbytes, packets)


def _child(uid: int, sin: SaSpec, sout: SaSpec, state: str = "INSTALLED") -> ChildSaInfo:
    return ChildSaInfo(
        "lan", uid, state, "TUNNEL", "ESP", sin.spi, sout.spi, ("10.1.0.0/24",),
        ("10.2.0.0/24",), "aes128gcm16", sin, sout, 100.0,
    )  # fmt: skip


def _ike(children: tuple[ChildSaInfo, ...]) -> IkeSaInfo:
    return IkeSaInfo(
        "hq", 1, "ESTABLISHED", 2, True, ("192.0.2.1", 4500), ("192.0.2.2", 4500),
        "a.example", "b.example", bytes.fromhex("1122334455667788"), bytes(8),
        "aes128gcm16-prfsha256-x25519", 100.0, True, False, children,
        last_inbound=150.0, dpd_outstanding=False, keepalive_at=170.0,
    )  # fmt: skip


class Fixture:
    def __init__(self) -> None:
        self.kernel = Kernel()
        self.config = load_config_text(CONFIG, "/etc/pike/pike.toml")
        self.sas: list[IkeSaInfo] = []
        self.counters = Counters()
        self.rec = Recorder(self.kernel.query, wall=lambda: 1_700_000_100.0)
        self.tokens: dict[str, str] = {}
        self.hubs: dict[str, tuple[str | None, int]] = {}
        self.pki: dict[str, Any] = {}
        self.loop_lag = (0.0, 0.0)  # (worst of the last 10 s, worst since start)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            PikeCollector(
                Sources(
                    config=lambda: self.config,
                    sas=lambda: self.sas,
                    counters=lambda: self.counters,
                    now=lambda: 160.0,
                    wall=lambda: 1_700_000_160.0,
                    esp=lambda: True,
                    recorder=self.rec,
                    version="0.1.0",
                    started_wall=1_700_000_000.0,
                    tokens=lambda: self.tokens,
                    hubs=lambda conn: self.hubs.get(conn, (None, 0)),
                    pki=lambda: self.pki,
                    loop_lag=lambda: self.loop_lag,
                )
            )
        )

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def value(self, name: str, **labels: str) -> float:
        for line in self.text().splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            assert m, line
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if m.group(1) == name and got == labels:
                return float(m.group(3))
        raise KeyError(f"{name}{labels}")


def _bytes(f: Fixture, direction: str) -> float:
    return f.value("pike_child_sa_bytes_total", child="lan", connection="hq", direction=direction)


def test_active_hub_and_hub_changes() -> None:
    f = Fixture()
    assert "pike_connection_active_peer{" not in f.text()  # nothing to dial: no series
    f.hubs["hq"] = ("hub-b.example.net", 3)
    assert f.value("pike_connection_active_peer", connection="hq", peer="hub-b.example.net") == 1
    assert f.value("pike_connection_hub_changes_total", connection="hq") == 3


def test_child_bytes_keep_counting_across_rekeys_and_expiry() -> None:
    f = Fixture()
    in1, out1 = _spec("192.0.2.2", "192.0.2.1", 0xC0000001), _spec("192.0.2.1", "192.0.2.2", 0x1)
    f.rec.observe(InstallChildSa("hq", "lan", 2, in1, out1, ()))
    f.sas = [_ike((_child(2, in1, out1),))]
    assert _bytes(f, "in") == 0.0
    f.kernel.set(in1, 1000, 10)
    f.kernel.set(out1, 2000, 20)
    assert (_bytes(f, "in"), _bytes(f, "out")) == (1000.0, 2000.0)

    # make-before-break rekey: the successor is installed, then the old SA deleted
    in2, out2 = _spec("192.0.2.2", "192.0.2.1", 0xC0000002), _spec("192.0.2.1", "192.0.2.2", 0x2)
    f.rec.observe(InstallChildSa("hq", "lan", 3, in2, out2, ()))
    f.sas = [_ike((_child(2, in1, out1, "REKEYED"), _child(3, in2, out2)))]
    f.kernel.set(in1, 1500, 15)  # counted until it goes
    f.kernel.set(in2, 100, 1)
    assert _bytes(f, "in") == 1600.0
    assert f.value("pike_child_sa_installed", child="lan", connection="hq") == 1.0
    f.rec.observe(DeleteChildSa("hq", "lan", 2, in1, out1, ()))
    del f.kernel.sas[("192.0.2.1", in1.spi)], f.kernel.sas[("192.0.2.2", out1.spi)]
    f.sas = [_ike((_child(3, in2, out2),))]
    assert _bytes(f, "in") == 1600.0 and _bytes(f, "out") == 2000.0
    assert (
        f.value("pike_child_sa_packets_total", child="lan", connection="hq", direction="in") == 16.0
    )
    assert (
        f.value("pike_child_sa_last_rekey_timestamp_seconds", child="lan", connection="hq")
        == 1_700_000_100.0
    )

    # the kernel removed SA 3 itself (hard expire) before the delete: last seen counts stay
    f.kernel.set(in2, 300, 3)
    assert _bytes(f, "in") == 1800.0
    del f.kernel.sas[("192.0.2.1", in2.spi)]
    f.rec.observe(DeleteChildSa("hq", "lan", 3, in2, out2, ()))
    f.sas = [_ike(())]
    assert _bytes(f, "in") == 1800.0


def test_offload_in_use_per_direction() -> None:
    f = Fixture()
    sin, sout = _spec("192.0.2.2", "192.0.2.1", 0xC0000001), _spec("192.0.2.1", "192.0.2.2", 0x1)
    f.rec.observe(InstallChildSa("hq", "lan", 2, sin, sout, ()))
    f.sas = [_ike((_child(2, sin, sout),))]
    f.kernel.sas[("192.0.2.1", sin.spi)] = SaCounters(0, 0, offload="crypto")
    f.kernel.sas[("192.0.2.2", sout.spi)] = SaCounters(0, 0, offload="no")  # auto fell back

    def offload(direction: str, mode: str) -> float:
        labels = {"connection": "hq", "child": "lan", "direction": direction, "offload": mode}
        return f.value("pike_child_sa_offload", **labels)

    assert (offload("in", "crypto"), offload("in", "no"), offload("in", "packet")) == (1, 0, 0)
    assert (offload("out", "crypto"), offload("out", "no")) == (0, 1)
    f.sas = [_ike((_child(2, sin, sout, "REKEYED"),))]  # on its way out: not counted
    assert offload("in", "crypto") == 0


def test_exposition_is_promtool_clean_and_has_no_spis(require: Any) -> None:
    f = Fixture()
    in1, out1 = _spec("192.0.2.2", "192.0.2.1", 0xC0FFEE01), _spec("192.0.2.1", "192.0.2.2", 0x2)
    f.sas = [_ike((_child(2, in1, out1),))]
    f.kernel.set(in1, 1, 1)
    c = f.counters.conn("hq")
    c.dpd_probes, c.keepalives, c.ike_rekeys = 4, 7, 1
    c.messages_out["IKE_AUTH"] = 1
    f.counters.drop("invalid_syntax")
    f.rec.observe(IkeSaEstablished("hq", 1, bytes(8), bytes(8), handshake_seconds=0.03))
    f.rec.observe(IkeSaEstablished("hq", 4, bytes(8), bytes(8), rekey=True))
    f.rec.observe(IkeSaDeleted("hq", 1, "peer_deleted"))
    f.rec.observe(IkeSaDeleted("hq", 2, "auth_failed"))  # IKEv2
    f.rec.observe(IkeSaDeleted("hq", 3, "auth_failed: HASH mismatch: wrong pre-shared key?"))
    f.rec.observe(ChildSaFailed("hq", "lan", "NO_PROPOSAL_CHOSEN"))
    f.rec.reloaded(True)
    f.tokens = {"gw": "ready", "tpm": "absent"}
    f.rec.signed("gw", "ike", "ecdsa_sha256", 0.0008, None)
    f.rec.signed("gw", "ike", "ecdsa_sha256", 0.003, None)
    f.rec.signed("tpm", "ike-rsa", "rsa_pkcs1_sha256", 0.02, "absent")
    text = f.text()
    assert "c0ffee01" not in text.lower() and "1122334455667788" not in text
    assert f.value("pike_ike_sa_up", connection="hq") == 1.0
    assert f.value("pike_ike_sa_up", connection="spare") == 0.0
    # hq is kept up (start_action = "start"), spare is not: PikePeerDown is for hq only.
    assert f.value("pike_connection_expected_up", connection="hq") == 1.0
    assert f.value("pike_connection_expected_up", connection="spare") == 0.0
    assert f.value("pike_child_sa_expected_up", connection="hq", child="lan") == 1.0
    assert f.value("pike_ike_auth_failures_total", connection="hq") == 2.0
    assert f.value("pike_ike_auth_failures_total", connection="spare") == 0.0
    # Delete reasons are bounded label values, not the engine's detail text.
    assert f.value("pike_ike_sa_deletes_total", connection="hq", reason="auth_failed") == 2.0
    assert f.value("pike_ike_sas", connection="hq", state="ESTABLISHED") == 1.0
    assert f.value("pike_ike_sa_established_timestamp_seconds", connection="hq") == 1_700_000_100
    assert f.value("pike_peer_last_inbound_timestamp_seconds", connection="hq") == 1_700_000_150
    assert f.value("pike_natt_keepalive_next_timestamp_seconds", connection="hq") == 1_700_000_170
    assert f.value("pike_nat_detected", connection="hq", side="local") == 1.0
    assert f.value("pike_dpd_probes_total", connection="hq") == 4.0
    assert f.value("pike_natt_keepalives_total", connection="hq") == 7.0
    assert f.value("pike_dpd_probes_total", connection="spare") == 0.0
    assert (
        f.value("pike_ike_messages_total", connection="hq", exchange="IKE_AUTH", direction="out")
        == 1.0
    )
    assert f.value("pike_ike_invalid_messages_total", reason="invalid_syntax") == 1.0
    assert f.value("pike_ike_sa_deletes_total", connection="hq", reason="peer_deleted") == 1.0
    assert f.value("pike_ike_sa_establishments_total", connection="hq") == 1.0
    assert f.value("pike_ike_handshake_duration_seconds_bucket", connection="hq", le="0.05") == 1
    assert f.value("pike_ike_handshake_duration_seconds_bucket", connection="hq", le="0.025") == 0
    failed = {"connection": "hq", "child": "lan", "reason": "NO_PROPOSAL_CHOSEN"}
    assert f.value("pike_child_sa_failures_total", **failed) == 1.0
    assert f.value("pike_config_reloads_total", result="success") == 1.0
    assert 'pike_build_info{python="' in text and 'version="0.1.0"} 1.0' in text
    assert f.value("pike_token_present", token="gw") == 1.0
    assert f.value("pike_token_present", token="tpm") == 0.0
    assert f.value("pike_token_state", token="tpm", state="absent") == 1.0
    sign = {"token": "gw", "key": "ike", "mechanism": "ecdsa_sha256"}
    assert f.value("pike_sign_duration_seconds_bucket", **sign, le="0.001") == 1
    assert f.value("pike_sign_duration_seconds_bucket", **sign, le="0.005") == 2
    assert f.value("pike_sign_duration_seconds_count", **sign) == 2
    assert f.value("pike_sign_failures_total", token="tpm", key="ike-rsa", reason="absent") == 1
    require(
        shutil.which("promtool") is not None,
        "promtool missing (Debian package prometheus): exposition not linted",
    )
    out = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


# what pike.daemon.certs_view gives the collector: one connection with our certificate,
# its CA and an authenticated peer; one CRL; a CRL source and a failing OCSP responder
PKI: dict[str, Any] = {
    "certs": [
        {"connection": "hq", "role": "local", "subject": "CN=gw", "not_after": 1_800_000_000.0,
         "revocation": "revoked", "revocation_source": "crl http://pki/ca.crl"},
        {"connection": "hq", "role": "ca", "subject": "CN=CA", "not_after": 2_000_000_000.0},
        {"connection": "hq", "role": "peer", "subject": "CN=hq", "not_after": 1_750_000_000.0,
         "revocation": "good", "revocation_source": "crl http://pki/ca.crl"},
    ],
    "crls": [
        {"source": "http://pki/ca.crl", "issuer": "CN=CA", "this_update": 1_700_000_000.0,
         "next_update": 1_700_086_400.0, "number": 4, "revoked": 3, "fetched_at": 1.0,
         "error": None},
    ],
    "sources": [
        {"source": "http://pki/ca.crl", "fetched_at": 1_700_000_050.0, "error": None},
        {"source": "http://ocsp/", "fetched_at": None, "error": "no answer within 3 s"},
    ],
    "fetches": {("crl", "ok"): 2, ("ocsp", "failed"): 1},
}  # fmt: skip


def test_certificate_and_revocation_series() -> None:
    f = Fixture()
    f.pki = PKI
    expiry = "pike_certificate_expiry_timestamp_seconds"
    assert f.value(expiry, connection="hq", role="local", subject="CN=gw") == 1_800_000_000.0
    assert f.value(expiry, connection="hq", role="peer", subject="CN=hq") == 1_750_000_000.0
    status = {"connection": "hq", "subject": "CN=hq", "status": "good"}
    assert f.value("pike_peer_certificate_revocation_status", **status) == 1.0
    ours = {"connection": "hq", "subject": "CN=gw", "status": "revoked"}
    assert f.value("pike_local_certificate_revocation_status", **ours) == 1.0
    with pytest.raises(KeyError):  # ours is not among the peers'
        f.value("pike_peer_certificate_revocation_status", **ours)
    crl = {"source": "http://pki/ca.crl", "issuer": "CN=CA"}
    assert f.value("pike_crl_next_update_timestamp_seconds", **crl) == 1_700_086_400.0
    assert f.value("pike_crl_revoked_certificates", **crl) == 3.0
    assert f.value("pike_revocation_source_up", source="http://pki/ca.crl") == 1.0
    assert f.value("pike_revocation_source_up", source="http://ocsp/") == 0.0
    with pytest.raises(KeyError):  # never a success: no timestamp
        f.value("pike_revocation_last_success_timestamp_seconds", source="http://ocsp/")
    assert f.value("pike_revocation_fetches_total", kind="ocsp", result="failed") == 1.0
    if shutil.which("promtool") is not None:
        out = subprocess.run(
            ["promtool", "check", "metrics"], input=f.text(), capture_output=True, text=True
        )
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_event_loop_lag_gauges() -> None:
    f = Fixture()
    assert "pike_event_loop_lag_seconds 0.0" in f.text()  # exported from the start
    f.loop_lag = (0.25, 1.5)
    text = f.text()
    assert "\npike_event_loop_lag_seconds 0.25\n" in text
    assert "\npike_event_loop_lag_max_seconds 1.5\n" in text


def test_dashboard_and_alerts_use_exported_metrics() -> None:
    f = Fixture()
    in1, out1 = _spec("192.0.2.2", "192.0.2.1", 0xC0000001), _spec("192.0.2.1", "192.0.2.2", 0x1)
    f.sas = [_ike((_child(2, in1, out1),))]
    f.rec.observe(IkeSaEstablished("hq", 1, bytes(8), bytes(8), handshake_seconds=0.03))
    f.rec.observe(IkeSaEstablished("hq", 2, bytes(8), bytes(8), rekey=True))
    f.rec.observe(IkeSaDeleted("hq", 1, "rekeyed"))
    f.rec.observe(ChildSaFailed("hq", "lan", "TS_UNACCEPTABLE"))  # a series per reason seen
    f.rec.reloaded(True)
    f.counters.conn("hq").messages_in["INFORMATIONAL"] = 3
    f.counters.drop("unknown_spi")
    exported = set(re.findall(r"^(pike_\w+)", f.text(), re.M))
    used: set[str] = set()
    for name in ("dashboard.json", "alerts.yml"):
        used |= set(re.findall(r"\b(pike_\w+)", (ROOT / "monitoring" / name).read_text()))
    f.tokens = {"gw": "ready"}
    f.pki = PKI
    f.rec.signed("gw", "ike", "ecdsa_sha256", 0.001, None)
    f.rec.signed("gw", "ike", "ecdsa_sha256", 0.001, "absent")
    exported = set(re.findall(r"^(pike_\w+)", f.text(), re.M))
    missing = used - exported
    assert not missing, missing


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ('"127.0.0.1:9447"', True),
        ('"[::1]:9447"', True),
        ('":9447"', True),
        ('""', True),
        ('"localhost:9447"', False),
        ('"127.0.0.1"', False),
        ('"127.0.0.1:0"', False),
        ('"::1:9447"', False),
        ("9447", False),
    ],
)
def test_metrics_listen_is_validated(value: str, ok: bool) -> None:
    text = f"[daemon]\nmetrics_listen = {value}\n"
    if ok:
        load_config_text(text, "p.toml")
    else:
        with pytest.raises(ConfigError, match=r"p.toml:2: daemon.metrics_listen"):
            load_config_text(text, "p.toml")


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("kernel_no_esp", "kernel_no_esp"),
        ("peer_refused", "peer_refused"),
        ("peer refused CHILD_SA with notify TS_UNACCEPTABLE", "TS_UNACCEPTABLE"),
        ("invalid KE payload: 42 bytes for ecp256", "invalid_response"),
        ("responder widened the traffic selectors", "invalid_response"),
        ("auth_failed: HASH mismatch: wrong pre-shared key?", "auth_failed"),
    ],
)
def test_child_failure_reason_label_is_bounded(reason: str, label: str) -> None:
    assert reason_label(reason) == label
