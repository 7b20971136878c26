"""Two namespaces joined by a veth, each with pike's XFRM backend: the ends of a tunnel.

PREFIX<tag>a<n>  10.1.0.1 (lo) --- 192.0.2.1 [veth] 192.0.2.2 --- 10.2.0.1 (lo)  <tag>b<n>
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address

from kernel.kernel_netns import PREFIX, Namespaces, ip, ip_batch, xfrm_dump
from pike.crypto.ids import EncrId, IntegId
from pike.kernel.xfrm import XfrmKernel
from pike.policy.ipsec import NO_MARK, Mark, SaSpec
from pike.policy.ts import IPAddress, TrafficSelector

A, B = ip_address("192.0.2.1"), ip_address("192.0.2.2")
ANY = TrafficSelector.from_cidr("0.0.0.0/0")
_n = itertools.count()  # namespaces live as long as the module: new names per test


@dataclass
class Ends:
    a: str
    b: str
    ka: XfrmKernel
    kb: XfrmKernel


def joined(namespaces: Namespaces, tag: str) -> tuple[str, str, str, str]:
    """Namespaces a and b joined by a veth, not yet addressed: a, b and the veth's ends."""
    n = next(_n)
    a, b = namespaces.create(f"{tag}a{n}"), namespaces.create(f"{tag}b{n}")
    va, vb = PREFIX + f"{tag}va", PREFIX + f"{tag}vb"
    ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
    return a, b, va, vb


def addressed(ns: str, dev: str, me: int, *more: str) -> None:
    """192.0.2.<me>/24 on the veth end, 10.<me>.0.1 on lo, then ``more``: one exec."""
    ip_batch(
        ns,
        f"addr add 192.0.2.{me}/24 dev {dev}",
        f"link set {dev} up",
        f"addr add 10.{me}.0.1/32 dev lo",
        *more,
    )


@contextmanager
def xfrm_ends(a: str, b: str) -> Iterator[Ends]:
    """An XfrmKernel in a and in b; on leaving, what they installed is flushed and nothing
    (marked, with an if_id or plain) is left in either's SAD or SPD."""
    with XfrmKernel(a) as ka, XfrmKernel(b) as kb:
        yield Ends(a, b, ka, kb)
        ka.flush_installed()
        kb.flush_installed()
        for ns in (a, b):
            assert xfrm_dump(ns).strip() == "", ns


def gcm_sa(
    src: IPAddress,
    dst: IPAddress,
    spi: int,
    key: bytes,
    *,
    reqid: int = 1,
    mark: Mark = NO_MARK,
    if_id: int = 0,
) -> SaSpec:
    """A tunnel-mode AES-GCM-16 (128-bit key) SA, marked or with an if_id."""
    return SaSpec(
        src=src,
        dst=dst,
        spi=spi,
        reqid=reqid,
        mode="tunnel",
        encr_id=EncrId.AES_GCM_16,
        encr_key=key,
        encr_key_length=128,
        integ_id=IntegId.NONE,
        integ_key=b"",
        if_id=if_id,
        mark=mark,
    )


def random_key() -> bytes:
    """An AES-GCM-16 128-bit key with its 4-octet salt."""
    return os.urandom(20)
