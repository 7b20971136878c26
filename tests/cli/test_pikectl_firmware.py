"""``pikectl firmware``: argument and output handling against a fake ``rauc`` (and
``fw_printenv``) on PATH. The fakes record their argv and answer with what RAUC 1.8
prints (its JSON status layout; the refusal text of a bundle signed by a stranger is the
one the real ``rauc info`` gives for it). The real RAUC runs in the image tier's A/B proof
(tests/image/test_image_update.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pike.cli import pikectl
from pike.metrics import firmware as image

# `rauc status --detailed --output-format=json` after `rauc install` of the next build
# from slot A (RAUC 1.8's layout; slot B primary, one try).
STATUS = {
    "compatible": "pike-gateway-arm64",
    "variant": None,
    "booted": "A",
    "boot_primary": "rootfs.1",
    "slots": [
        {
            "rootfs.0": {
                "class": "rootfs",
                "device": "/dev/disk/by-partuuid/70696b65-02",
                "type": "ext4",
                "bootname": "A",
                "state": "booted",
                "parent": None,
                "mountpoint": "/",
                "boot_status": "good",
            }
        },
        {
            "rootfs.1": {
                "class": "rootfs",
                "device": "/dev/disk/by-partuuid/70696b65-03",
                "type": "ext4",
                "bootname": "B",
                "state": "inactive",
                "parent": None,
                "mountpoint": None,
                "boot_status": "good",
                "slot_status": {
                    "bundle": {"compatible": "pike-gateway-arm64", "version": "0.2.0+gnext"},
                    "installed": {"timestamp": "2026-12-07T11:02:03Z", "count": 1},
                    "activated": {"timestamp": "2026-12-07T11:02:04Z", "count": 1},
                    "status": "ok",
                },
            }
        },
    ],
}
SIGNATURE_ERROR = "signature verification failed: Verify error: self-signed certificate"

FAKE = """#!{python}
import json, os, sys
from pathlib import Path
d = Path({dir!r})
with open(d / "calls", "a") as f:
    f.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\\n")
mode = (d / "mode").read_text().strip() if (d / "mode").exists() else "ok"
cmd = sys.argv[1:]
if Path(sys.argv[0]).name == "fw_printenv":
    print("BOOT_ORDER=B A")
    print("BOOT_A_LEFT=3")
    print("BOOT_B_LEFT=1")
elif cmd[:1] == ["status"] and "mark-good" in cmd:
    print("rauc status: marked slot rootfs.0 as good")
elif cmd[:1] == ["status"]:
    if mode == "status-fails":
        print("Failed to obtain status: no D-Bus service", file=sys.stderr)
        sys.exit(1)
    print((d / "status.json").read_text())
elif cmd[:1] == ["install"]:
    for p, what in ((0, "Installing"), (0, "Determining slot states"), (20, "Checking bundle")):
        print(f"{{p:3d}}% {{what}}", flush=True)
    if mode == "badsig":
        print("LastError: " + {sig!r}, flush=True)
        print("Installing `" + cmd[1] + "` failed", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "incompatible":
        print("LastError: Compatible mismatch: Expected 'pike-gateway-arm64' but bundle "
              "manifest has 'other'", flush=True)
        print("Installing `" + cmd[1] + "` failed", file=sys.stderr, flush=True)
        sys.exit(1)
    print("100% Installing done.", flush=True)
    print("Installing `" + cmd[1] + "` succeeded")
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("rauc", "fw_printenv"):
        exe = bindir / name
        exe.write_text(FAKE.format(python=sys.executable, dir=str(tmp_path), sig=SIGNATURE_ERROR))
        exe.chmod(0o755)
    (tmp_path / "status.json").write_text(json.dumps(STATUS))
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    version = tmp_path / "firmware-version"
    version.write_text("0.1.0+gcurrent\n")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyAMA0 root=PARTUUID=70696b65-02 ro rauc.slot=A\n")
    monkeypatch.setattr(image, "VERSION_FILE", version)
    monkeypatch.setattr(image, "CMDLINE", cmdline)
    return tmp_path


def _calls(d: Path) -> list[list[str]]:
    return [json.loads(line) for line in (d / "calls").read_text().splitlines()]


def test_status_shows_both_slots_and_the_boot_tries(
    fake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pikectl.main(["firmware", "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "version:      0.1.0+gcurrent"
    assert out[1] == "booted slot:  A"
    assert (
        out[2]
        == "  this slot   A (/dev/disk/by-partuuid/70696b65-02): good, version 0.1.0+gcurrent, "
        "3 boot tries left"
    )
    assert out[3] == (
        "  other slot  B (/dev/disk/by-partuuid/70696b65-03): good, version 0.2.0+gnext, "
        "installed 2026-12-07T11:02:03Z, 1 boot tries left"
    )
    assert out[4] == "next boot:    B (boot order B A)"
    assert _calls(fake) == [
        ["rauc", "status", "--detailed", "--output-format=json"],
        ["fw_printenv", "BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"],
    ]


def test_status_json_after_a_failed_try(fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Back on A after B's one try: RAUC reports B bad and A primary again."""
    after = json.loads(json.dumps(STATUS))
    after["boot_primary"] = "rootfs.0"
    after["slots"][1]["rootfs.1"]["boot_status"] = "bad"
    (fake / "status.json").write_text(json.dumps(after))
    assert pikectl.main(["firmware", "status", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["booted"] == "A" and got["next_boot"] == "A"
    b = next(s for s in got["slots"] if s["slot"] == "B")
    assert (b["boot_status"], b["version"], b["booted"]) == ("bad", "0.2.0+gnext", False)


def test_status_when_rauc_fails(fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fake / "mode").write_text("status-fails")
    assert pikectl.main(["firmware", "status"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "pikectl: firmware: rauc status failed: Failed to obtain status: no D-Bus service\n"
    )


def test_install_streams_progress(fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pikectl.main(["firmware", "install", "/tmp/pike-0.2.0-arm64.raucb"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "  0% Installing",
        "  0% Determining slot states",
        " 20% Checking bundle",
        "100% Installing done.",
    ]
    assert out[-1].startswith("installed: the other slot boots next")
    assert _calls(fake) == [["rauc", "install", "/tmp/pike-0.2.0-arm64.raucb"]]


def test_install_refused_signature_is_one_line(
    fake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake / "mode").write_text("badsig")
    assert pikectl.main(["firmware", "install", "/tmp/stranger.raucb"]) == 1
    cap = capsys.readouterr()
    assert "LastError" not in cap.out and "failed" not in cap.out  # progress only
    assert cap.out.splitlines()[-1] == " 20% Checking bundle"
    assert cap.err.count("\n") == 1
    assert cap.err == (
        "pikectl: firmware: /tmp/stranger.raucb refused: its signature does not verify "
        "against this gateway's keyring (/etc/rauc/keyring.pem); nothing was written: "
        f"{SIGNATURE_ERROR}\n"
    )


def test_install_other_failure_names_rauc_reason(
    fake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake / "mode").write_text("incompatible")
    assert pikectl.main(["firmware", "install", "/tmp/other.raucb"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "pikectl: firmware: /tmp/other.raucb not installed: Compatible mismatch: Expected "
        "'pike-gateway-arm64' but bundle manifest has 'other'\n"
    )


def test_mark_good_marks_the_booted_slot(fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pikectl.main(["firmware", "mark-good"]) == 0
    assert capsys.readouterr().out == "rauc status: marked slot rootfs.0 as good\n"
    assert _calls(fake) == [["rauc", "status", "mark-good", "booted"]]


def test_without_rauc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pikectl.main(["firmware", "mark-good"]) == 1
    assert "rauc not found" in capsys.readouterr().err
