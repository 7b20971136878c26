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


def _caps(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        k: int(v, 16)
        for k, v in (line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if k.startswith("Cap")
    }


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_running_piked_holds_net_admin_only_and_its_key_helper_nothing(tmp_path: Path) -> None:
    """A real piked (started as root, as the unit would with more capabilities): once
    ready, CAP_NET_BIND_SERVICE and CAP_NET_RAW are gone from every set and
    CAP_NET_ADMIN stays; its key helper pike-keyd (started for the certificate key) holds
    no capability at all."""
    import time

    from cryptography import x509

    from daemon.helpers import daemon_env, free_udp_ports, pikectl
    from hsm.test_token_probe import _conf
    from ikev2.x509gen import issue, make_ca, write

    require(os.geteuid() == 0, "needs root (capabilities to drop)")
    ca = make_ca("ecdsa-p256")
    gw = issue(ca, "ecdsa-p256", "gw.example.net", [x509.DNSName("gw.example.net")])
    write(tmp_path, "gw", gw)
    ike, natt = free_udp_ports(2)
    sock = tmp_path / "run" / "pike.sock"
    cfg = tmp_path / "pike.toml"
    cfg.write_text(
        _conf(
            str(tmp_path / "gw.key"),
            tmp_path / "gw.pem",
            control_socket=str(sock),
            ike_port=ike,
            natt_port=natt,
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
        env=daemon_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while pikectl(sock, "status").returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        caps = _caps(proc.pid)
        bind, raw, admin = 1 << 10, 1 << 13, 1 << 12
        for name in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert not caps[name] & (bind | raw), (name, hex(caps[name]))
        assert caps["CapEff"] & admin
        [helper] = _children(proc.pid)
        assert "pike.cli.keyd" in Path(f"/proc/{helper}/cmdline").read_text()
        helper_caps = _caps(helper)
        for name in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert helper_caps[name] == 0, (name, hex(helper_caps[name]))
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]
    assert "pike-keyd" in err  # its lines are in piked's log (the journal)
