"""``pikectl firmware`` against the real RAUC (Debian's rauc 1.8 service and CLI) on this
host: a private D-Bus system bus, ``rauc service`` with two ext4 slot files, the uboot
backend's counters in an environment file that the real ``fw_printenv``/``fw_setenv``
read and write (a two-line wrapper adds ``-c`` for it), and the booted slot given with
``--override-boot-slot=A``. Installing a bundle needs dm-verity (not on this host), so the
install checked here is refused before that: signed by a stranger. The whole update runs
in the image tier's qemu proof."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.prereq import require
from pike.cli import pikectl
from pike.metrics import firmware as image

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/>
<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>
"""
SYSTEM_CONF = """[system]
compatible=pike-gateway-arm64
bootloader=uboot
boot-attempts-primary=1
boot-attempts=3
data-directory={d}/data
mountprefix={d}/mnt
bundle-formats=-plain

[keyring]
path={d}/trusted.pem

[slot.rootfs.0]
device={d}/A.img
type=ext4
bootname=A

[slot.rootfs.1]
device={d}/B.img
type=ext4
bootname=B
"""


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, f"{argv[0]}: {r.stderr}"


def _bundle(d: Path, name: str, signer: str, compatible: str) -> Path:
    src = d / f"{name}-in"
    src.mkdir()
    (src / "rootfs.ext4").write_bytes(os.urandom(200_000))  # more than squashfs's 4 KiB
    (src / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion=0.2.0+g{name}\n\n[bundle]\nformat=verity\n\n"
        "[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    out = d / f"{name}.raucb"
    _run(
        [
            "rauc",
            "bundle",
            f"--cert={d}/{signer}.pem",
            f"--key={d}/{signer}.key",
            str(src),
            str(out),
        ]
    )
    return out


@pytest.fixture(scope="module")
def rauc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    for tool in ("rauc", "dbus-daemon", "fw_printenv", "fw_setenv", "mkenvimage", "mke2fs",
                 "mksquashfs", "openssl"):  # fmt: skip
        require(shutil.which(tool) is not None, f"{tool} not installed")
    d = tmp_path_factory.mktemp("rauc")
    for who in ("trusted", "stranger"):
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650", "-subj", f"/CN={who}",
              "-keyout", f"{d}/{who}.key", "-out", f"{d}/{who}.pem"])  # fmt: skip
    for slot in ("A", "B"):
        with (d / f"{slot}.img").open("wb") as f:
            f.truncate(8 << 20)
        _run(["mke2fs", "-q", "-t", "ext4", str(d / f"{slot}.img")])
    (d / "data").mkdir()
    (d / "mnt").mkdir()
    (d / "system.conf").write_text(SYSTEM_CONF.format(d=d))
    (d / "fw_env.config").write_text(f"{d}/pikeboot.env 0x0000 0x4000\n")
    bindir = d / "bin"
    bindir.mkdir()
    for tool in ("fw_printenv", "fw_setenv"):  # RAUC runs them without -c
        wrapper = bindir / tool
        wrapper.write_text(f'#!/bin/sh\nexec {shutil.which(tool)} -c {d}/fw_env.config "$@"\n')
        wrapper.chmod(0o755)
    badsig = _bundle(d, "badsig", "stranger", "pike-gateway-arm64")
    sock = d / "bus"
    (d / "bus.conf").write_text(DBUS_CONF.format(sock=sock))
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
               DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={sock}")  # fmt: skip
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={d}/bus.conf", "--nofork", "--nopidfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    service = None
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        service = subprocess.Popen(
            ["rauc", f"--conf={d}/system.conf", "--override-boot-slot=A", "service"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(d / "service.log").open("w"),
        )
        # The service owns its bus name a moment after it starts (longer on a loaded
        # machine): the tests' first `rauc status` must not race it.
        for _ in range(600):
            probe = subprocess.run(["rauc", "status"], env=env, capture_output=True, check=False)
            if probe.returncode == 0 or service.poll() is not None:
                break
            time.sleep(0.05)
        assert service.poll() is None, (d / "service.log").read_text()
        yield {"dir": str(d), "PATH": env["PATH"], "DBUS_SYSTEM_BUS_ADDRESS": env[
            "DBUS_SYSTEM_BUS_ADDRESS"], "badsig": str(badsig)}  # fmt: skip
    finally:
        for proc in (service, bus):  # ours, by handle
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


@pytest.fixture
def on_gateway(rauc: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """pikectl with RAUC's bus and the counters' tools; the image's version file."""
    monkeypatch.setenv("PATH", rauc["PATH"])
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", rauc["DBUS_SYSTEM_BUS_ADDRESS"])
    version = tmp_path / "firmware-version"
    version.write_text("0.1.0+gcurrent\n")
    monkeypatch.setattr(image, "VERSION_FILE", version)
    monkeypatch.setattr(image, "CMDLINE", tmp_path / "no-cmdline")
    return Path(rauc["dir"])


def _counters(d: Path, **values: str) -> None:
    """The boot counters as the boot script left them (mkenvimage, as image/build.sh)."""
    (d / "env.txt").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    _run(["mkenvimage", "-s", "0x4000", "-o", str(d / "pikeboot.env"), str(d / "env.txt")])


def _counters_now() -> str:
    return subprocess.run(
        ["fw_printenv", "BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip


def test_status_after_a_failed_try(on_gateway: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # B was installed and got its one try, which never reached mark-good: back on A.
    _counters(on_gateway, BOOT_ORDER="B A", BOOT_A_LEFT="2", BOOT_B_LEFT="0")
    assert pikectl.main(["firmware", "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["version:      0.1.0+gcurrent", "booted slot:  A"]
    assert (
        out[2]
        == f"  this slot   A ({on_gateway}/A.img): good, version 0.1.0+gcurrent, 2 boot tries left"
    )
    assert out[3] == (
        f"  other slot  B ({on_gateway}/B.img): bad, nothing installed by RAUC, 0 boot tries left"
    )
    assert out[4] == "next boot:    A (boot order B A)"


def test_mark_good_gives_the_booted_slot_its_tries(
    on_gateway: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _counters(on_gateway, BOOT_ORDER="A B", BOOT_A_LEFT="0", BOOT_B_LEFT="3")
    assert pikectl.main(["firmware", "mark-good"]) == 0
    assert capsys.readouterr().out == "rauc status: marked slot rootfs.0 as good\n"
    got = subprocess.run(["fw_printenv", "BOOT_A_LEFT"], capture_output=True, text=True, check=True)
    assert got.stdout == "BOOT_A_LEFT=3\n"


def test_install_of_a_strangers_bundle_is_one_line(
    rauc: dict[str, str], on_gateway: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _counters(on_gateway, BOOT_ORDER="A B", BOOT_A_LEFT="3", BOOT_B_LEFT="3")
    slot_b = hashlib.sha256((on_gateway / "B.img").read_bytes()).hexdigest()
    assert pikectl.main(["firmware", "install", rauc["badsig"]]) == 1
    cap = capsys.readouterr()
    assert "  0% Installing" in cap.out.splitlines()  # RAUC's progress, as it came
    assert "LastError" not in cap.out
    assert cap.err.count("\n") == 1, cap.err
    assert cap.err.startswith(
        f"pikectl: firmware: {rauc['badsig']} refused: its signature does not verify against "
        "this gateway's keyring (/etc/rauc/keyring.pem); nothing was written: "
    )
    assert "signature verification failed" in cap.err
    assert hashlib.sha256((on_gateway / "B.img").read_bytes()).hexdigest() == slot_b
    assert _counters_now() == "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"  # not made next
