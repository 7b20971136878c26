"""``pikectl import-swanctl`` (issue 17): swanctl.conf -> pike.toml, and line by line what
cannot be carried over.

- strongSwan's own swanctl.conf as Debian installs it (/etc/swanctl/swanctl.conf, package
  strongswan-swanctl): as shipped (all comments) it imports to nothing, silently; with
  every documented key uncommented, each key line is either carried over or named with
  its line and a reason, and none is "not a swanctl key pike knows" (the importer knows
  every key strongSwan 5.9 documents). strongSwan's own strongswan.d templates parse.
- fixtures in swanctl.conf's syntax (tests/fixtures/swanctl): include, templates, auth
  rounds, DNs, IPv6, quoted strings, ``default`` proposals, ``dynamic`` selectors,
  dpd_action per child, what pike refuses (MODP-1024) with pike's own reason;
  certificates: the private key found by its public key, every CA in x509ca trusted.
- the result passes ``pikectl check-config``; the file is 0600; no secret is ever printed;
  a syntax error names FILE:LINE and exits 1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from interop import pki
from lib.prereq import require
from pike.daemon.configfile import board_defaults
from pike.swanctl.importer import import_swanctl
from pike.swanctl.settings import SettingsError, Where, parse_file

FIXTURES = Path(__file__).parent.parent / "fixtures" / "swanctl"
DEBIAN_SWANCTL = Path("/etc/swanctl/swanctl.conf")  # strongswan-swanctl's conffile
DEBIAN_TEMPLATES = Path("/usr/share/strongswan/templates/config")
_COMMENTED_SETTING = re.compile(r"^(\s*)# (\S+ =.*|\S+ \{|\})\s*$")


def _pikectl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pike.cli.pikectl", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _uncomment(src: Path, dst: Path) -> set[int]:
    """``src`` with every commented setting (``# key = value``, ``# name {``, ``# }``)
    made live; the numbers of the key lines."""
    keys: set[int] = set()
    out = []
    for n, line in enumerate(src.read_text().splitlines(), 1):
        m = _COMMENTED_SETTING.match(line)
        if m:
            out.append(m.group(1) + m.group(2))
            keys |= {n} if " = " in m.group(2) or m.group(2).endswith(" =") else set()
        else:
            out.append(line)
    dst.write_text("\n".join(out) + "\n")
    return keys


def test_debian_swanctl_conf_as_shipped_imports_to_nothing() -> None:
    require(
        DEBIAN_SWANCTL.exists(), f"{DEBIAN_SWANCTL} missing (apt-get install strongswan-swanctl)"
    )
    got = import_swanctl(str(DEBIAN_SWANCTL))
    assert got.notes == [] and got.connections == []
    assert tomllib.loads(got.text) == {}


def test_debian_swanctl_conf_every_key_carried_or_named(tmp_path: Path) -> None:
    require(
        DEBIAN_SWANCTL.exists(), f"{DEBIAN_SWANCTL} missing (apt-get install strongswan-swanctl)"
    )
    live = tmp_path / "swanctl.conf"
    key_lines = _uncomment(DEBIAN_SWANCTL, live)
    assert len(key_lines) > 100  # the template documents every swanctl.conf key (140 in 5.9.8)
    got = import_swanctl(str(live), swanctl_dir=str(tmp_path))
    accounted = {w.line for w in got.accounted if w.file == str(live)}
    assert key_lines <= accounted, sorted(key_lines - accounted)
    unknown = [str(n) for n in got.notes if "not a swanctl key pike knows" in n.why]
    assert unknown == []
    assert all(0 < n.where.line <= len(live.read_text().splitlines()) for n in got.notes)
    tomllib.loads(got.text)  # whatever is left is TOML


def test_strongswan_templates_parse() -> None:
    """strongSwan's strongswan.d templates use the same syntax: all of them parse."""
    files = sorted(DEBIAN_TEMPLATES.rglob("*.conf")) if DEBIAN_TEMPLATES.is_dir() else []
    require(len(files) > 10, f"{DEBIAN_TEMPLATES}: strongSwan's templates missing")
    for f in files:
        root = parse_file(str(f), lambda p: Path(p).read_text(), lambda p: [])
        assert root.where == Where(str(f), 0)


def test_branch_fixture(tmp_path: Path) -> None:
    conf, secrets = FIXTURES / "branch" / "swanctl.conf", FIXTURES / "branch" / "secrets.conf"
    got = import_swanctl(str(conf), str(secrets), defaults=board_defaults()[0])
    data = tomllib.loads(got.text)
    hq, lab = data["connections"]["hq"], data["connections"]["lab"]
    assert hq["remote_addrs"] == ["vpn.hq.example.net", "198.51.100.1"]
    assert hq["proposals"] == ["aes256gcm16-prfsha384-ecp384"]  # modp1024 refused
    assert (hq["dpd_delay"], hq["rekey_time"], hq["keyingtries"]) == ("30s", "8h", 0)
    assert hq["dpd_action"] == "restart"  # strongSwan's per child, pike's per connection
    assert hq["mobike"] is False  # mobike = no carried over
    assert hq["local"] == {"auth": "psk", "id": "C=DE, O=Example AG, CN=branch7"}
    office, voice = hq["children"]["office"], hq["children"]["voice"]
    assert office["remote_ts"] == ["10.0.0.0/8", "172.16.0.0/12"]
    assert office["esp_proposals"] == ["aes256gcm16-ecp384"]
    assert (office["close_action"], office["start_action"]) == ("start", "start")
    assert (office["life_time"], office["rekey_bytes"]) == ("2h", "500M")
    assert voice == {
        "local_ts": ["10.7.50.0/24[udp/5060]"],
        "remote_ts": ["10.50.0.0/24"],
        "mode": "transport",
        "hw_offload": "crypto",
    }
    assert (lab["version"], lab["aggressive"]) == (1, True)
    assert "children" not in lab  # bench is AH only, snmp has no address for dynamic
    assert data["secrets"]["ike-hq"]["secret"] == "0x46bd1e9a7c3f0b2d58e46a91c0f7d3b2"
    assert data["secrets"]["ike-lab"]["secret"] == 'lab psk, "quoted" # not a comment'
    notes = [f"{Path(n.where.file).name}:{n.where.line}: {n.key}" for n in got.notes]
    assert notes == [
        "swanctl.conf:9: connections.hq.proposals",
        "swanctl.conf:15: connections.hq.fragmentation",
        "swanctl.conf:21: connections.hq.local-2",
        "swanctl.conf:33: connections.hq.children.office.esp_proposals",
        "swanctl.conf:37: connections.hq.children.office.updown",
        "swanctl.conf:43: connections.hq.children.voice.remote_ts",
        "lab.conf:2: connections.lab",
        "lab.conf:10: connections.lab.children.bench",
        "lab.conf:14: connections.lab.children.snmp",
        "lab.conf:15: connections.lab.children.snmp.remote_ts",
        "lab.conf:16: connections.lab.children.snmp.esp_proposals",
        "lab.conf:17: connections.lab.children.snmp.start_action",
        "secrets.conf:6: secrets.eap-tech",
    ]
    why = {f"{Path(n.where.file).name}:{n.where.line}": n.why for n in got.notes}
    assert why["swanctl.conf:9"].endswith("RFC 8247 forbids MODP groups below 2048 bits")
    assert "templates (defaults) are not followed" in why["lab.conf:2"]
    assert "dynamic needs local_addrs" in why["lab.conf:14"]
    out = tmp_path / "pike.toml"
    out.write_text(got.text)
    checked = _pikectl("check-config", str(out))
    assert checked.returncode == 0, checked.stderr
    assert "2 connection(s): hq, lab" in checked.stdout


def _pki_dirs(base: Path) -> None:
    """x509/, x509ca/, private/ as swanctl keeps them: the gateway's cert and key, a
    second key that is not its, two CAs."""
    require(pki.pki_available(), "strongSwan's pki tool missing (strongswan-pki)")
    ca = pki.make_ca(base / "work")
    other = pki.make_ca(base / "work2", cn="other CA")
    gw = pki.issue(ca, "gw.example.net")
    stray = pki.issue(other, "stray.example.net")
    for sub in ("x509", "x509ca", "private"):
        (base / sub).mkdir()
    shutil.copy(gw.cert, base / "x509" / "gw.pem")
    shutil.copy(stray.key, base / "private" / "a-stray.key")  # sorted first: not taken
    shutil.copy(gw.key, base / "private" / "gw.key")
    shutil.copy(ca.cert, base / "x509ca" / "ca.pem")
    shutil.copy(other.cert, base / "x509ca" / "other.pem")


def test_gateway_fixture_with_certificates(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "gateway" / "swanctl.conf", tmp_path / "swanctl.conf")
    _pki_dirs(tmp_path)
    out = tmp_path / "pike.toml"
    run = _pikectl("import-swanctl", str(tmp_path / "swanctl.conf"), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert f"{out}: written, check-config OK" in run.stderr
    gw = tomllib.loads(out.read_text())["connections"]["branches"]
    assert gw["local"] == {
        "auth": "pubkey",
        "certs": [str(tmp_path / "x509" / "gw.pem")],
        "key": str(tmp_path / "private" / "gw.key"),
        "id": "gw.example.net",
    }
    assert gw["remote"] == {
        "auth": "pubkey",
        "id": "*.branches.example.net",
        "revocation": "strict",
        "cacerts": [str(tmp_path / "x509ca" / "ca.pem"), str(tmp_path / "x509ca" / "other.pem")],
    }
    said = run.stderr.splitlines()
    assert len(said) == 6, said  # 3 notes, the summary, the key-file warning, check-config OK
    assert "is a file, not a token" in said[4]
    assert [line.split(": ")[1] for line in said[:3]] == [
        "connections.branches.send_cert",
        "connections.branches.unique",
        "authorities",
    ]


def test_cli_output_mode_secrets_and_errors(tmp_path: Path) -> None:
    conf = FIXTURES / "branch" / "swanctl.conf"
    out = tmp_path / "pike.toml"
    run = _pikectl(
        "import-swanctl", str(conf), str(FIXTURES / "branch" / "secrets.conf"), "-o", str(out)
    )
    assert run.returncode == 0, run.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600
    for secret in ("46bd1e9a7c3f0b2d58e46a91c0f7d3b2", "lab psk", "not-for-pike"):
        assert secret not in run.stderr and secret not in run.stdout
    assert "imported 2 connection(s): hq, lab; 13 item(s) not carried over" in run.stderr
    to_stdout = _pikectl("import-swanctl", str(conf))
    assert to_stdout.returncode == 0 and "[connections.hq]" in to_stdout.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("connections {\n  hq {\n    version = 2\n")
    broken = _pikectl("import-swanctl", str(bad))
    assert broken.returncode == 1
    assert f"{bad}:2: section hq: '}}' missing" in broken.stderr
    with pytest.raises(SettingsError, match=r"bad.conf:1: unterminated quoted string"):
        bad.write_text('secrets { ike { secret = "open\n } }\n')
        import_swanctl(str(bad))


def test_ppk_is_carried_over(tmp_path: Path) -> None:
    """RFC 8784 PPKs: ``ppk_id``/``ppk_required`` and a ``ppk<suffix>`` secret become
    pike's keys and a ``[secrets.ppk...]`` entry, which pike's loader accepts."""
    conf = tmp_path / "swanctl.conf"
    conf.write_text(
        """connections {
  hq {
    remote_addrs = 192.0.2.2
    proposals = aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes256gcm16-prfsha384-x25519
    ppk_id = pike-ppk-1
    ppk_required = yes
    local { auth = psk
      id = branch.example.net }
    remote { auth = psk
      id = hq.example.net }
    children { lan { local_ts = 10.1.0.0/24
      remote_ts = 10.2.0.0/24
      esp_proposals = aes256gcm16-x25519-ke1_mlkem768 } }
  }
}
secrets {
  ike-hq { id-1 = branch.example.net
    id-2 = hq.example.net
    secret = 0x0102030405060708 }
  ppk-q { id = pike-ppk-1
    secret = 0x3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c }
}
"""
    )
    got = import_swanctl(str(conf), swanctl_dir=str(tmp_path))
    assert [n for n in got.notes if "ppk" in n.key.lower()] == [], got.notes
    data = tomllib.loads(got.text)
    hq = data["connections"]["hq"]
    assert hq["ppk_id"] == "pike-ppk-1" and hq["ppk_required"] is True
    assert hq["proposals"][0] == "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
    assert data["secrets"]["ppk-q"]["id"] == ["pike-ppk-1"]
    out = tmp_path / "pike.toml"
    out.write_text(got.text)
    check = _pikectl("check-config", str(out))
    assert check.returncode == 0, check.stdout + check.stderr


def test_connection_level_if_ids_are_carried_over(tmp_path: Path) -> None:
    """swanctl's connection-level ``if_id_in``/``if_id_out`` (every child's default)
    become the same keys of the pike connection, which children inherit."""
    conf = tmp_path / "swanctl.conf"
    conf.write_text(
        """connections {
  hq {
    remote_addrs = 192.0.2.2
    proposals = aes256gcm16-prfsha384-x25519
    if_id_in = 7
    if_id_out = 7
    local { auth = psk
      id = branch.example.net }
    remote { auth = psk
      id = hq.example.net }
    children { lan { local_ts = 0.0.0.0/0
      remote_ts = 0.0.0.0/0
      esp_proposals = aes256gcm16 } }
  }
}
secrets { ike-hq { id-1 = branch.example.net
    id-2 = hq.example.net
    secret = 0x0102030405060708 } }
"""
    )
    got = import_swanctl(str(conf), swanctl_dir=str(tmp_path))
    assert [n for n in got.notes if "if_id" in n.key] == [], got.notes
    hq = tomllib.loads(got.text)["connections"]["hq"]
    assert (hq["if_id_in"], hq["if_id_out"]) == (7, 7)
    out = tmp_path / "pike.toml"
    out.write_text(got.text)
    check = _pikectl("check-config", str(out))
    assert check.returncode == 0, check.stdout + check.stderr
