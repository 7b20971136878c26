"""NIC ESP offload against a real driver (issue 19): netdevsim, the kernel's simulated NIC,
whose ipsec code takes crypto offload for ``rfc4106(gcm(aes))`` and lists the SAs it holds
in debugfs. pike's XFRM backend installs SAs with XFRMA_OFFLOAD_DEV on it; the driver's
list, ``ip -s xfrm state`` and ``query_sa().offload`` (what list-sas shows) must agree.

Kernel tier, and only pike's UML kernel has netdevsim (Debian's linux.uml skips loudly).
6.1's netdevsim cannot transmit to another namespace, so this proves the control path
(the SA the kernel and the driver accept), not ESP packets through the NIC.

    pkk<pid>-nsim:  eth (netdevsim, 192.0.2.1/24)   v0 (veth, 198.51.100.1/24)
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest
from kernel_netns import Namespaces, ip, ip_batch

from conftest import require_pike_kernel
from pike.board.offload import packet_offload_unsupported
from pike.crypto.ids import EncrId, IntegId
from pike.kernel.interface import KernelError
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import KernelCaps, Offload, SaSpec

pytestmark = pytest.mark.kernel

NSIM_BUS = Path("/sys/bus/netdevsim")
DEBUGFS = Path("/sys/kernel/debug")
LOCAL = ip_address("192.0.2.1")
PEER = ip_address("192.0.2.2")
VETH_LOCAL = ip_address("198.51.100.1")
VETH_PEER = ip_address("198.51.100.2")
GCM128_KEY = bytes(range(1, 21))  # 16-byte AES key + 4-byte salt
CHACHA_KEY = bytes(range(1, 37))  # 32-byte key + 4-byte salt


@dataclass
class Nsim:
    ns: str
    dev: str  # the netdevsim port's interface name in ns
    ipsec: Path  # its debugfs SA list
    kernel: XfrmKernel


def _mount_debugfs() -> None:
    if not (DEBUGFS / "netdevsim").exists() and os.environ.get("PIKE_IN_GUEST"):
        # the guest is ours to change; on a host, debugfs is the admin's business
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(DEBUGFS)], check=False)


@pytest.fixture
def nsim(esp_kernel: KernelCaps, namespaces: Namespaces) -> Iterator[Nsim]:
    require_pike_kernel(NSIM_BUS.is_dir(), "netdevsim (CONFIG_NETDEVSIM)")
    ns = namespaces.create(f"nsim{len(namespaces.names)}")
    dev_id = os.getpid() * 100 + len(namespaces.names)  # unique on this machine
    # written from inside ns, so the port is born there (netdevsim uses the writer's netns)
    subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", f"echo {dev_id} 1 >{NSIM_BUS}/new_device"],
        check=True,
    )
    try:
        links = ip("-n", ns, "-o", "link", "show").splitlines()
        # the only Ethernet device there (built-in VTI/ip6tnl add their fallback devices)
        devs = [line.split(":")[1].strip() for line in links if "link/ether" in line]
        assert len(devs) == 1, links
        ip_batch(
            ns,
            f"addr add {LOCAL}/24 dev {devs[0]}",
            f"link set {devs[0]} up",
            "link add v0 type veth peer name v1",
            f"addr add {VETH_LOCAL}/24 dev v0",
            "link set v0 up",
            "link set v1 up",
        )
        _mount_debugfs()
        ipsec = DEBUGFS / f"netdevsim/netdevsim{dev_id}/ports/0/ipsec"
        assert ipsec.exists(), f"{ipsec} missing (debugfs mounted?)"
        with XfrmKernel(ns) as kernel:
            yield Nsim(ns, devs[0], ipsec, kernel)
            kernel.flush_installed()
    finally:
        (NSIM_BUS / "del_device").write_text(f"{dev_id}\n")


def sa(
    spi: int, offload: Offload, *, inbound: bool = False, veth: bool = False, **kw: object
) -> SaSpec:
    local, peer = (VETH_LOCAL, VETH_PEER) if veth else (LOCAL, PEER)
    src, dst = (peer, local) if inbound else (local, peer)
    fields: dict[str, object] = dict(
        src=src,
        dst=dst,
        spi=spi,
        reqid=7,
        mode="tunnel",
        encr_id=EncrId.AES_GCM_16,
        encr_key=GCM128_KEY,
        encr_key_length=128,
        integ_id=IntegId.NONE,
        integ_key=b"",
        inbound=inbound,
        offload=offload,
    )
    fields.update(kw)
    return SaSpec(**fields)  # type: ignore[arg-type]


def driver_sas(n: Nsim) -> dict[int, dict[str, str]]:
    """netdevsim's debugfs list by SPI: dir (tx/rx), ipaddr, key, salt (drivers/net/
    netdevsim/ipsec.c prints the key and salt as host-order 32-bit words)."""
    out: dict[int, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in n.ipsec.read_text().splitlines():
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


def xfrm_state(n: Nsim) -> dict[int, str]:
    """``ip -s xfrm state`` of the namespace, one text block per SPI."""
    text = ip("-n", n.ns, "-s", "xfrm", "state")
    blocks = re.split(r"\n(?=src )", text)
    return {
        int(m[1], 16): block
        for block in blocks
        if (m := re.search(r"spi 0x([0-9a-f]+)", block)) is not None
    }


def test_crypto_offload_in_and_out_is_taken_by_the_driver(nsim: Nsim) -> None:
    out, inb = sa(0x1001, "crypto"), sa(0x1002, "crypto", inbound=True)
    nsim.kernel.add_sa(out)
    nsim.kernel.add_sa(inb)
    listed = driver_sas(nsim)
    assert listed[out.spi] == {
        "dir": "tx",
        "ipaddr": str(PEER),
        "salt": words(GCM128_KEY[16:]),
        "key": words(GCM128_KEY[:16]),
    }, nsim.ipsec.read_text()
    assert listed[inb.spi]["dir"] == "rx" and listed[inb.spi]["ipaddr"] == str(LOCAL)
    assert listed[inb.spi]["key"] == words(GCM128_KEY[:16])
    state = xfrm_state(nsim)
    assert f"crypto offload parameters: dev {nsim.dev} dir out" in state[out.spi], state
    assert f"crypto offload parameters: dev {nsim.dev} dir in" in state[inb.spi], state
    for s in (out, inb):  # what list-sas and the metrics report
        assert nsim.kernel.query_sa(s.dst, s.spi).offload == "crypto"
    nsim.kernel.del_sa(out.dst, out.spi)
    assert out.spi not in driver_sas(nsim)  # the driver lets go of a deleted SA


def test_auto_chooses_crypto_on_netdevsim_and_software_on_veth(nsim: Nsim) -> None:
    on_nic, on_veth = sa(0x2001, "auto"), sa(0x2002, "auto", veth=True)
    nic_in = sa(0x2003, "auto", inbound=True)
    for s in (on_nic, on_veth, nic_in):
        nsim.kernel.add_sa(s)
    used = {s.spi: nsim.kernel.query_sa(s.dst, s.spi).offload for s in (on_nic, on_veth, nic_in)}
    assert used == {on_nic.spi: "crypto", on_veth.spi: "no", nic_in.spi: "crypto"}
    assert set(driver_sas(nsim)) == {on_nic.spi, nic_in.spi}
    assert "offload" not in xfrm_state(nsim)[on_veth.spi]


def test_refused_algorithm_falls_back_under_auto_and_fails_under_crypto(nsim: Nsim) -> None:
    # netdevsim (like most NICs) offloads AES-GCM only; ChaCha20-Poly1305 it refuses.
    chacha = {"encr_id": EncrId.CHACHA20_POLY1305, "encr_key": CHACHA_KEY, "encr_key_length": 256}
    auto = sa(0x3001, "auto", **chacha)
    nsim.kernel.add_sa(auto)
    assert nsim.kernel.query_sa(auto.dst, auto.spi).offload == "no"
    assert "offload" not in xfrm_state(nsim)[auto.spi]
    strict = sa(0x3002, "crypto", **chacha)
    with pytest.raises(
        KernelError, match=rf"hw_offload = crypto: the kernel refused it on {nsim.dev}"
    ):
        nsim.kernel.add_sa(strict)
    assert strict.spi not in xfrm_state(nsim)  # nothing half-installed
    assert driver_sas(nsim) == {}


def test_packet_offload_only_where_the_kernel_has_it(nsim: Nsim) -> None:
    no_packet = packet_offload_unsupported()
    if no_packet is None:  # 6.2+: netdevsim has no packet offload, the kernel says so
        with pytest.raises(KernelError, match="hw_offload = packet: the kernel refused it"):
            nsim.kernel.add_sa(sa(0x4001, "packet"))
    else:  # 6.1 would take the flag and do crypto offload: refused up front, with the reason
        with pytest.raises(KernelError, match=r"packet offload needs Linux 6\.2 or later"):
            nsim.kernel.add_sa(sa(0x4001, "packet"))
    assert 0x4001 not in xfrm_state(nsim)
    auto = sa(0x4002, "auto")  # auto still ends up with what the NIC does
    nsim.kernel.add_sa(auto)
    assert nsim.kernel.query_sa(auto.dst, auto.spi).offload == "crypto"
