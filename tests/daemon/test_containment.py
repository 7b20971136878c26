"""Containment (issue 13): capabilities dropped after binding, secrets' file modes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from lib.prereq import require
from pike.daemon.secret_files import exposed
from pike.policy.loader import load_config


def test_bind_service_and_raw_are_dropped_after_binding() -> None:
    require(os.geteuid() == 0, "needs root (capabilities to drop)")
    script = textwrap.dedent(
        """
        import socket
        from pike.daemon import privileges
        assert privileges.effective() >> 10 & 1
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))  # bound before: kept
        privileges.ENABLED = True
        privileges.drop_after_binding()
        eff = privileges.effective()
        assert not eff >> 10 & 1 and not eff >> 13 & 1, hex(eff)
        assert eff >> 12 & 1  # CAP_NET_ADMIN stays (XFRM)
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 501))
        except PermissionError:
            print("refused")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "refused"


# One PSK connection; the tests add the secrets whose files they check.
HQ = textwrap.dedent(
    """
            [connections.hq]
            remote_addrs = ["192.0.2.1"]
            proposals = ["aes128gcm16-prfsha256-x25519"]
            local = { auth = "psk", id = "a.example" }
            remote = { auth = "psk", id = "b.example" }
            [connections.hq.children.net]
            local_ts = ["10.1.0.0/24"]
            remote_ts = ["10.2.0.0/24"]
            esp_proposals = ["aes128gcm16"]
    """
)


def test_secret_files_readable_by_others_are_named(tmp_path: Path) -> None:
    psk = tmp_path / "hq.psk"
    psk.write_text("0x" + "ab" * 16)
    conf = tmp_path / "pike.toml"
    conf.write_text(
        HQ
        + textwrap.dedent(
            """
            [secrets.a]
            id = ["a.example", "b.example"]
            secret = "inline-psk-123456"
            [secrets.b]
            id = ["c.example"]
            secret_file = "hq.psk"
            """
        )
    )
    conf.chmod(0o644)
    psk.chmod(0o604)
    warnings = exposed(load_config(str(conf)))
    assert len(warnings) == 2
    assert f"{conf} holds a secret and is readable by others (mode 0644)" in warnings[0]
    assert str(psk) in warnings[1]
    conf.chmod(0o640)
    psk.chmod(0o600)
    assert exposed(load_config(str(conf))) == []


def test_check_config_warns_about_a_world_readable_psk(tmp_path: Path) -> None:
    conf = tmp_path / "pike.toml"
    conf.write_text(HQ + '[secrets.a]\nsecret = "inline-psk-123456"\n')
    conf.chmod(0o644)
    run = subprocess.run(
        [sys.executable, "-m", "pike.cli.pikectl", "check-config", str(conf)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert f"warning: {conf} holds a secret and is readable by others" in run.stderr
