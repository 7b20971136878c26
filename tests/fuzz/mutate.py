"""Mutations that know the structure: payload lists, dataclass fields, bytes, TOML lines.

Everything draws from one ``random.Random``, so a run is reproduced by its seed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import struct
from typing import Any, TypeVar

T = TypeVar("T")

INTERESTING_INTS = (
    0,
    1,
    2,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0xFFFF,
    0x10000,
    2**31,
    2**32 - 1,
)
INTERESTING_ADDRS = (
    "0.0.0.0",
    "255.255.255.255",
    "10.1.0.255",
    "10.1.0.0",
    "::",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::1",
)


def mutate_bytes(rng: random.Random, data: bytes, max_extend: int = 64) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "byte", "u16", "u32", "cut", "extend", "splice", "empty"))
        if kind == "flip" and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind == "byte" and buf:
            buf[rng.randrange(len(buf))] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif kind == "u16" and len(buf) >= 2:
            struct.pack_into(
                "!H", buf, rng.randrange(len(buf) - 1), rng.choice(INTERESTING_INTS) & 0xFFFF
            )
        elif kind == "u32" and len(buf) >= 4:
            struct.pack_into(
                "!I", buf, rng.randrange(len(buf) - 3), rng.choice(INTERESTING_INTS) & 0xFFFFFFFF
            )
        elif kind == "cut":
            del buf[rng.randrange(len(buf) + 1) :]
        elif kind == "extend":
            buf += rng.randbytes(rng.randint(1, max_extend))
        elif kind == "splice" and buf:
            i = rng.randrange(len(buf))
            buf[i:i] = buf[rng.randrange(len(buf)) :][: rng.randint(1, 32)]
        elif kind == "empty":
            buf = bytearray()
    return bytes(buf)


def _mutate_value(rng: random.Random, value: Any, depth: int) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice((*INTERESTING_INTS, value + 1, value - 1, rng.getrandbits(16)))
    if isinstance(value, bytes):
        return mutate_bytes(rng, value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_address(rng.choice(INTERESTING_ADDRS))
    if isinstance(value, str):
        return value + rng.choice(("\n", "\x00", "x" * 300, "\u202e"))
    if isinstance(value, tuple):
        items = list(value)
        choice = rng.randrange(4)
        if choice == 0 and items:
            del items[rng.randrange(len(items))]
        elif choice == 1 and items:
            items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        elif choice == 2 and items:
            i = rng.randrange(len(items))
            items[i] = _mutate_value(rng, items[i], depth + 1)
        elif items:
            items = items * rng.randint(2, 20)  # many of the same: caps and quadratic paths
        return tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and depth < 4:
        return mutate_fields(rng, value, depth + 1)
    return value


def mutate_fields(rng: random.Random, obj: T, depth: int = 0) -> T:
    """A copy of frozen dataclass ``obj`` with one field changed."""
    fields = dataclasses.fields(obj)  # type: ignore[arg-type]
    if not fields:
        return obj
    f = rng.choice(fields)
    new = _mutate_value(rng, getattr(obj, f.name), depth)
    return dataclasses.replace(obj, **{f.name: new})  # type: ignore[type-var]


def mutate_list(rng: random.Random, items: list[T], pool: list[T]) -> list[T]:
    """Payload lists: drop, duplicate, swap, insert one from ``pool``, change one."""
    out = list(items)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        if kind == 0 and out:
            del out[rng.randrange(len(out))]
        elif kind == 1 and out:
            out.insert(rng.randrange(len(out) + 1), rng.choice(out))
        elif kind == 2 and len(out) > 1:
            i, j = rng.randrange(len(out)), rng.randrange(len(out))
            out[i], out[j] = out[j], out[i]
        elif kind == 3 and pool:
            out.insert(rng.randrange(len(out) + 1), rng.choice(pool))
        elif out:
            i = rng.randrange(len(out))
            out[i] = mutate_fields(rng, out[i])
    return out


def mutate_toml(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        kind = rng.randrange(6)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2 and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            value = rng.choice(
                (
                    '""',
                    "0",
                    "-1",
                    "99999999999999999999",
                    "[]",
                    "[1, 2]",
                    '"%any"',
                    "true",
                    '"0x"',
                    '"0s!!"',
                    '"1.2.3.4/99"',
                    '"::/0[tcp/9-1]"',
                    '"10.0.0.1..10.0.0.0"',
                    '"aes128-sha256-modp1024"',
                    '"1e9s"',
                    "{}",
                    '"\\u0000"',
                    "1.5",
                )
            )
            lines[i] = f"{key}= {value}"
        elif kind == 3:
            lines[i] = mutate_bytes(rng, lines[i].encode(), 8).decode("utf-8", "replace")
        elif kind == 4:
            lines.insert(
                i,
                rng.choice(
                    (
                        "[daemon]",
                        "[connections.x]",
                        "[connections.x.children.y]",
                        "[secrets.s]",
                        "x = 1",
                    )
                ),
            )
        else:
            lines[i] = lines[i].replace("2", "1") if "2" in lines[i] else lines[i] + "0"
    return "\n".join(lines) + "\n"
