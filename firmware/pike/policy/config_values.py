"""Parsers for the scalar spellings used in ``pike.toml`` (strongSwan's where it has one).

Each raises ``ValueError`` with a message fit to follow ``FILE:LINE: KEY: ``; none of them
ever echoes a secret.
"""

from __future__ import annotations

import ipaddress
import re

from pike.policy.ts import TrafficSelector

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)\s*$", re.IGNORECASE)
_SIZE_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}  # strongSwan's: binary
MAX_SIZE = (1 << 64) - 2  # below the kernel's XFRM_INF ("no limit")
_PROTOCOLS = {
    "any": 0,
    "%any": 0,
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
}
_TS = re.compile(r"^\s*([^\[\]\s]+)\s*(?:\[([^\]]*)\])?\s*$")


def parse_duration(value: object) -> float:
    """``30``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
        raise ValueError(f"{value!r} is not a duration (like 30s, 5m, 1h, 1d)")
    raise ValueError(f"expected a duration like 30s, 5m, 1h, not {type(value).__name__}")


def parse_size(value: object) -> int:
    """A byte or packet count: ``1000``, ``"500k"``, ``"10M"``, ``"2G"`` (1024 multiples,
    as strongSwan reads them); 0 means no limit."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        n = int(m.group(1)) * _SIZE_UNIT[m.group(2).lower()]
    else:
        raise ValueError(f"{value!r} is not a count like 1000, 500k, 10M or 2G")
    if not 0 <= n <= MAX_SIZE:
        raise ValueError(f"{value!r} is out of range 0..{MAX_SIZE}")
    return n


def _protocol(text: str) -> int:
    text = text.strip().lower()
    if text in _PROTOCOLS:
        return _PROTOCOLS[text]
    if text.isdigit() and int(text) <= 255:
        return int(text)
    raise ValueError(f"unknown protocol {text!r} (tcp, udp, icmp, a number 0-255 or %any)")


def _ports(text: str) -> tuple[int, int]:
    text = text.strip()
    if text in ("", "%any", "any"):
        return 0, 65535
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise ValueError(f"port {text!r} is not a number or range like 1000-2000") from None
    if not 0 <= a <= b <= 65535:
        raise ValueError(f"port range {text!r} is outside 0-65535")
    return a, b


def parse_ts(text: str) -> TrafficSelector:
    """``10.1.0.0/24``, ``10.1.0.5``, ``10.1.0.0/24[udp/53]``, ``::/0[tcp/1000-2000]``."""
    m = _TS.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a traffic selector like 10.1.0.0/24[udp/53]")
    addr, spec = m.group(1), m.group(2)
    try:
        net = ipaddress.ip_network(addr, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(addr, strict=False)
        except ValueError:
            raise ValueError(f"{addr!r} is not an address or subnet") from None
        raise ValueError(f"{addr} has host bits set (did you mean {loose}?)") from None
    proto, lo, hi = 0, 0, 65535
    if spec is not None:
        p, sep, ports = spec.partition("/")
        proto = _protocol(p)
        if sep:
            lo, hi = _ports(ports)
            if (lo, hi) != (0, 65535) and proto not in (6, 17, 132, 1, 58):
                raise ValueError(f"ports need a protocol with ports (tcp, udp, sctp): {text!r}")
    return TrafficSelector(net.network_address, net.broadcast_address, proto, lo, hi)


def _b64digit(c: str) -> int:
    # strongSwan's alphabet accepts both the standard and the URL-safe characters.
    if "A" <= c <= "Z":
        return ord(c) - ord("A")
    if "a" <= c <= "z":
        return ord(c) - ord("a") + 26
    if "0" <= c <= "9":
        return ord(c) - ord("0") + 52
    if c in "+-":
        return 62
    if c in "/_":
        return 63
    return 64  # '=' padding, or anything else


def strongswan_base64(text: str) -> bytes:
    """Base64 exactly as strongSwan's chunk_from_base64() reads a ``0s`` secret.

    It is lenient: groups of four characters, a partial last group ignored, '=' padding
    shortening the output. Head offices copy ``0s`` secrets from swanctl.conf, so pike must
    derive the same bytes from the same text, valid base64 or not.
    """
    out = bytearray()
    digits = [0, 0, 0, 0]
    groups = len(text) // 4
    for i in range(groups):
        digits = [_b64digit(c) for c in text[4 * i : 4 * i + 4]]
        out.append(((digits[0] << 2) | (digits[1] >> 4)) & 0xFF)
        out.append(((digits[1] << 4) | (digits[2] >> 2)) & 0xFF)
        out.append(((digits[2] << 6) | digits[3]) & 0xFF)
    if groups and digits[2] == 64:
        del out[-2:]
    elif groups and digits[3] == 64:
        del out[-1:]
    return bytes(out)


def decode_secret(text: str) -> bytes:
    """strongSwan encodings: ``0x...`` hex (when it is hex), ``0s...`` base64 (decoded the way
    strongSwan does, so both ends derive the same key from the same text); anything else is
    the literal UTF-8 text."""
    if text.startswith(("0x", "0X")):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    elif text.startswith("0s"):
        return strongswan_base64(text[2:])
    return text.encode("utf-8")
