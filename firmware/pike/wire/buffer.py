"""Bounds-checked reading and cheap writing of network-order fields.

``Reader`` walks a ``bytes`` object between two offsets, so that nested structures
(payload -> proposal -> transform) are sub-readers over the same bytes, never copies;
only values handed out as ``bytes`` are copied (slicing ``bytes`` makes them in one step,
where a ``memoryview`` would need a view and then ``tobytes()``). Reading past the end is
the peer's fault, so it raises ``MalformedMessage("truncated")`` rather than IndexError or
struct.error.
"""

from __future__ import annotations

import struct

from pike.wire.constants import NotifyType
from pike.wire.errors import MalformedMessage

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def truncated(detail: str) -> MalformedMessage:
    """A structure ends before its declared fields do: INVALID_SYNTAX (RFC 7296 §2.21.1)."""
    return MalformedMessage("truncated", detail, NotifyType.INVALID_SYNTAX)


class Reader:
    """Sequential reader over ``data[pos:end]``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data if type(data) is bytes else bytes(data)
        self.pos = pos
        self.end = len(self.data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int, what: str) -> int:
        start = self.pos
        stop = start + n
        if n < 0 or stop > self.end:
            raise truncated(f"{what}: need {n} bytes at offset {start}, have {self.end - start}")
        self.pos = stop
        return start

    def u8(self, what: str = "u8") -> int:
        return self.data[self._take(1, what)]

    def u16(self, what: str = "u16") -> int:
        return int(_U16.unpack_from(self.data, self._take(2, what))[0])

    def u32(self, what: str = "u32") -> int:
        return int(_U32.unpack_from(self.data, self._take(4, what))[0])

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[int, ...]:
        """Read a fixed block of fields in one call (the hot path's way)."""
        return fmt.unpack_from(self.data, self._take(fmt.size, what))

    def read(self, n: int, what: str = "bytes") -> bytes:
        start = self._take(n, what)
        return self.data[start : start + n]

    def rest(self) -> bytes:
        start, self.pos = self.pos, self.end
        return self.data[start : self.end]

    def sub(self, n: int, what: str = "sub") -> Reader:
        """A reader over the next ``n`` bytes; this reader moves past them."""
        start = self._take(n, what)
        return Reader(self.data, start, start + n)


class Writer:
    """Collects parts and joins them once: no repeated concatenation."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def pack(self, fmt: struct.Struct, *values: int) -> None:
        self.write(fmt.pack(*values))

    def u8(self, value: int) -> None:
        self.write(bytes((value,)))

    def u16(self, value: int) -> None:
        self.write(_U16.pack(value))

    def u32(self, value: int) -> None:
        self.write(_U32.pack(value))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)
