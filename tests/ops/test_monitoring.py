"""The monitoring files and the systemd unit pass their own tools: ``promtool check rules``
and ``promtool test rules`` (alerts fire when they should), the dashboard is Grafana JSON
whose queries use exported metrics (tests/metrics), ``systemd-analyze verify`` accepts
the unit the image ships (the same file serves installs from source, see README)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pike.policy.loader import load_config_text

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "image" / "rootfs" / "etc" / "systemd" / "system" / "piked.service"


def test_alert_rules_check_and_unit_tests(require: Any) -> None:
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    out = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / "monitoring" / "alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_is_grafana_json() -> None:
    d = json.loads((ROOT / "monitoring" / "dashboard.json").read_text())
    assert d["uid"] == "pike-fleet" and d["panels"]
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "connection"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["w"] <= 24
        for t in p["targets"]:  # the job variable narrows every panel
            assert 'job=~"$job"' in t["expr"], (p["title"], t["expr"])


def test_one_metrics_port_everywhere() -> None:
    """The image listens where the scrape config and the README say, on every address
    (a remote Prometheus cannot reach 127.0.0.1)."""
    image = (ROOT / "image" / "rootfs" / "etc" / "pike" / "pike.toml").read_text()
    (listen,) = re.findall(r'^metrics_listen = "(.*)"', image, re.M)
    assert listen == ":9447"
    scrape = (ROOT / "monitoring" / "README.md").read_text()
    assert set(re.findall(r'\.example\.net:(\d+)"', scrape)) == {"9447"}
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"\b(?:metrics|tcp dport) .*?(\d{4,5})\b", readme)) <= {"9447"}
    assert "9485" not in image + scrape
    assert readme.count("9485") == 1 and "(was `127.0.0.1:9485`)" in readme  # upgrade note


def test_systemd_unit_verifies(tmp_path: Path, require: Any) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (package systemd)")
    # verify checks that ExecStart= binaries exist: point /opt/pike/bin at stand-ins.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("piked", "pikectl"):
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)
    text = UNIT.read_text()
    for key in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert key in text, key
    unit = tmp_path / "piked.service"
    unit.write_text(text.replace("/opt/pike/bin/", f"{bindir}/"))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stdout + out.stderr
    sec = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    if sec.returncode == 0 or "exposure level" in sec.stdout:
        last = sec.stdout.strip().splitlines()[-1]
        level = float(last.split("piked.service:")[1].split()[0])
        assert level < 4.0, last  # "OK" or better


def test_readme_install_matches_the_image() -> None:
    """The README installs the image's unit and creates the ``pike`` user as the image
    does; its example config loads, with a PSK that reads as what it looks like."""
    readme = (ROOT / "README.md").read_text()
    (unit,) = set(re.findall(r"install -m 0644 (\S+piked\.service) ", readme))
    assert (ROOT / unit) == UNIT
    hook = (ROOT / "image" / "hooks" / "customize.sh").read_text().replace("\\\n", " ")
    # the pike user's (the image also makes pike-keyd's, for the key helper's own unit)
    (image_user,) = re.findall(r"useradd (.* pike)$", hook, re.M)
    (readme_user,) = re.findall(r"^useradd (.*)", readme, re.M)
    assert readme_user.split() == image_user.split()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_config_text(example, "/etc/pike/pike.toml")
    (secret,) = re.findall(r'^secret = "(.*)"', example, re.M)
    assert not secret.lower().startswith(("0s", "0x"))
    assert config.secrets[0].secret == secret.encode()
