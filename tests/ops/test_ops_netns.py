"""Operations proof on the host tier: two piked in network namespaces (veth 192.0.2.1/24
<-> 192.0.2.2/24, PSK, ``encap = true`` so NAT-T keepalives flow, ``dpd_delay = 1s``).

- A real Prometheus (Debian's ``prometheus``), started inside namespace ``a`` on its
  loopback (a port of its own, killed by PID), scrapes piked's ``metrics_listen`` every
  second; queries through its HTTP API show the IKE SA up and the DPD, keepalive, message
  and rekey counters moving; ``promtool check metrics`` accepts the exposition.
- tshark captured the exchange on ``a``'s veth; with the ``ikev2_decryption_table`` piked
  wrote (``save_keys_dir``) it decrypts IKE_AUTH (the IDi appears), without it it cannot.
- ``pikectl reload`` of a changed unrelated connection (and an added one) leaves the
  established tunnel's SPIs unchanged; a broken config is refused and changes nothing;
  SIGHUP reloads too.

On this host there is no ESP in the kernel, so CHILD SAs are refused: the ESP byte
counters are proven in tests/metrics (accumulation across rekeys) and the kernel tier.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.helpers import daemon_env, pikectl
from interop.netns import Lab, kill_pid
from lib.pikeconf import psk_tunnel

from .prom import METRICS_PORT, http_get, prom_value, start_prometheus

pytestmark = pytest.mark.interop

PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"


def _config(
    d: Path, name: str, local: str, remote: str, lid: str, rid: str, *, start: bool, extra: str = ""
) -> str:
    """a (``start``) initiates, keeps keys, serves metrics and probes DPD; ``extra`` is
    more TOML (connections) after the tunnel."""
    lan, far = ["10.1.0.0/24"], ["10.2.0.0/24"]
    return psk_tunnel(
        local=local,
        remote=remote,
        local_id=lid,
        remote_id=rid,
        psk=PSK,
        proposals=["aes256-sha256-modp2048"],
        local_ts=lan if start else far,
        remote_ts=far if start else lan,
        start_action="start" if start else "none",
        daemon={
            "control_socket": str(d / "pike.sock"),
            "keepalive": "1s",
            "metrics_listen": f"127.0.0.1:{METRICS_PORT}" if start else None,
            "save_keys_dir": str(d / "keys") if start else None,
        },
        # only a probes (b's probes would feed a)
        conn={"encap": True, **({"dpd_delay": "1s"} if start else {})},
        tail=extra,
    ).render()


SPARE = """
[connections.spare]
local_addrs = ["192.0.2.1"]
remote_addrs = ["{remote}"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = {{ auth = "psk", id = "branch1.example.net" }}
remote = {{ auth = "psk", id = "spare.example.net" }}
"""
EXTRA = """
[connections.extra]
local_addrs = ["192.0.2.1"]
remote_addrs = ["198.51.100.7"]
proposals = ["aes128gcm16-prfsha256-x25519"]
local = { auth = "psk", id = "branch1.example.net" }
remote = { auth = "psk", id = "extra.example.net" }
"""


def _sas(sock: Path) -> list[dict[str, Any]]:
    out = pikectl(sock, "list-sas", "--json")
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def _wait(cond: Any, timeout: float, what: str, dump: Any = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out: {what}\n{dump()}"
        time.sleep(0.2)


def test_prometheus_tshark_reload(tmp_path: Path, run_prefix: str, require: Any) -> None:
    for tool in ("prometheus", "promtool", "tshark"):
        require(shutil.which(tool) is not None, f"`{tool}` (Debian prometheus / tshark)")
    with Lab.create(f"{run_prefix}ops-") as lab:
        ns_a, ns_b = lab.add_ns("a"), lab.add_ns("b")
        link = lab.link(ns_a, ns_b, "192.0.2.1/24", "192.0.2.2/24")
        da, db = tmp_path / "a", tmp_path / "b"
        da.mkdir()
        db.mkdir()
        cfg_a, cfg_b = da / "pike.toml", db / "pike.toml"
        spare = SPARE.format(remote="203.0.113.9")
        cfg_a.write_text(
            _config(
                da,
                "a",
                "192.0.2.1",
                "192.0.2.2",
                "branch1.example.net",
                "hq.example.net",
                start=True,
                extra=spare,
            )
        )
        cfg_b.write_text(
            _config(
                db,
                "b",
                "192.0.2.2",
                "192.0.2.1",
                "hq.example.net",
                "branch1.example.net",
                start=False,
            )
        )

        # Capture first, so IKE_SA_INIT and IKE_AUTH are in it.
        pcap = tmp_path / "ike.pcapng"
        tshark = ns_a.popen(
            ["tshark", "-q", "-i", link.a_dev, "-w", str(pcap), "-f", "udp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: pcap.exists(), 10, "tshark capture file")
        time.sleep(0.5)

        # Prometheus inside namespace a, scraping piked on a's loopback every second.
        prom_dir = tmp_path / "prom"
        start_prometheus(ns_a, prom_dir, [Path(__file__).parents[2] / "monitoring" / "alerts.yml"])

        logs = {"a": da / "log", "b": db / "log"}
        procs = {}
        for name, cfg in (("b", cfg_b), ("a", cfg_a)):
            with logs[name].open("wb") as f:
                procs[name] = (ns_a if name == "a" else ns_b).popen(
                    [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
                    stdout=f,
                    env=daemon_env(),
                )
            sock = (da if name == "a" else db) / "pike.sock"
            _wait(lambda sock=sock: sock.exists(), 15, f"{name} control socket")

        def dump() -> str:
            return "\n".join(f"--- {n}:\n{p.read_text()[-4000:]}" for n, p in logs.items())

        sock_a, sock_b = da / "pike.sock", db / "pike.sock"

        def up() -> list[dict[str, Any]] | None:
            s = [x for x in _sas(sock_a) if x["name"] == "hq" and x["state"] == "ESTABLISHED"]
            return s or None

        (ike,) = _wait(up, 20, "hq established", dump)
        spis = (ike["spi_i"], ike["spi_r"], ike["unique_id"])

        # -- list-sas shows liveness --------------------------------------------------------
        text = pikectl(sock_a, "list-sas").stdout
        assert "last inbound" in text and "DPD" in text and "next keepalive in" in text, text
        assert ike["next_keepalive_in_s"] is not None and ike["last_inbound_ago_s"] is not None, ike
        conns = pikectl(sock_a, "list-conns")
        assert conns.returncode == 0 and "hq: IKEv2, 1 ESTABLISHED" in conns.stdout, conns

        # -- metrics: exposition and Prometheus ---------------------------------------------
        expo = http_get(ns_a, f"http://127.0.0.1:{METRICS_PORT}/metrics")
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=expo, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert 'pike_ike_sa_up{connection="hq"} 1.0' in expo, expo
        assert "SPI" not in expo and spis[0] not in expo, "no SPIs in labels"

        _wait(
            lambda: prom_value(ns_a, 'pike_ike_sa_up{connection="hq"}') == 1.0,
            30,
            "Prometheus scraped pike_ike_sa_up == 1",
            lambda: (prom_dir / "log").read_text()[-3000:],
        )
        assert prom_value(ns_a, 'pike_ike_sa_up{connection="spare"}') == 0.0
        first = {
            m: prom_value(ns_a, f'{m}{{connection="hq"}}')
            for m in ("pike_dpd_probes_total", "pike_natt_keepalives_total")
        }
        pikectl(sock_a, "rekey", "hq")
        time.sleep(4)
        later = {m: prom_value(ns_a, f'{m}{{connection="hq"}}') for m in first}
        for m in first:
            after = later[m]
            assert after is not None and after > (first[m] or 0), (m, first, later)
        auth_out = 'pike_ike_messages_total{connection="hq",exchange="IKE_AUTH",direction="out"}'
        assert prom_value(ns_a, auth_out) == 1.0
        rekeys = prom_value(ns_a, 'pike_ike_rekeys_total{connection="hq"}')
        assert rekeys is not None and rekeys >= 1.0, dump()
        assert prom_value(ns_a, 'pike_ike_sa_last_rekey_timestamp_seconds{connection="hq"}')
        assert prom_value(
            ns_a, 'count(pike_ike_handshake_duration_seconds_bucket{connection="hq"})'
        )
        assert prom_value(ns_a, "pike_build_info") == 1.0
        (ike,) = _wait(up, 10, "hq established after rekey", dump)
        spis = (ike["spi_i"], ike["spi_r"], ike["unique_id"])

        # -- tshark decrypts IKE_AUTH with the exported keys --------------------------------
        kill_pid(tshark.pid)
        table = da / "keys" / "ikev2_decryption_table"
        assert table.exists(), dump()
        lines = table.read_text().splitlines()
        assert len(lines) >= 2, lines  # the first IKE SA and its rekeyed successor
        assert '"AES-CBC-256 [RFC3602]"' in lines[0] and "HMAC_SHA2_256_128" in lines[0]
        assert oct((da / "keys" / "ikev2_decryption_table").stat().st_mode & 0o777) == "0o600"

        def idi_seen(conf: Path | None) -> bool:
            env = dict(os.environ)
            if conf is not None:
                env["WIRESHARK_CONFIG_DIR"] = str(conf)
            out = subprocess.run(
                ["tshark", "-r", str(pcap), "-V", "-Y", "isakmp"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            return "branch1.example.net" in out.stdout

        wsconf = tmp_path / "wireshark"
        wsconf.mkdir()
        shutil.copy(table, wsconf / "ikev2_decryption_table")
        empty = tmp_path / "wireshark-empty"
        empty.mkdir()
        assert not idi_seen(empty), "IDi readable without keys?"
        assert idi_seen(wsconf), "tshark did not decrypt IKE_AUTH with the exported keys"

        # -- reload: unrelated connection changed, one added; hq untouched ------------------
        good = cfg_a.read_text()
        cfg_a.write_text(good + "\nbroken = [\n")
        bad = pikectl(sock_a, "reload")
        assert bad.returncode == 1 and "TOML syntax error" in bad.stderr, bad
        cfg_a.write_text(good.replace("203.0.113.9", "203.0.113.10") + EXTRA)
        ok = pikectl(sock_a, "reload")
        assert ok.returncode == 0, ok.stderr
        assert "unchanged: hq" in ok.stdout and "changed:   spare" in ok.stdout, ok.stdout
        assert "added:     extra" in ok.stdout, ok.stdout
        time.sleep(1.5)
        (after,) = _wait(up, 5, "hq still established", dump)
        assert (after["spi_i"], after["spi_r"], after["unique_id"]) == spis, (after, spis)
        peer = [x for x in _sas(sock_b) if x["state"] == "ESTABLISHED"]
        assert [(x["spi_i"], x["spi_r"]) for x in peer] == [spis[:2]], peer
        names = {c["name"] for c in json.loads(pikectl(sock_a, "list-conns", "--json").stdout)}
        assert names == {"hq", "spare", "extra"}
        os.kill(procs["a"].pid, signal.SIGHUP)
        _wait(
            lambda: prom_value(ns_a, 'pike_config_reloads_total{result="success"}') == 2.0,
            10,
            "SIGHUP reload counted",
        )
        assert prom_value(ns_a, 'pike_config_reloads_total{result="failure"}') == 1.0
        (after,) = _wait(up, 5, "hq still established after SIGHUP", dump)
        assert (after["spi_i"], after["spi_r"], after["unique_id"]) == spis
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            assert p.wait(timeout=10) == 0, dump()
