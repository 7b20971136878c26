"""Configured outer addresses (``local_addrs``/``remote_addrs``) against real ones."""

from __future__ import annotations

import functools
import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IpAddress:
    """``ipaddress.ip_address``, cached: every handshake parses the same few addresses
    several times (NAT detection, selectors, the connection lookup); the values are
    immutable, and the cache is bounded (peers choose their addresses)."""
    return ipaddress.ip_address(text)


def addr_in(addr: str, configured: tuple[str, ...]) -> bool:
    """``addr`` is one of ``configured`` (addresses, subnets, or ``%any``)."""
    if "%any" in configured:
        return True
    ip = ipaddress.ip_address(addr)
    for c in configured:
        try:
            if ip in ipaddress.ip_network(c, strict=False):
                return True
        except ValueError:
            continue
    return False


def is_name(text: str) -> bool:
    """A ``remote_addrs`` entry that is a DNS name (not an address, subnet or %any)."""
    if text == "%any":
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return True
    return False


def any_of(remote: str) -> str:
    """The wildcard address of ``remote``'s family (no local address configured)."""
    return "0.0.0.0" if ipaddress.ip_address(remote).version == 4 else "::"
