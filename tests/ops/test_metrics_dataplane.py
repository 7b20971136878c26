"""Kernel tier: a real Prometheus scrapes piked while ESP traffic crosses the tunnel.

  lefthost -- left (piked, metrics_listen, Prometheus) == wan0 == right (piked) -- righthost

``encap = true`` on left (NAT-T keepalives every second) and ``dpd_delay = 1s``. While
pings flow, Prometheus (its HTTP API) shows ``pike_child_sa_bytes_total`` rising in both
directions; a CHILD_SA rekey (``pikectl rekey hq.lan``) in the middle does not make it fall
(the old SA's bytes are kept), and it ends at least at the kernel's counts; keepalives rise
throughout; DPD stays quiet while the pings flow (piked's own counter, read during the
traffic: at most one probe, where a stalled guest let a second pass without ESP), and probes
(every second once nothing arrives) rise when traffic stops.

Marked ``kernel_interop``: needs ESP. tests/guest/test_ops_tier.py runs it in UML.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from interop.netns import Lab, Namespace
from interop.piked import PikedNode, piked_available
from interop.strongswan import Child, Connection, Secret
from interop.topology import make_gateways

from .prom import METRICS_PORT, http_get, prom_value, start_prometheus

pytestmark = [pytest.mark.interop, pytest.mark.kernel_interop]

LEFT_ID, RIGHT_ID = "branch1.example.net", "hq.example.net"
SECRET = Secret("hq", "pike-metrics-psk", [LEFT_ID, RIGHT_ID])


def _conn(left: bool) -> Connection:
    return Connection(
        "hq",
        ["192.0.2.1" if left else "192.0.2.2"],
        ["192.0.2.2" if left else "192.0.2.1"],
        proposals=("aes128gcm16-prfsha256-x25519",),
        local_id=LEFT_ID if left else RIGHT_ID,
        remote_id=RIGHT_ID if left else LEFT_ID,
        encap=left,
        dpd_delay="1s" if left else None,
        children=[
            Child(
                "lan",
                ["10.1.0.0/24" if left else "10.2.0.0/24"],
                ["10.2.0.0/24" if left else "10.1.0.0/24"],
                ("aes128gcm16",),
            )
        ],
    )


def _http(ns: Namespace, url: str) -> str:
    return http_get(ns, url, 20.0)


def _q(ns: Namespace, expr: str) -> float | None:
    return prom_value(ns, expr, 20.0)


def _piked(ns: Namespace, name: str) -> float:
    """A counter of connection hq straight from piked's /metrics."""
    text = _http(ns, f"http://127.0.0.1:{METRICS_PORT}/metrics")
    m = re.search(rf'^{name}{{connection="hq"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _bytes(ns: Namespace, direction: str) -> float:
    v = _q(ns, f'pike_child_sa_bytes_total{{connection="hq",child="lan",direction="{direction}"}}')
    return v or 0.0


def _wait(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.5)


def test_prometheus_sees_esp_bytes_rise(tmp_path: Path, run_prefix: str, require: Any) -> None:
    require(shutil.which("prometheus") is not None, "prometheus (Debian package prometheus)")
    require(piked_available(), "piked/pikectl in the venv")
    with Lab.create(f"{run_prefix}om-") as lab:
        gw = make_gateways(lab)
        if not gw.esp_in_kernel:
            pytest.skip(
                "KERNEL TIER SKIPPED: no ESP in this kernel; tests/guest/test_ops_tier.py "
                "runs this inside User-Mode-Linux"
            )
        prom_dir = tmp_path / "prom"
        start_prometheus(gw.left, prom_dir)
        right = PikedNode(gw.right, tmp_path, "right")
        right.add(_conn(False), SECRET)
        left = PikedNode(gw.left, tmp_path, "left")
        keys = tmp_path / "keys"
        left.daemon.update(
            {
                "metrics_listen": f"127.0.0.1:{METRICS_PORT}",
                "keepalive": "1s",
                "save_keys_dir": str(keys),
            }
        )
        left.add(_conn(True), SECRET)
        left.poll_via_socket = right.poll_via_socket = True
        pcap = tmp_path / "esp.pcap"
        tshark = None
        if shutil.which("tshark"):
            tshark = gw.left.popen(
                ["tshark", "-q", "-i", gw.wan.a_dev, "-w", str(pcap), "-f", "udp"]
            )
            _wait(pcap.exists, 30, "tshark capture file")
        try:
            right.start(timeout=60)
            left.start(timeout=60)
            left.initiate("hq")
            left.wait_established("hq", timeout=60, child="lan")
            right.wait_established("hq", timeout=60, child="lan")
            _wait(
                lambda: _q(gw.left, 'pike_ike_sa_up{connection="hq"}') == 1.0,
                60,
                "Prometheus scraped piked " + (prom_dir / "log").read_text()[-2000:],
            )
            host, dst = gw.left_lan.host, gw.right_lan.host_ip
            assert host is not None
            # the pings run until at least 14 s and 4 samples (a busy guest samples slowly)
            ping = host.popen(["ping", "-n", "-q", "-i", "0.2", "-s", "1000", "-w", "60", dst])
            samples: list[tuple[float, float, float]] = []
            t0 = time.monotonic()
            time.sleep(1.5)  # a probe sent just before the first ping may still count
            # DPD probes from piked's own /metrics (exact, no scrape delay), read while the
            # pings flow (issue 5: ESP from the peer is a sign of life). Exactly when a probe
            # may go out (no ESP arrived since the last check) is checked packet by packet
            # in tests/kernel/test_dpd_traffic_kernel.py.
            dpd0 = _piked(gw.left, "pike_dpd_probes_total")
            rekeyed = False
            while len(samples) < 4 or time.monotonic() - t0 < 14:
                assert ping.poll() is None, "ping ended early"
                time.sleep(2)
                samples.append(
                    (time.monotonic() - t0, _bytes(gw.left, "out"), _bytes(gw.left, "in"))
                )
                if not rekeyed and samples[-1][0] > 5:
                    # over the control socket: pikectl's own start-up (seconds on a busy
                    # guest) would leave a gap in the samples (pikectl rekey: tests/cli)
                    left.control("rekey", {"conn": "hq", "child": "lan"})
                    rekeyed = True
            dpd_during = _piked(gw.left, "pike_dpd_probes_total")
            t_pings = time.monotonic() - t0
            ping.send_signal(signal.SIGINT)  # ping exits 0 when replies came
            ping.wait(timeout=30)
            assert ping.returncode == 0, "pings did not cross the tunnel"
            time.sleep(2.5)
            samples.append((time.monotonic() - t0, _bytes(gw.left, "out"), _bytes(gw.left, "in")))
            print("\nPrometheus pike_child_sa_bytes_total{hq,lan} (t, out, in):")
            for t, bo, bi in samples:
                print(f"  {t:5.1f}s  {bo:10.0f}  {bi:10.0f}")
            outs, ins = [s[1] for s in samples], [s[2] for s in samples]
            assert outs == sorted(outs) and ins == sorted(ins), "counter fell (rekey?)"
            assert outs[-1] > outs[0] > 0 and ins[-1] > ins[0] > 0, samples
            during = outs[:-1]  # the last sample comes after the pings
            assert len(set(during)) >= 3, "bytes did not keep rising while traffic flowed"
            # 70 pings or more of 1000 bytes each way: at least 50 KB counted through the rekey
            assert outs[-1] >= 50_000 and ins[-1] >= 50_000, samples
            child_rekeys = _q(gw.left, 'pike_child_sa_rekeys_total{connection="hq"}')
            assert child_rekeys is not None and child_rekeys >= 1.0
            rate = _q(gw.left, 'rate(pike_child_sa_bytes_total{direction="out"}[10s])')
            print(f"rate(out)[10s] at the end: {rate}")

            ka = [_q(gw.left, 'pike_natt_keepalives_total{connection="hq"}') or 0.0]
            dpd = [_q(gw.left, 'pike_dpd_probes_total{connection="hq"}') or 0.0]
            time.sleep(5)  # idle: DPD probes now, keepalives go on
            ka.append(_q(gw.left, 'pike_natt_keepalives_total{connection="hq"}') or 0.0)
            dpd.append(_q(gw.left, 'pike_dpd_probes_total{connection="hq"}') or 0.0)
            print(
                f"keepalives {ka}; DPD probes (piked): {dpd0} at traffic start, {dpd_during} "
                f"at its end; (Prometheus) {dpd} after the traffic and 5 s later"
            )
            assert ka[1] > ka[0] > 0, ka
            # at most one probe in the traffic, against one per second without it
            assert dpd_during - dpd0 <= 1, (dpd0, dpd_during, t_pings)
            assert dpd[1] > dpd[0], dpd
            if tshark is not None:
                _esp_decrypts(tshark, pcap, keys / "esp_sa", tmp_path)
            expo = _http(gw.left, f"http://127.0.0.1:{METRICS_PORT}/metrics")
            if shutil.which("promtool"):
                chk = subprocess.run(
                    ["promtool", "check", "metrics"], input=expo, capture_output=True, text=True
                )
                assert chk.returncode == 0, chk.stdout + chk.stderr
        finally:
            left.stop()
            right.stop()


def _esp_decrypts(tshark: subprocess.Popen[bytes], pcap: Path, esp_sa: Path, tmp: Path) -> None:
    """tshark finds the pings inside the captured ESP-in-UDP with piked's esp_sa table
    (every SA, the rekeyed ones included), and none without it."""
    from interop.netns import kill_pid

    kill_pid(tshark.pid)
    assert esp_sa.exists()
    print(f"esp_sa: {len(esp_sa.read_text().splitlines())} lines")
    counts = []
    for with_keys in (False, True):
        conf = tmp / f"ws-{with_keys}"
        conf.mkdir()
        if with_keys:
            shutil.copy(esp_sa, conf / "esp_sa")
        out = subprocess.run(
            ["tshark", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
             "-Y", "icmp.type == 8", "-T", "fields", "-e", "esp.spi"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "WIRESHARK_CONFIG_DIR": str(conf)},
        )  # fmt: skip
        counts.append(len(out.stdout.split()))
        if with_keys and counts[-1] == 0:
            print(out.stderr[-2000:])
    print(f"tshark: ICMP echo requests found in ESP without keys {counts[0]}, with {counts[1]}")
    assert counts[0] == 0 and counts[1] >= 40, counts
