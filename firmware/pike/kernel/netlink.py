"""Netlink messages <-> bytes, sans I/O (linux/netlink.h): header, attributes, replies.

A message is a fixed C struct (declared as ``(name, struct format)`` fields, padding as
explicit ``x`` fields, as in pike.wire) followed by attributes (NLAs: u16 length, u16 type,
value, padded to 4 bytes). ``Message`` subclasses name the struct and the attributes they
may carry; ``Replies`` takes the kernel's answers to one request (acks, errors with the
extended ack text, multipart dumps). The socket is ``pike.kernel.nlsocket``.

Decoding checks every length against its container and raises only ``NetlinkDecodeError``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

# Message flags (nlmsghdr.nlmsg_flags).
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100  # on NEW requests
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request was not echoed back
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended ack attributes follow

# Control message types.
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

# Extended ack attributes (enum nlmsgerr_attrs).
NLMSGERR_ATTR_MSG = 1

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
NLA_HEADER = struct.Struct("=HH")  # struct nlattr: len, type
ERRNO = struct.Struct("=i")

Fields = tuple[tuple[str, str], ...]


class NetlinkDecodeError(ValueError):
    """Bytes from the kernel that do not parse (truncated, lengths that do not fit)."""


class NetlinkError(Exception):
    """The kernel answered a request with an error: ``code`` is the errno, ``detail`` the
    extended ack message (None when the kernel gave none)."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail
        super().__init__(code, detail)

    def __str__(self) -> str:
        text = f"{errno.errorcode.get(self.code, str(self.code))} ({os.strerror(self.code)})"
        return f"{text}: {self.detail}" if self.detail else text


def align(n: int) -> int:
    return (n + 3) & ~3


class Header(NamedTuple):
    length: int
    type: int
    flags: int
    seq: int
    pid: int


def encode_message(msg_type: int, flags: int, seq: int, payload: bytes, pid: int = 0) -> bytes:
    """One netlink message: header and payload (padded to 4 bytes)."""
    length = HEADER.size + len(payload)
    return HEADER.pack(length, msg_type, flags, seq, pid) + payload + bytes(align(length) - length)


def split(data: bytes) -> Iterator[tuple[Header, bytes]]:
    """The messages in one datagram, each with its payload."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            raise NetlinkDecodeError(
                f"netlink header truncated: {len(data) - offset} bytes at offset {offset}"
            )
        header = Header(*HEADER.unpack_from(data, offset))
        if header.length < HEADER.size or offset + header.length > len(data):
            raise NetlinkDecodeError(
                f"netlink message type {header.type} at offset {offset} says {header.length} "
                f"bytes, {len(data) - offset} there"
            )
        yield header, data[offset + HEADER.size : offset + header.length]
        offset += align(header.length)


# -- fixed structs ---------------------------------------------------------------------


class Struct:
    """A C struct given as ``(name, format)`` fields packed back to back (``=`` sizes, no
    implicit alignment: padding is spelled out as ``x`` fields). Byte strings (``16s``)
    are zero-padded; a field left out is zero.

    Consecutive fields of one byte order are packed by one ``struct.Struct`` (a run): an
    SA or policy message is then three or four ``pack_into`` calls, not one per field."""

    def __init__(self, fields: Fields) -> None:
        self.fields = fields
        self._parts: list[tuple[str | None, struct.Struct, int, bool]] = []
        # (packer, offset, names of its values, each one's default)
        self._runs: list[tuple[struct.Struct, int, tuple[str, ...], tuple[Any, ...]]] = []
        offset = 0
        run: list[tuple[str | None, str, bool]] = []
        run_order, run_at = "", 0
        for name, fmt in fields:
            order, body = (fmt[0], fmt[1:]) if fmt[0] in "<>=!@" else ("=", fmt)
            packer = struct.Struct(order + body)
            pad = fmt.endswith("x")
            self._parts.append((None if pad else name, packer, offset, fmt.endswith("s")))
            if run and (order != run_order or order == "@"):  # "@" aligns: alone
                self._add_run(run_order, run_at, run)
                run = []
            if not run:
                run_order, run_at = order, offset
            run.append((None if pad else name, body, fmt.endswith("s")))
            offset += packer.size
        if run:
            self._add_run(run_order, run_at, run)
        self.size = offset

    def _add_run(self, order: str, at: int, run: list[tuple[str | None, str, bool]]) -> None:
        packer = struct.Struct(order + "".join(body for _, body, _ in run))
        names = tuple(name for name, _, _ in run if name is not None)
        defaults = tuple(b"" if is_bytes else 0 for name, _, is_bytes in run if name is not None)
        self._runs.append((packer, at, names, defaults))

    def defaults(self) -> dict[str, Any]:
        return {name: b"" if is_bytes else 0 for name, _, _, is_bytes in self._parts if name}

    def pack(self, values: Mapping[str, Any]) -> bytes:
        out = bytearray(self.size)
        get = values.get
        try:
            for packer, offset, names, defaults in self._runs:
                packer.pack_into(out, offset, *map(get, names, defaults))
        except struct.error:
            self._explain(values)  # names the field; the run's error does not
            raise
        return bytes(out)

    def _explain(self, values: Mapping[str, Any]) -> None:
        """Pack field by field: raises ValueError naming the field that does not fit."""
        out = bytearray(self.size)
        for name, packer, offset, is_bytes in self._parts:
            if name is None:
                continue
            value = values.get(name, b"" if is_bytes else 0)
            try:
                packer.pack_into(out, offset, value)
            except struct.error as exc:
                raise ValueError(f"field {name}={value!r}: {exc}") from None

    def unpack(self, data: bytes, offset: int = 0) -> dict[str, Any]:
        if len(data) - offset < self.size:
            raise NetlinkDecodeError(f"struct of {self.size} bytes, {len(data) - offset} there")
        out: dict[str, Any] = {}
        for packer, at, names, _ in self._runs:
            out.update(zip(names, packer.unpack_from(data, offset + at), strict=True))
        return out


def struct_size(fields: Fields) -> int:
    return Struct(fields).size


# -- attribute values ------------------------------------------------------------------


class AttrCodec(Protocol):
    def encode(self, value: Any) -> bytes: ...

    def decode(self, raw: bytes) -> Any: ...


class Scalar:
    """An integer attribute (``I``: u32 host order, ``>I``: __be32, ``Q``, ``H``, ``B``)."""

    def __init__(self, fmt: str) -> None:
        self._s = struct.Struct(fmt if fmt[0] in "<>=!" else "=" + fmt)

    def encode(self, value: Any) -> bytes:
        return self._s.pack(int(value))

    def decode(self, raw: bytes) -> Any:
        if len(raw) < self._s.size:
            raise NetlinkDecodeError(f"integer attribute of {len(raw)} bytes")
        return self._s.unpack_from(raw)[0]


class Raw:
    """Bytes as they are."""

    def encode(self, value: Any) -> bytes:
        return bytes(value)

    def decode(self, raw: bytes) -> Any:
        return bytes(raw)


class CString:
    """A NUL-terminated string (interface names, link kinds)."""

    def encode(self, value: Any) -> bytes:
        return str(value).encode() + b"\0"

    def decode(self, raw: bytes) -> Any:
        return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


class Address:
    """An IPv4 or IPv6 address (4 or 16 bytes); decodes to its text form."""

    def encode(self, value: Any) -> bytes:
        return ipaddress.ip_address(value).packed

    def decode(self, raw: bytes) -> Any:
        if len(raw) not in (4, 16):
            raise NetlinkDecodeError(f"address attribute of {len(raw)} bytes")
        return str(ipaddress.ip_address(bytes(raw)))


class StructValue:
    """A struct attribute (a dict); ``tail`` names a variable-length end (a key)."""

    def __init__(self, fields: Fields, tail: str | None = None) -> None:
        self.layout = Struct(fields)
        self.tail = tail

    def encode(self, value: Any) -> bytes:
        data = self.layout.pack(value)
        if self.tail is not None:
            data += bytes(value.get(self.tail, b""))
        return data

    def decode(self, raw: bytes) -> Any:
        out = self.layout.unpack(raw)
        if self.tail is not None:
            out[self.tail] = bytes(raw[self.layout.size :])
        return out


class Attrs(list[tuple[str, Any]]):
    """Decoded attributes in order, as ``(name, value)``; unknown types as ``(str(type),
    raw bytes)``."""

    def get_attr(self, name: str) -> Any:
        return next((value for key, value in self if key == name), None)


class AttrSet:
    """The attributes one message (or one nested attribute) may carry."""

    def __init__(self, spec: Iterable[tuple[int, str, AttrCodec]]) -> None:
        self._by_name: dict[str, tuple[int, AttrCodec]] = {}
        self._by_type: dict[int, tuple[str, AttrCodec]] = {}
        for number, name, codec in spec:
            self._by_name[name] = (number, codec)
            self._by_type[number] = (name, codec)

    def encode(self, attrs: Iterable[tuple[str, Any]]) -> bytes:
        parts: list[bytes] = []
        for name, value in attrs:
            known = self._by_name.get(name)
            if known is not None:
                number, payload = known[0], known[1].encode(value)
            elif name.isdigit():  # one we did not know when decoding: as it came
                number, payload = int(name), bytes(value)
            else:
                raise ValueError(f"unknown attribute {name}")
            length = NLA_HEADER.size + len(payload)
            if length > 0xFFFF:
                raise ValueError(f"attribute {name} of {length} bytes")
            parts.append(NLA_HEADER.pack(length, number))
            parts.append(payload + bytes(align(length) - length))
        return b"".join(parts)

    def decode(self, data: bytes) -> Attrs:
        out = Attrs()
        offset = 0
        while len(data) - offset >= NLA_HEADER.size:
            length, number = NLA_HEADER.unpack_from(data, offset)
            if length < NLA_HEADER.size or offset + length > len(data):
                raise NetlinkDecodeError(
                    f"attribute type {number & NLA_TYPE_MASK} at offset {offset} says "
                    f"{length} bytes, {len(data) - offset} there"
                )
            raw = data[offset + NLA_HEADER.size : offset + length]
            known = self._by_type.get(number & NLA_TYPE_MASK)
            if known is None:
                out.append((str(number & NLA_TYPE_MASK), bytes(raw)))
            else:
                name, codec = known
                try:
                    out.append((name, codec.decode(raw)))
                except NetlinkDecodeError as exc:
                    raise NetlinkDecodeError(f"{name}: {exc}") from None
            offset += align(length)
        return out


class Nested:
    """An attribute holding attributes."""

    def __init__(self, attrs: AttrSet) -> None:
        self.attrs = attrs

    def encode(self, value: Any) -> bytes:
        return self.attrs.encode(value)

    def decode(self, raw: bytes) -> Any:
        return self.attrs.decode(raw)


# -- messages --------------------------------------------------------------------------


class Message(dict[str, Any]):
    """A message body: the struct's fields by name, and ``attrs`` as ``(name, value)``
    pairs. Subclasses set ``fields`` and ``nla``."""

    fields: ClassVar[Fields] = ()
    nla: ClassVar[AttrSet] = AttrSet(())
    _layouts: ClassVar[dict[type, Struct]] = {}

    def __init__(self, values: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
        super().__init__(self.layout().defaults())
        self["attrs"] = Attrs()
        if values:
            self.update(values)
        self.update(kw)

    @classmethod
    def layout(cls) -> Struct:
        found = Message._layouts.get(cls)
        if found is None:
            found = Message._layouts[cls] = Struct(cls.fields)
        return found

    def get_attr(self, name: str) -> Any:
        attrs: Attrs = self["attrs"]
        return next((value for key, value in attrs if key == name), None)

    def payload(self) -> bytes:
        return self.layout().pack(self) + self.nla.encode(self["attrs"])

    def encode(self, msg_type: int, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
        return encode_message(msg_type, flags, seq, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Message:
        """A body from a message's payload (what ``split`` yields)."""
        layout = cls.layout()
        if len(payload) < layout.size:
            raise NetlinkDecodeError(
                f"{cls.__name__}: {len(payload)} bytes, the struct alone is {layout.size}"
            )
        msg = cls(layout.unpack(payload))
        msg["attrs"] = cls.nla.decode(payload[align(layout.size) :])
        return msg


def parse_error(payload: bytes) -> NetlinkError | None:
    """An NLMSG_ERROR payload: None for an ack (error 0), else the error with the extended
    ack message when the kernel attached one (``NETLINK_EXT_ACK``)."""
    if len(payload) < ERRNO.size + HEADER.size:
        raise NetlinkDecodeError(f"NLMSG_ERROR of {len(payload)} bytes")
    (code,) = ERRNO.unpack_from(payload)
    if code == 0:
        return None
    return NetlinkError(-code)


def error_detail(flags: int, payload: bytes) -> str | None:
    """The extended ack message after the echoed request, if any."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    echoed = HEADER.unpack_from(payload, ERRNO.size)[0]
    start = ERRNO.size + (HEADER.size if flags & NLM_F_CAPPED else align(echoed))
    if start > len(payload):
        return None
    tlvs = AttrSet([(NLMSGERR_ATTR_MSG, "msg", CString())]).decode(payload[start:])
    detail = tlvs.get_attr("msg")
    return str(detail) if detail else None


@dataclass
class Replies:
    """Collects the answer to one request (sequence number ``seq``) from the datagrams fed
    in: ``done`` once the kernel has said all. ``ack``: the request asked for one
    (NLM_F_ACK); without it a single non-multipart reply ends the answer."""

    seq: int
    ack: bool
    messages: list[tuple[Header, bytes]] = field(default_factory=list)
    done: bool = False

    def feed(self, datagram: bytes) -> None:
        """Raises NetlinkError for an error answer, NetlinkDecodeError for bad bytes."""
        for header, payload in split(datagram):
            if header.seq != self.seq or self.done:
                continue  # the answer to an earlier request we gave up on
            if header.type == NLMSG_ERROR:
                error = parse_error(payload)
                self.done = True
                if error is not None:
                    error.detail = error_detail(header.flags, payload)
                    raise error
            elif header.type == NLMSG_DONE:
                self.done = True
                if len(payload) >= ERRNO.size and (code := ERRNO.unpack_from(payload)[0]) < 0:
                    raise NetlinkError(-code, error_detail(header.flags, payload))
            elif header.type in (NLMSG_NOOP, NLMSG_OVERRUN):
                continue
            else:
                self.messages.append((header, payload))
                if not header.flags & NLM_F_MULTI and not self.ack:
                    self.done = True
