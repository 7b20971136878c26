"""The image tier (marker ``image``, slow): build the arm64 gateway image with
image/build.sh, inspect it without mounting, and boot it with image/boot-test.sh.

Needs root and qemu-system-aarch64 (Debian: qemu-system-arm qemu-utils); skipped loudly
without them (a failure under CI=true, like every prerequisite). ``PIKE_IMAGE=PATH``
tests an image built before instead of building one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from image.uboot_boot import EARLYCON, FIRMWARE_ARGS, raspi3b, to_kernel
from lib.prereq import require

pytestmark = pytest.mark.image
REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "image"


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def partitions(img: Path) -> list[dict[str, object]]:
    out = run(["sfdisk", "-J", str(img)], 60)
    assert out.returncode == 0, out.stderr
    parts: list[dict[str, object]] = json.loads(out.stdout)["partitiontable"]["partitions"]
    return parts


def test_sbom_lists_packages_and_the_venv(image: Path) -> None:
    sbom = image.with_suffix(".sbom.txt").read_text()
    names = {line.split()[1] for line in sbom.splitlines() if line.startswith("deb ")}
    assert {"systemd", "python3", "openssh-server", "iproute2", "raspi-firmware"} <= names
    assert not [n for n in names if "strongswan" in n or "libreswan" in n]
    pips = {line.split()[1].split("==")[0].lower() for line in sbom.splitlines() if "==" in line}
    assert {"pike", "cryptography", "pyudev", "python-pkcs11"} <= pips
    assert "pyroute2" not in pips  # pike speaks netlink itself (pike.kernel.netlink)


def test_disk_layout(image: Path) -> None:
    boot, slot_a, slot_b, data = partitions(image)
    assert boot["type"] == "c" and boot.get("bootable")
    assert slot_a["type"] == slot_b["type"] == data["type"] == "83"
    assert slot_a["size"] == slot_b["size"]  # RAUC writes either with the same bundle
    assert str(slot_a["node"]).endswith("2") and str(data["node"]).endswith("4")
    offset = int(str(boot["start"])) * 512
    listing = run(["mdir", "-b", "-i", f"{image}@@{offset}", "::"], 60)
    assert listing.returncode == 0, listing.stderr
    files = {Path(line).name for line in listing.stdout.split()}
    assert {"config.txt", "cmdline.txt", "vmlinuz", "initrd.img", "start4.elf"} <= files
    assert {"fixup4.dat", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-cm4-io.dtb"} <= files
    # U-Boot for the Pi, the A/B script (U-Boot on every board runs it), its counters.
    assert {"u-boot.bin", "boot.scr", "pikeboot.env"} <= files
    assert "uboot.env" not in files  # U-Boot for the Pi would load it as its environment
    config = run(["mtype", "-i", f"{image}@@{offset}", "::config.txt"], 60).stdout
    assert "arm_64bit=1" in config.splitlines()
    cmdline = run(["mtype", "-i", f"{image}@@{offset}", "::cmdline.txt"], 60).stdout
    assert "kernel=u-boot.bin" in config.splitlines()
    assert not [a for a in cmdline.split() if a.startswith(("root=", "rauc.slot="))]


def test_pi_u_boot_boots_slot_a(image: Path, tmp_path: Path) -> None:
    """The image's own Pi boot chain on qemu's raspi3b: U-Boot for the Pi from the FAT
    partition runs the built boot.scr with the built pikeboot.env, and starts slot A's
    kernel and initrd with its slot on the command line (after the firmware's arguments)."""
    boot = partitions(image)[0]
    fat = f"{image}@@{int(str(boot['start'])) * 512}"
    for name in ("u-boot.bin", "bcm2837-rpi-3-b.dtb"):
        got = run(["mcopy", "-o", "-i", fat, f"::{name}", str(tmp_path / name)], 60)
        assert got.returncode == 0, got.stderr
    overlay = tmp_path / "sd.qcow2"  # qemu's SD card: a power of two, the image untouched
    made = run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image),
                str(overlay), "8G"], 60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    log = tmp_path / "raspi3b.log"
    argv = raspi3b(tmp_path / "u-boot.bin", tmp_path / "bcm2837-rpi-3-b.dtb",
                   f"file={overlay},format=qcow2", log)  # fmt: skip
    line, cmdline = to_kernel(argv, log, timeout=600)
    assert line == "pike-boot: slot A (order A B, tries left A=2 B=3)"
    assert cmdline == (
        f"{FIRMWARE_ARGS} {EARLYCON} root=PARTUUID=70696b65-02 rootfstype=ext4 rootwait ro "
        "rauc.slot=A"
    )


def test_root_file_system(image: Path, tmp_path: Path) -> None:
    _, root, _, _ = partitions(image)
    part = tmp_path / "root.ext4"
    run(
        [
            "dd",
            f"if={image}",
            f"of={part}",
            "bs=512",
            f"skip={root['start']}",
            f"count={root['size']}",
            "conv=sparse",
            "status=none",
        ],
        600,
    )
    label = run(["e2label", str(part)], 60).stdout.strip()
    assert label == "pikeroot"

    def cat(path: str) -> str:
        return run(["debugfs", "-R", f"cat {path}", str(part)], 60).stdout

    assert "Type=notify" in cat("/etc/systemd/system/piked.service")
    assert "[daemon]" in cat("/etc/pike/pike.toml")
    assert "from pike.cli.piked import main" in cat("/opt/pike/bin/piked")
    for page in ("man8/piked.8", "man8/pikectl.8", "man5/pike.toml.5"):  # docs/man at HEAD
        committed = run(["git", "-C", str(REPO), "show", f"HEAD:docs/man/{page[5:]}"], 60)
        assert cat(f"/usr/share/man/{page}") == committed.stdout, page
    assert cat("/etc/rauc/keyring.pem").startswith("-----BEGIN CERTIFICATE-----")
    assert cat("/usr/lib/pike/firmware-version").startswith("0.")
    assert "RuntimeWatchdogSec=15s" in cat("/etc/systemd/system.conf.d/pike-watchdog.conf")
    wants = run(["debugfs", "-R", "ls /etc/systemd/system/multi-user.target.wants", str(part)], 60)
    assert "piked.service" in wants.stdout
    assert "ssh_host_" not in run(["debugfs", "-R", "ls /etc/ssh", str(part)], 60).stdout
    assert cat("/etc/shadow").startswith("root:!")  # locked: no root password
    # pike in the image is this commit's, not a wheel left in the download cache
    site = "/opt/pike/lib/python3.11/site-packages"
    for module in ("pike/cli/pikectl.py", "pike/daemon/runtime.py"):
        built = run(["git", "-C", str(REPO), "show", f"HEAD:firmware/{module}"], 60).stdout
        assert cat(f"{site}/{module}") == built, f"{module} in the image is not HEAD's"


def test_boots_under_qemu(image: Path) -> None:
    require(shutil.which("qemu-system-aarch64") is not None, "qemu-system-aarch64 missing")
    require(shutil.which("qemu-img") is not None, "qemu-img missing (package qemu-utils)")
    require(shutil.which("swtpm") is not None, "swtpm missing (the guest's TPM)")
    t0 = time.monotonic()
    proc = run(["bash", str(IMAGE_DIR / "boot-test.sh"), str(image)], timeout=1200)
    print(f"\nimage/boot-test.sh: exit {proc.returncode} in {time.monotonic() - t0:.0f}s")
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "PIKE-SELFTEST: PASS piked ready" in proc.stdout
    assert "PIKE-SELFTEST: PASS pikectl status answered" in proc.stdout
    assert "PIKE-SELFTEST: PASS metrics on :9447 answer" in proc.stdout
    assert "PIKE-SELFTEST: INFO board: board:" in proc.stdout
    # First boot made the gateway key in the TPM (swtpm on the host, a kernel TPM chip
    # in the guest through the vTPM proxy) and a CSR whose signature verifies.
    assert "PIKE-SELFTEST: PASS first boot made key gateway in the TPM" in proc.stdout
    assert "PIKE-SELFTEST: PASS first boot wrote /etc/pike/gateway.csr (CN=" in proc.stdout
    assert "PIKE-SELFTEST: PASS piked's user signs with the TPM key" in proc.stdout
    assert "firstboot: pike-firstboot: TPM /dev/tpmrm0: token pike" in proc.stdout
