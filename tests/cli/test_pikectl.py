"""pikectl text output (from literal SA values), check-config, exit codes; piked on a
bad config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from pike.cli import pikectl
from pike.cli.sa_text import algorithm_names, format_list_sas
from pike.daemon.sa_view import list_sas_json
from pike.policy.ipsec import SaCounters, SaSpec
from pike.sa.actions import ChildSaInfo, IkeSaInfo

EXAMPLE = (
    Path(__file__).parents[1] / "fixtures" / "issue2-example.toml"
).read_text()  # issue 2, as written
PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"


def _spec(dst: str, spi: int) -> SaSpec:
    return SaSpec(
        src=ip_address("192.0.2.1"),
        dst=ip_address(dst),
        spi=spi,
        reqid=1,
        mode="tunnel",
        encr_id=20,
        encr_key=b"k" * 20,
        encr_key_length=128,
        integ_id=0,
        integ_key=b"",
    )


# Engine-clock times in it (now = 100): IKE rekey, CHILD rekey and expiry.
SA = IkeSaInfo(
    name="hq",
    unique_id=1,
    state="ESTABLISHED",
    version=2,
    initiator=True,
    local=("192.0.2.1", 500),
    remote=("192.0.2.2", 500),
    local_id="branch1.example.net",
    remote_id="hq.example.net",
    spi_i=bytes.fromhex("8a3b1c2d3e4f5061"),
    spi_r=bytes.fromhex("4c1d2e3f40516273"),
    algorithms="aes128gcm16-prfsha256-x25519",
    established_at=88.0,
    nat_local=False,
    nat_remote=False,
    children=(
        ChildSaInfo(
            name="lan",
            unique_id=1,
            state="INSTALLED",
            mode="TUNNEL",
            protocol="ESP",
            spi_in=0xC1234567,
            spi_out=0xC7654321,
            local_ts=("10.1.0.0/24",),
            remote_ts=("10.2.0.0/24",),
            algorithms="aes128gcm16",
            inbound=_spec("192.0.2.1", 0xC1234567),
            outbound=_spec("192.0.2.2", 0xC7654321),
            installed_at=88.0,
            rekey_at=3400.0,
            expire_at=4048.0,
        ),
    ),
    rekey_at=14050.0,
)


def _counters(spec: SaSpec) -> SaCounters | None:
    return SaCounters(8400, 100) if spec.spi == 0xC1234567 else SaCounters(4200, 50)


FAILED = {("hq", "dmz"): ("TS_UNACCEPTABLE", 1_699_999_970.0), ("other", "x"): ("y", 0.0)}


def test_list_sas_text_like_swanctl() -> None:
    """One time unit (seconds, as swanctl), rekey/expiry times, failed children."""
    sas = list_sas_json([SA], _counters, 100.0, 1_700_000_000.0, FAILED)
    assert format_list_sas(sas) == "\n".join(
        [
            "hq: #1, ESTABLISHED, IKEv2, 8a3b1c2d3e4f5061_i* 4c1d2e3f40516273_r",
            "  local  'branch1.example.net' @ 192.0.2.1[500]",
            "  remote 'hq.example.net' @ 192.0.2.2[500]",
            "  AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
            "  established 12s ago, rekeying in 13950s",
            "  lan: #1, reqid 1, INSTALLED, TUNNEL, ESP:AES_GCM_16-128",
            "    installed 12s ago, rekeying in 3300s, expires in 3948s",
            "    in  c1234567,   8400 bytes,    100 packets",
            "    out c7654321,   4200 bytes,     50 packets",
            "    local  10.1.0.0/24",
            "    remote 10.2.0.0/24",
            "  dmz: FAILED, TS_UNACCEPTABLE, 30s ago",
        ]
    )


def test_list_sas_text_names_the_active_hub() -> None:
    (sa,) = list_sas_json([SA], _counters, 100.0, 1_700_000_000.0, FAILED)
    sa["hub"] = {"active": "192.0.2.2", "index": 0, "count": 2}  # as piked adds it
    text = format_list_sas([sa]).splitlines()
    assert text[2] == "  remote 'hq.example.net' @ 192.0.2.2[500] hub 1/2 (192.0.2.2)"


def test_list_sas_shows_mobike_and_the_peers_other_addresses() -> None:
    moving = replace(SA, mobike=True, peer_addrs=("203.0.113.2",), remote=("192.0.2.2", 4500))
    (sa,) = list_sas_json([moving], _counters, 100.0, 1_700_000_000.0, FAILED)
    assert (sa["mobike"], sa["peer_additional_addrs"]) == (True, ["203.0.113.2"])
    assert (sa["remote_addr"], sa["remote_port"]) == ("192.0.2.2", 4500)  # the current path
    text = format_list_sas([sa]).splitlines()
    assert text[2] == "  remote 'hq.example.net' @ 192.0.2.2[4500] [MOBIKE, also 203.0.113.2]"
    (plain,) = list_sas_json([SA], _counters, 100.0, 1_700_000_000.0, FAILED)
    assert plain["mobike"] is False and plain["peer_additional_addrs"] == []


def test_list_sas_json_fields() -> None:
    (sa,) = list_sas_json([SA], lambda spec: None, 100.0, 1_700_000_000.0, FAILED)
    assert sa["spi_i"] == "8a3b1c2d3e4f5061" and sa["spi_r"] == "4c1d2e3f40516273"
    # Unambiguous: how long ago, and when (Unix time).
    assert sa["established_ago_s"] == 12 and sa["established_at"] == 1_699_999_988.0
    assert "established" not in sa
    assert (sa["rekey_in_s"], sa["rekey_at"]) == (13950, 1_700_013_950.0)
    assert sa["reauth_in_s"] is None and sa["reauth_at"] is None
    assert sa["failed_children"] == [
        {
            "name": "dmz",
            "reason": "TS_UNACCEPTABLE",
            "failed_ago_s": 30,
            "failed_at": 1_699_999_970.0,
        }
    ]
    (c,) = sa["children"]
    assert (c["installed_ago_s"], c["installed_at"]) == (12, 1_699_999_988.0)
    assert (c["rekey_in_s"], c["expire_in_s"], c["expire_at"]) == (3300, 3948, 1_700_003_948.0)
    assert (c["spi_in"], c["spi_out"], c["state"], c["mode"]) == (
        "c1234567",
        "c7654321",
        "INSTALLED",
        "TUNNEL",
    )
    # The kernel could not tell: zeros, not an error.
    assert (c["bytes_in"], c["bytes_out"], c["packets_in"], c["packets_out"]) == (0, 0, 0, 0)
    json.dumps(sa)  # plain JSON all the way down


def test_algorithm_names() -> None:
    assert algorithm_names("aes256-sha256-modp3072") == "AES_CBC-256/HMAC_SHA2_256_128/MODP_3072"
    assert algorithm_names("chacha20poly1305-prfsha384-ecp384") == (
        "CHACHA20_POLY1305/PRF_HMAC_SHA2_384/ECP_384"
    )
    # RFC 9370 additional key exchanges, as swanctl --list-sas prints them
    assert algorithm_names("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024") == (
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024"
    )
    assert algorithm_names("aes256gcm16-prfsha384-mlkem1024") == (
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/ML_KEM_1024"
    )


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE)
    assert pikectl.main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK, 1 connection(s): hq\n"
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.replace('mode = "tunnel"', 'mode = "tunel"'))
    assert pikectl.main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"{bad}:16: connections.hq.children.lan.mode: 'tunel' is not one of tunnel, transport\n"
    )


def test_cannot_connect_names_the_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = str(tmp_path / "absent.sock")
    assert pikectl.main(["--socket", sock, "status"]) == 2
    assert capsys.readouterr().err == (
        f"pikectl: cannot reach piked at {sock}: No such file or directory\n"
    )


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        pikectl.main(["frobnicate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        pikectl.main([])
    assert info.value.code == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert pikectl.main(["--version"]) == 0
    assert re.fullmatch(r"pikectl \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_socket_from_options_anywhere_or_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--socket`` before or after the command; without it, the config's
    ``[daemon] control_socket`` (``--config``, before or after), else the default."""
    asked: list[str] = []

    def fake(sock: str, cmd: str, args: dict[str, object]) -> dict[str, object]:
        asked.append(sock)
        return {"ok": True, "result": []}

    monkeypatch.setattr(pikectl, "request", fake)
    cfg = tmp_path / "pike.toml"
    cfg.write_text('[daemon]\ncontrol_socket = "/run/x/from-config.sock"\n[connections]\n')
    for argv in (
        ["--socket", "/a.sock", "list-sas"],
        ["list-sas", "--socket", "/a.sock"],
        ["list-sas", "--config", str(cfg)],
        ["--config", str(cfg), "list-sas", "--json"],
        ["--config", str(cfg), "list-sas", "--socket", "/a.sock"],  # --socket wins
    ):
        assert pikectl.main(argv) == 0, argv
    assert asked == ["/a.sock", "/a.sock", *["/run/x/from-config.sock"] * 2, "/a.sock"]
    monkeypatch.setattr(pikectl, "DEFAULT_CONFIG", str(tmp_path / "absent.toml"))
    assert pikectl.main(["list-sas"]) == 0 and asked[-1] == "/run/pike/pike.sock"
    assert pikectl.main(["status", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    cfg.write_text("[daemon\n")
    assert pikectl.main(["status", "--config", str(cfg)]) == 2
    assert "give --socket" in capsys.readouterr().err


def test_check_config_defaults_to_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE)
    assert pikectl.main(["--config", str(good), "check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{good}: OK")


def test_piked_bad_config_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "pike.sock"
    cfg = tmp_path / "pike.toml"
    cfg.write_text(
        EXAMPLE.replace("/run/pike/pike.sock", str(sock)).replace("modp3072", "modp1024")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{cfg}:8: connections.hq.proposals[1]: ")
    assert PSK not in proc.stderr
    assert not sock.parent.exists()
    assert proc.stdout == ""


def test_piked_missing_config(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pike.cli.piked", "--config", str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr == f"{tmp_path / 'x.toml'}: cannot read: No such file or directory\n"


def test_piked_unparsable_key_exits_2_before_starting(tmp_path: Path) -> None:
    """A key file that exists but is not a key stops piked at start, not at IKE_AUTH."""
    sock = tmp_path / "run" / "pike.sock"
    (tmp_path / "gw.key").write_text("not a key\n")
    (tmp_path / "gw.crt").write_text("not a certificate\n")
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    text = EXAMPLE.replace("/run/pike/pike.sock", str(sock))
    text = text.replace(
        'local = { auth = "psk", id = "branch1.example.net" }',
        'local = { auth = "pubkey", id = "branch1.example.net", '
        'certs = ["gw.crt"], key = "gw.key" }',
    ).replace(
        'remote = { auth = "psk", id = "hq.example.net" }',
        'remote = { auth = "pubkey", id = "hq.example.net", cacerts = ["ca.crt"] }',
    )
    cfg = tmp_path / "pike.toml"
    cfg.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "pike.cli.piked", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        f"{cfg}:9: connections.hq.local.certs[0]: {tmp_path / 'gw.crt'}: not a PEM or DER "
        "certificate\n"
    ), proc.stderr
    assert not sock.parent.exists()


def test_rekey_targets_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rekey CONN[.CHILD]...``: one request per target (child only when given), the
    worst status wins, an unreachable daemon stops at once with 2."""
    sent: list[tuple[str, dict[str, object]]] = []

    def fake(sock: str, cmd: str, args: dict[str, object]) -> dict[str, object]:
        sent.append((cmd, args))
        if args["conn"] == "down":
            raise ConnectionRefusedError(111, "Connection refused")
        if args["conn"] == "bad":
            return {"ok": False, "error": "no connection named 'bad'"}
        return {"ok": True, "result": args}

    monkeypatch.setattr(pikectl, "request", fake)
    sock = str(tmp_path / "s")
    assert pikectl.main(["--socket", sock, "rekey", "hq", "hq.lan"]) == 0
    assert sent == [("rekey", {"conn": "hq"}), ("rekey", {"conn": "hq", "child": "lan"})]
    assert capsys.readouterr().out == "rekeying hq\nrekeying hq.lan\n"
    assert pikectl.main(["--socket", sock, "rekey", "bad", "hq"]) == 1
    assert "pikectl: rekey: no connection named 'bad'" in capsys.readouterr().err
    sent.clear()
    assert pikectl.main(["--socket", sock, "rekey", "down", "hq"]) == 2
    assert sent == [("rekey", {"conn": "down"})]


def test_piked_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pike.cli.piked", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and re.fullmatch(r"piked \d+\.\d+\.\d+\S*\n", proc.stdout)


def test_a_daemon_command_imports_only_what_it_needs(tmp_path: Path) -> None:
    """pikectl status/list-sas cost what they import (~40 ms a call): no cryptography,
    asyncio, board detection, config loader or engine (swanctl answers in ~15 ms)."""
    code = (
        "import sys\n"
        "from pike.cli import pikectl\n"
        "for argv in (['status'], ['list-sas', '--json'], ['--version']):\n"
        f"    pikectl.main(['--socket', {str(tmp_path / 'absent.sock')!r}, *argv])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    loaded = set(out.stdout.split())
    heavy = {"cryptography", "asyncio", "prometheus_client", "pyroute2", "tomllib"}
    heavy |= {"pike.board", "pike.policy.loader", "pike.policy.config", "pike.ikev2", "pike.wire"}
    assert not heavy & loaded, heavy & loaded
