"""Boot U-Boot under qemu-system-aarch64 until the kernel it starts prints its command line
(tests/image/test_boot_script.py, test_image_build.py): the A/B boot script's choice and
what the kernel was given, without waiting for the system to come up."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

# The image's cmdline.txt (serial0, console=tty1 dropped) as the Pi firmware hands it to
# U-Boot in /chosen/bootargs on a Pi 3: its mini UART, where U-Boot and the kernel talk.
FIRMWARE_ARGS = "console=ttyS1,115200 fsck.repair=yes"
# Early console on that UART: the command line shows at once, not when its driver binds.
EARLYCON = "earlycon=uart8250,mmio32,0x3f215040"


def raspi3b(uboot: Path, dtb: Path, drive: str, log: Path) -> list[str]:
    """qemu's Pi 3 with U-Boot for the Pi as the firmware would start it; ``-append``
    stands in for the firmware's cmdline.txt. Serial 0 is the PL011, 1 the mini UART."""
    return ["qemu-system-aarch64", "-M", "raspi3b", "-kernel", str(uboot), "-dtb", str(dtb),
            "-append", f"{FIRMWARE_ARGS} {EARLYCON}", "-drive", f"if=sd,{drive}",
            "-serial", "null", "-serial", f"file:{log}"]  # fmt: skip


def to_kernel(argv: list[str], log: Path, timeout: float = 300) -> tuple[str, str]:
    """Run qemu until the kernel prints its command line, then end it (by its handle):
    (the boot script's ``pike-boot:`` line, the kernel's command line)."""
    argv = [*argv, "-display", "none", "-monitor", "none", "-no-reboot"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Kernel command line:" in text:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    chosen = re.search(r"^pike-boot: .*$", text, re.M)
    cmdline = re.search(r"Kernel command line: (.*)$", text, re.M)
    assert chosen and cmdline, f"{argv[2]} did not reach the kernel:\n{text[-3000:]}"
    return chosen.group(0), cmdline.group(1).strip()
