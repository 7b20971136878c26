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

import re
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import pytest

from kernel.kernel_netns import Namespaces, ip, ip_batch
from kernel.netdevsim import NsimPort, netdevsim_port, words
from pike.board.offload import packet_offload_unsupported
from pike.crypto.ids import EncrId, IntegId
from pike.kernel.interface import KernelError
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import KernelCaps, Offload, SaSpec

pytestmark = pytest.mark.kernel

LOCAL = ip_address("192.0.2.1")
PEER = ip_address("192.0.2.2")
VETH_LOCAL = ip_address("198.51.100.1")
VETH_PEER = ip_address("198.51.100.2")
GCM128_KEY = bytes(range(1, 21))  # 16-byte AES key + 4-byte salt
CHACHA_KEY = bytes(range(1, 37))  # 32-byte key + 4-byte salt


@dataclass
class Nsim:
    ns: str
    nic: NsimPort
    kernel: XfrmKernel

    @property
    def dev(self) -> str:
        return self.nic.dev


@pytest.fixture
def nsim(esp_kernel: KernelCaps, namespaces: Namespaces) -> Iterator[Nsim]:
    ns = namespaces.create(f"nsim{len(namespaces.names)}")
    with netdevsim_port(ns) as nic:
        ip_batch(
            ns,
            f"addr add {LOCAL}/24 dev {nic.dev}",
            f"link set {nic.dev} up",
            "link add v0 type veth peer name v1",
            f"addr add {VETH_LOCAL}/24 dev v0",
            "link set v0 up",
            "link set v1 up",
        )
        with XfrmKernel(ns) as kernel:
            yield Nsim(ns, nic, kernel)
            kernel.flush_installed()


def sa(
    spi: int,
    offload: Offload,
    *,
    inbound: bool = False,
    veth: bool = False,
    **kw: object,
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
    listed = nsim.nic.sas()
    assert listed[out.spi] == {
        "dir": "tx",
        "ipaddr": str(PEER),
        "salt": words(GCM128_KEY[16:]),
        "key": words(GCM128_KEY[:16]),
    }, nsim.nic.ipsec.read_text()
    assert listed[inb.spi]["dir"] == "rx" and listed[inb.spi]["ipaddr"] == str(LOCAL)
    assert listed[inb.spi]["key"] == words(GCM128_KEY[:16])
    state = xfrm_state(nsim)
    assert f"crypto offload parameters: dev {nsim.dev} dir out" in state[out.spi], state
    assert f"crypto offload parameters: dev {nsim.dev} dir in" in state[inb.spi], state
    for s in (out, inb):  # what list-sas and the metrics report
        assert nsim.kernel.query_sa(s.dst, s.spi).offload == "crypto"
    nsim.kernel.del_sa(out.dst, out.spi)
    assert out.spi not in nsim.nic.sas()  # the driver lets go of a deleted SA


def test_auto_chooses_crypto_on_netdevsim_and_software_on_veth(nsim: Nsim) -> None:
    on_nic, on_veth = sa(0x2001, "auto"), sa(0x2002, "auto", veth=True)
    nic_in = sa(0x2003, "auto", inbound=True)
    for s in (on_nic, on_veth, nic_in):
        nsim.kernel.add_sa(s)
    used = {s.spi: nsim.kernel.query_sa(s.dst, s.spi).offload for s in (on_nic, on_veth, nic_in)}
    assert used == {on_nic.spi: "crypto", on_veth.spi: "no", nic_in.spi: "crypto"}
    assert set(nsim.nic.sas()) == {on_nic.spi, nic_in.spi}
    assert "offload" not in xfrm_state(nsim)[on_veth.spi]


def test_refused_algorithm_falls_back_under_auto_and_fails_under_crypto(
    nsim: Nsim,
) -> None:
    # netdevsim (like most NICs) offloads AES-GCM only; ChaCha20-Poly1305 it refuses.
    chacha: dict[str, Any] = {
        "encr_id": EncrId.CHACHA20_POLY1305,
        "encr_key": CHACHA_KEY,
        "encr_key_length": 256,
    }
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
    assert nsim.nic.sas() == {}


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
