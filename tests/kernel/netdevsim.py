"""A netdevsim NIC (CONFIG_NETDEVSIM) in a namespace of ours, for the offload tests.

Writing ``ID PORTS`` to /sys/bus/netdevsim/new_device creates the NIC in the writer's
network namespace, so the write runs inside the test's namespace; debugfs lists the ESP SAs
the driver holds. Only pike's UML kernel has netdevsim (``require_pike_kernel``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kernel.conftest import require_pike_kernel
from kernel.kernel_netns import ip

NSIM_BUS = Path("/sys/bus/netdevsim")
DEBUGFS = Path("/sys/kernel/debug")
_ids = itertools.count(os.getpid() * 100)  # device IDs unique on this machine


@dataclass(frozen=True)
class NsimPort:
    dev: str  # its interface name in the namespace
    ipsec: Path  # the driver's debugfs SA list

    def sas(self) -> dict[int, dict[str, str]]:
        """The driver's SAs by SPI: dir (tx/rx), ipaddr, key, salt (drivers/net/netdevsim/
        ipsec.c prints key and salt as host-order 32-bit words: see ``words``)."""
        out: dict[int, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in self.ipsec.read_text().splitlines():
            if m := re.match(r"sa\[\d+\] (tx|rx) ipaddr=(\S+)", line):
                current = {"dir": m[1], "ipaddr": m[2]}
            elif m := re.match(r"sa\[\d+\]\s+spi=0x([0-9a-f]+) proto=\S+ salt=0x([0-9a-f]+)", line):
                current["salt"] = m[2]
                out[int(m[1], 16)] = current
            elif m := re.match(r"sa\[\d+\]\s+key=0x(.*)$", line):
                current["key"] = m[1]
        return out


def words(key: bytes) -> str:
    """How netdevsim prints key bytes: 32-bit words in host order."""
    return " ".join(f"{w:08x}" for w in struct.unpack(f"={len(key) // 4}I", key))


def _mount_debugfs() -> None:
    if not (DEBUGFS / "netdevsim").exists() and os.environ.get("PIKE_IN_GUEST"):
        # the guest is ours to change; on a host, debugfs is the admin's business
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(DEBUGFS)], check=False)


@contextlib.contextmanager
def netdevsim_port(ns: str) -> Iterator[NsimPort]:
    """A one-port netdevsim NIC in ``ns``, deleted afterwards."""
    require_pike_kernel(NSIM_BUS.is_dir(), "netdevsim (CONFIG_NETDEVSIM)")
    dev_id = next(_ids)
    before = _links(ns)
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            f"echo {dev_id} 1 >{NSIM_BUS}/new_device",
        ],
        check=True,
    )
    try:
        devs = sorted(_links(ns) - before)
        assert len(devs) == 1, devs
        _mount_debugfs()
        ipsec = DEBUGFS / f"netdevsim/netdevsim{dev_id}/ports/0/ipsec"
        assert ipsec.exists(), f"{ipsec} missing (debugfs mounted?)"
        yield NsimPort(devs[0], ipsec)
    finally:
        (NSIM_BUS / "del_device").write_text(f"{dev_id}\n")


def _links(ns: str) -> set[str]:
    lines = ip("-n", ns, "-o", "link", "show").splitlines()
    return {line.split(":")[1].strip().split("@")[0] for line in lines}
