"""The A/B boot script (image/boot/boot.cmd) under the U-Boot builds the image uses: Debian's
u-boot-rpi (rpi_arm64, what the Raspberry Pi firmware starts from the image's FAT
partition) on qemu's ``raspi3b`` machine, and u-boot-qemu on qemu's ``virt`` machine.

The disk is small and made here (marker ``image``: the .debs come from the image build's
apt cache): the image's MBR id and partition numbers, a FAT partition with ``boot.scr``
compiled from the repository's boot.cmd and the counters file ``pikeboot.env``, and two
root slots holding Debian's arm64 kernel as ``/boot/vmlinuz``. Each boot runs until the
kernel prints its command line, then qemu is ended. The counters are read back and
changed with ``fw_printenv``/``fw_setenv`` (libubootenv, the tools RAUC's uboot backend
runs), in the steps RAUC takes: ``rauc install`` makes the new slot first with one try
(``boot-attempts-primary=1``), ``rauc status mark-good`` gives it three
(``boot-attempts=3``); RAUC calls a slot whose ``BOOT_x_LEFT`` is 0 bad.

On qemu's raspi3b there is no Pi firmware: ``-append`` stands in for the ``cmdline.txt``
the firmware puts into the device tree's /chosen/bootargs (with ``serial0`` resolved).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from image.uboot_boot import EARLYCON, FIRMWARE_ARGS, raspi3b, to_kernel
from lib.prereq import require, unavailable

pytestmark = pytest.mark.image
REPO = Path(__file__).resolve().parents[2]
BOOT_CMD = REPO / "image" / "boot" / "boot.cmd"
CACHE = Path(os.environ.get("PIKE_IMAGE_CACHE", "/var/cache/pike-image"))
QEMU_UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
MiB = 1 << 20
FAT_START, SLOT_SIZE = 1 * MiB, 48 * MiB


def _run(argv: list[str], timeout: float = 120) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert r.returncode == 0, f"{argv[0]}: {r.stderr}"
    return r.stdout


def _deb(pattern: str) -> Path:
    found = sorted((CACHE / "apt").glob(pattern))
    if not found:
        unavailable(f"{pattern} not in {CACHE}/apt (image/build.sh downloads it)")
    return found[-1]


def _extract(deb: Path, dest: Path, *members: str) -> list[Path]:
    """Some files (tar patterns) out of a .deb in one pass, without unpacking the rest."""
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    subprocess.run(
        ["tar", "-x", "-C", str(dest), "--wildcards", *members],
        stdin=tar.stdout,
        check=True,
        timeout=120,
    )
    assert tar.wait(timeout=120) == 0
    found = []
    for member in members:
        hits = sorted(dest.glob(member.lstrip("./")))
        assert hits, f"{member} not in {deb.name}"
        found.append(hits[-1])
    return found


class Disk:
    """The synthetic disk: MBR id 0x70696b65, 1 FAT (boot.scr, pikeboot.env), 2 slot A,
    3 slot B (the image's numbering, so the script's root=PARTUUID=70696b65-0N holds)."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path, self.work = path, work
        self.fwcfg = work / "fw_env.config"
        self.envfile = work / "pikeboot.env"
        self.fwcfg.write_text(f"{self.envfile} 0x0000 0x4000\n")

    def _fat(self) -> str:
        return f"{self.path}@@{FAT_START}"

    def env(self) -> dict[str, str]:
        _run(["mcopy", "-o", "-i", self._fat(), "::pikeboot.env", str(self.envfile)])
        out = _run(
            ["fw_printenv", "-c", str(self.fwcfg), "BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"]
        )
        return dict(line.split("=", 1) for line in out.splitlines())

    def setenv(self, **values: str) -> None:
        """What RAUC's uboot backend writes (fw_setenv), put back on the FAT partition."""
        self.env()
        script = self.work / "fw_setenv.script"
        script.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        _run(["fw_setenv", "-c", str(self.fwcfg), "-s", str(script)])
        _run(["mcopy", "-o", "-i", self._fat(), str(self.envfile), "::pikeboot.env"])


@pytest.fixture(scope="module")
def parts(image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """U-Boot for the Pi, the Pi 3 device tree and a root slot holding the kernel, from the
    image build's cache (``image``: the build fills it; the image itself is not booted)."""
    for tool in ("qemu-system-aarch64", "mkimage", "mkenvimage", "mformat", "mcopy", "mke2fs",
                 "sfdisk", "fw_printenv", "fw_setenv", "dpkg-deb"):  # fmt: skip
        require(shutil.which(tool) is not None, f"{tool} not installed")
    require(QEMU_UBOOT.exists(), f"{QEMU_UBOOT} missing (Debian: u-boot-qemu)")
    d = tmp_path_factory.mktemp("parts")
    kernel_deb = _deb("linux-image-*-arm64_*_arm64.deb")
    uboot_deb = _deb("u-boot-rpi_*_arm64.deb")
    slot = d / "slot"
    (slot / "boot").mkdir(parents=True)
    kernel, dtb = _extract(
        kernel_deb, d, "./boot/vmlinuz-*", "./usr/lib/linux-image-*/broadcom/bcm2837-rpi-3-b.dtb"
    )
    shutil.move(kernel, slot / "boot" / "vmlinuz")
    (slot / "boot" / "initrd.img").write_bytes(bytes(MiB))
    root = d / "root.ext4"
    _run(["mke2fs", "-q", "-t", "ext4", "-d", str(slot), str(root), f"{SLOT_SIZE // MiB}M"])
    return {
        "uboot_rpi": _extract(uboot_deb, d, "./usr/lib/u-boot/rpi_arm64/u-boot.bin")[0],
        "dtb": dtb,
        "root": root,
    }


@pytest.fixture
def disk(parts: dict[str, Path], tmp_path: Path) -> Disk:
    """As image/build.sh leaves it: boot.scr from boot.cmd, counters A B / 3 / 3."""
    root = parts["root"]
    _run(["mkimage", "-q", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none",
          "-n", "pike A/B boot", "-d", str(BOOT_CMD), str(tmp_path / "boot.scr")])  # fmt: skip
    (tmp_path / "env.txt").write_text("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n")
    _run(
        [
            "mkenvimage",
            "-s",
            "0x4000",
            "-o",
            str(tmp_path / "pikeboot.env"),
            str(tmp_path / "env.txt"),
        ]
    )
    fat = tmp_path / "boot.vfat"
    with fat.open("wb") as f:
        f.truncate(64 * MiB)
    _run(["mformat", "-i", str(fat), "-F", "-v", "PIKEBOOT", "::"])
    _run(
        ["mcopy", "-i", str(fat), str(tmp_path / "boot.scr"), str(tmp_path / "pikeboot.env"), "::"]
    )
    img = tmp_path / "disk.img"
    a_start = FAT_START + 64 * MiB
    b_start = a_start + SLOT_SIZE
    with img.open("wb") as f:
        f.truncate(256 * MiB)  # qemu's SD card wants a power of two
        for start, src in ((FAT_START, fat), (a_start, root), (b_start, root)):
            f.seek(start)
            f.write(src.read_bytes())
    table = (
        "label: dos\nlabel-id: 0x70696b65\nunit: sectors\n\n"
        f"start={FAT_START // 512}, size={64 * MiB // 512}, type=c, bootable\n"
        f"start={a_start // 512}, size={SLOT_SIZE // 512}, type=83\n"
        f"start={b_start // 512}, size={SLOT_SIZE // 512}, type=83\n"
    )
    subprocess.run(["sfdisk", "-q", str(img)], input=table, text=True, check=True, timeout=60)
    return Disk(img, tmp_path)


def boot(machine: str, disk: Disk, parts: dict[str, Path]) -> tuple[str, str]:
    """(the script's pike-boot line, the kernel's command line) of one boot."""
    log = disk.work / f"{machine}-{time.monotonic_ns()}.log"
    drive = f"file={disk.path},format=raw"
    if machine == "raspi3b":
        return to_kernel(raspi3b(parts["uboot_rpi"], parts["dtb"], drive, log), log)
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "1024",
            "-bios", str(QEMU_UBOOT), "-drive", f"if=none,id=disk,{drive}",
            "-device", "virtio-blk-pci,drive=disk", "-nic", "none",
            "-serial", f"file:{log}"]  # fmt: skip
    return to_kernel(argv, log)


def test_pi_u_boot_tries_a_new_slot_once_then_falls_back(
    disk: Disk, parts: dict[str, Path]
) -> None:
    # rauc install into B: B first, one try.
    disk.setenv(BOOT_ORDER="B A", BOOT_B_LEFT="1")
    line, cmdline = boot("raspi3b", disk, parts)
    assert line == "pike-boot: slot B (order B A, tries left A=3 B=0)"
    assert cmdline == (
        f"{FIRMWARE_ARGS} {EARLYCON} root=PARTUUID=70696b65-03 rootfstype=ext4 rootwait ro "
        "rauc.slot=B"
    )
    assert disk.env() == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}
    # B never reached mark-good (it hung, or pike-mark-good rebooted): the next boot is A,
    # and B's spent try is what RAUC reads as bad.
    line, cmdline = boot("raspi3b", disk, parts)
    assert line == "pike-boot: slot A (order B A, tries left A=2 B=0)"
    assert cmdline.endswith("root=PARTUUID=70696b65-02 rootfstype=ext4 rootwait ro rauc.slot=A")
    assert disk.env()["BOOT_B_LEFT"] == "0"


def test_a_slot_marked_good_keeps_booting(disk: Disk, parts: dict[str, Path]) -> None:
    # B installed, its try booted, then rauc status mark-good on B: three tries again.
    disk.setenv(BOOT_ORDER="B A", BOOT_B_LEFT="3")
    # The same script on qemu's virt machine: no firmware bootargs there, its own console.
    line, cmdline = boot("virt", disk, parts)
    assert line == "pike-boot: slot B (order B A, tries left A=3 B=2)"
    assert cmdline == (
        "console=ttyAMA0 root=PARTUUID=70696b65-03 rootfstype=ext4 rootwait ro rauc.slot=B"
    )
    assert disk.env() == {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2"}
