"""Which firmware build runs, and from which A/B slot: for ``pike_firmware_info``.

The image writes its build name to ``/usr/lib/pike/firmware-version`` and U-Boot's A/B boot
script puts ``rauc.slot=A|B`` on the kernel command line (the slot RAUC and
``pike-mark-good`` act on). Read once at start: neither changes while the system runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERSION_FILE = Path("/usr/lib/pike/firmware-version")
CMDLINE = Path("/proc/cmdline")
_SLOT = re.compile(r"(?:^|\s)rauc\.slot=(\S+)")


@dataclass(frozen=True)
class Firmware:
    version: str
    slot: str  # "A", "B", or "" when not booted through the A/B boot script


def read_firmware(version_file: Path = VERSION_FILE, cmdline: Path = CMDLINE) -> Firmware | None:
    """None where pike is not the firmware image (a package install, a test host)."""
    try:
        version = version_file.read_text().strip()
    except OSError:
        return None
    if not version:
        return None
    try:
        m = _SLOT.search(cmdline.read_text())
    except OSError:
        m = None
    # Bounded label values: a short slot name, else none.
    slot = m.group(1) if m and re.fullmatch(r"[A-Za-z0-9_]{1,8}", m.group(1)) else ""
    return Firmware(version[:64], slot)
