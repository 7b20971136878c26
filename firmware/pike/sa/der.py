"""Just enough DER (X.690) for AlgorithmIdentifiers and distinguished names.

The reader checks every length against its bound before use: the peer chose these bytes.
"""

from __future__ import annotations

INTEGER = 0x02
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30
SET = 0x31
CTX = 0xA0  # [n] constructed, context-specific

# String types an X.520 attribute value may use, and how to read them.
_STRINGS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString: in practice Latin-1
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


# No standard OID has an arc near this long (a UUID arc, 2.25.x, takes 19 bytes); a longer
# one is only there to make str(int) work for seconds, or raise past Python's 4 300 digits.
MAX_ARC_BYTES = 20


class DerError(ValueError):
    """Malformed DER (the text names what)."""


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes((n,))
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes((0x80 | len(raw),)) + raw
    return bytes((tag,)) + length + body


def read(data: bytes, pos: int, end: int, what: str) -> tuple[int, int, int]:
    """(tag, body start, body end) of the TLV at ``pos``, bounded by ``end``."""
    if pos + 2 > end:
        raise DerError(f"{what}: truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + count > end:
            raise DerError(f"{what}: bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise DerError(f"{what}: length {length} past the end")
    return tag, pos, pos + length


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return tlv(OID, bytes(out))


def decode_oid(body: bytes) -> str:
    if not body or body[-1] & 0x80:
        raise DerError("OID: truncated")
    top = min(body[0] // 40, 2)
    arcs = [top, body[0] - 40 * top]
    value = 0
    length = 0
    for b in body[1:]:
        value = (value << 7) | (b & 0x7F)
        length += 1
        if length > MAX_ARC_BYTES:
            raise DerError(f"OID: an arc longer than {MAX_ARC_BYTES} bytes")
        if not b & 0x80:
            arcs.append(value)
            value = 0
            length = 0
    return ".".join(str(a) for a in arcs)


def decode_name(data: bytes) -> tuple[tuple[tuple[str, str], ...], ...]:
    """A DER Name as RDNs of (attribute OID, value text), string types folded away.

    Two encodings of one DN (PrintableString vs UTF8String, as strongSwan and
    ``cryptography`` choose differently) decode to the same value.
    """
    tag, pos, end = read(data, 0, len(data), "Name")
    if tag != SEQUENCE or end != len(data):
        raise DerError("Name: not one SEQUENCE")
    rdns = []
    while pos < end:
        tag, rpos, rend = read(data, pos, end, "RDN")
        if tag != SET:
            raise DerError("RDN: not a SET")
        atvs = []
        while rpos < rend:
            tag, apos, aend = read(data, rpos, rend, "AttributeTypeAndValue")
            otag, ostart, ostop = read(data, apos, aend, "attribute type")
            if tag != SEQUENCE or otag != OID:
                raise DerError("AttributeTypeAndValue: not SEQUENCE { OID, value }")
            vtag, vstart, vstop = read(data, ostop, aend, "attribute value")
            if vstop != aend:
                raise DerError("AttributeTypeAndValue: trailing bytes")
            codec = _STRINGS.get(vtag)
            raw = data[vstart:vstop]
            try:
                value = raw.decode(codec) if codec else "#" + data[ostop:aend].hex()
            except UnicodeDecodeError:
                raise DerError("attribute value: bad string encoding") from None
            atvs.append((decode_oid(data[ostart:ostop]), value))
            rpos = aend
        rdns.append(tuple(sorted(atvs)))
        pos = rend
    return tuple(rdns)
