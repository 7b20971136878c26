"""IKEv1 key material: SKEYID and its three children, the phase-1 encryption key, the
authentication and Quick Mode hashes, KEYMAT (RFC 2409 §5, §5.5, Appendix B) and the NAT-D
hash (RFC 3947 §3.2).

Notation as in RFC 2409: ``_b`` is a payload's body without its generic header, ``g_xi`` /
``g_xr`` the initiator's / responder's KE data and ``shared`` g^xy (as
:meth:`pike.crypto.ke.KeyExchange.shared_secret` returns it). CKY-I and CKY-R are the 8-byte
ISAKMP cookies (the header's SPIs), M-ID the header's 4-byte message ID.

The PRF is the HMAC of the negotiated phase-1 hash (RFC 2409 §4: no PRF attribute is ever
negotiated in practice); the bare hash computes IVs (Appendix B) and NAT-D. HMAC-SHA1 stays
available for IKEv1 peers, MD5 is refused (RFC 8247 §2.3). The IV chaining itself lives in
:mod:`pike.ikev1.cipher`.
"""

import hashlib
import ipaddress
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from pike.crypto.errors import CryptoError, ProposalError
from pike.crypto.ids import PrfId
from pike.crypto.prf import Prf
from pike.wire.isakmp_constants import AuthV1, HashV1

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

COOKIE_SIZE = 8  # RFC 2408 §3.1: Initiator / Responder Cookie, 8 octets
MESSAGE_ID_SIZE = 4  # RFC 2408 §3.1: Message ID, 4 octets


# phase-1 Hash Algorithm attribute -> the PRF transform that is its HMAC
_HASH_PRF: dict[int, int] = {
    HashV1.SHA1: PrfId.HMAC_SHA1,
    HashV1.SHA2_256: PrfId.HMAC_SHA2_256,
    HashV1.SHA2_384: PrfId.HMAC_SHA2_384,
    HashV1.SHA2_512: PrfId.HMAC_SHA2_512,
}


def phase1_prf(hash_alg: int) -> Prf:
    """The PRF of a phase-1 SA negotiating ``hash_alg`` (a :class:`HashV1` value; the HMAC
    of that hash, RFC 2409 §4).

    ProposalError for MD5 (refused by RFC 8247), CryptoError for hashes pike lacks.
    """
    if hash_alg == HashV1.MD5:
        raise ProposalError("md5 (hash 1) is refused: RFC 8247 forbids HMAC-MD5")
    try:
        return Prf(_HASH_PRF[hash_alg])
    except KeyError:
        raise CryptoError(f"IKEv1 hash algorithm {hash_alg} is not implemented") from None


# RFC 4754 §8: with an ECDSA method HASH_I/HASH_R are the HMAC of the curve's hash, whatever
# the negotiated one (strongSwan's keymat_v1 prf_auth); SKEYID and the rest keep the latter.
_ECDSA_AUTH_HASH: dict[int, int] = {
    AuthV1.ECDSA_SHA256: HashV1.SHA2_256,
    AuthV1.ECDSA_SHA384: HashV1.SHA2_384,
    AuthV1.ECDSA_SHA512: HashV1.SHA2_512,
}


def auth_prf(prf: Prf, auth_method: int) -> Prf:
    """The PRF of HASH_I/HASH_R for ``auth_method``: the phase-1 PRF, except for ECDSA."""
    alg = _ECDSA_AUTH_HASH.get(auth_method)
    return prf if alg is None else phase1_prf(alg)


def digest(prf: Prf, data: bytes) -> bytes:
    """The bare negotiated hash, HASH(data) (IVs, NAT-D)."""
    return hashlib.new(prf.hash_name, data).digest()


def _message_id(message_id: int) -> bytes:
    return message_id.to_bytes(MESSAGE_ID_SIZE, "big")


def _check_cookies(cky_i: bytes, cky_r: bytes) -> None:
    if len(cky_i) != COOKIE_SIZE or len(cky_r) != COOKIE_SIZE:
        raise CryptoError(f"ISAKMP cookies are {COOKIE_SIZE} bytes, got {len(cky_i)}/{len(cky_r)}")


# -- SKEYID and friends (RFC 2409 §5) -----------------------------------------------------


def skeyid_psk(prf: Prf, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """Pre-shared keys: SKEYID = prf(pre-shared-key, Ni_b | Nr_b)."""
    return prf.prf(psk, ni_b + nr_b)


def skeyid_signature(prf: Prf, ni_b: bytes, nr_b: bytes, shared: bytes) -> bytes:
    """Signatures (RSA, DSS, ECDSA): SKEYID = prf(Ni_b | Nr_b, g^xy)."""
    return prf.prf(ni_b + nr_b, shared)


@dataclass(frozen=True, repr=False, slots=True)
class Phase1Keys:
    """The keys of one ISAKMP SA: SKEYID, SKEYID_d (phase-2 KEYMAT), SKEYID_a (HASHes),
    SKEYID_e and the encryption key ``enc_key`` derived from it (Appendix B)."""

    skeyid: bytes
    skeyid_d: bytes
    skeyid_a: bytes
    skeyid_e: bytes
    enc_key: bytes

    def __repr__(self) -> str:
        return _hidden_repr(self)


def derive_phase1(
    prf: Prf, skeyid: bytes, shared: bytes, cky_i: bytes, cky_r: bytes, enc_key_size: int
) -> Phase1Keys:
    """SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)   (RFC 2409 §5)
    and the ``enc_key_size``-byte cipher key from SKEYID_e (:func:`encryption_key`)."""
    _check_cookies(cky_i, cky_r)
    tail = shared + cky_i + cky_r
    d = prf.prf(skeyid, tail + b"\x00")
    a = prf.prf(skeyid, d + tail + b"\x01")
    e = prf.prf(skeyid, a + tail + b"\x02")
    return Phase1Keys(skeyid, d, a, e, encryption_key(prf, e, enc_key_size))


def encryption_key(prf: Prf, skeyid_e: bytes, size: int) -> bytes:
    """The cipher key: the first ``size`` bytes of SKEYID_e, or, when SKEYID_e is too short
    (AES-256 with SHA-1), of Ka = K1 | K2 | ... with K1 = prf(SKEYID_e, 0),
    Kn = prf(SKEYID_e, Kn-1)  (RFC 2409 Appendix B; 0 is one zero octet)."""
    if size <= 0:
        raise CryptoError(f"encryption key size must be positive, got {size}")
    if len(skeyid_e) >= size:
        return skeyid_e[:size]
    out: list[bytes] = []
    block = b"\x00"
    have = 0
    while have < size:
        block = prf.prf(skeyid_e, block)
        out.append(block)
        have += len(block)
    return b"".join(out)[:size]


# -- IVs (RFC 2409 Appendix B) ------------------------------------------------------------


def phase1_iv(prf: Prf, g_xi: bytes, g_xr: bytes, block_size: int) -> bytes:
    """IV of the first encrypted phase-1 message: hash(g^xi | g^xr), truncated."""
    return _truncate(digest(prf, g_xi + g_xr), block_size)


def phase2_iv(prf: Prf, last_phase1_block: bytes, message_id: int, block_size: int) -> bytes:
    """First IV of a Quick Mode or Informational exchange: hash(last phase-1 CBC output
    block | M-ID), truncated."""
    return _truncate(digest(prf, last_phase1_block + _message_id(message_id)), block_size)


def _truncate(value: bytes, block_size: int) -> bytes:
    if not 0 < block_size <= len(value):
        raise CryptoError(f"a {len(value)}-byte hash cannot make a {block_size}-byte IV")
    return value[:block_size]


# -- authentication hashes (RFC 2409 §5) --------------------------------------------------


def hash_i(
    prf: Prf,
    skeyid: bytes,
    g_xi: bytes,
    g_xr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    idii_b: bytes,
) -> bytes:
    """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)."""
    _check_cookies(cky_i, cky_r)
    return prf.prf(skeyid, g_xi + g_xr + cky_i + cky_r + sai_b + idii_b)


def hash_r(
    prf: Prf,
    skeyid: bytes,
    g_xi: bytes,
    g_xr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    idir_b: bytes,
) -> bytes:
    """HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b).

    Arguments in the same order as :func:`hash_i`; SAi_b is the initiator's SA body in
    both (the responder's own SA payload does not enter)."""
    _check_cookies(cky_i, cky_r)
    return prf.prf(skeyid, g_xr + g_xi + cky_r + cky_i + sai_b + idir_b)


def qm_hash1(prf: Prf, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """Quick Mode HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr]): ``rest``
    is the message after the HASH payload, generic headers included (RFC 2409 §5.5)."""
    return prf.prf(skeyid_a, _message_id(message_id) + rest)


def qm_hash2(prf: Prf, skeyid_a: bytes, message_id: int, ni_b: bytes, rest: bytes) -> bytes:
    """Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])."""
    return prf.prf(skeyid_a, _message_id(message_id) + ni_b + rest)


def qm_hash3(prf: Prf, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)."""
    return prf.prf(skeyid_a, b"\x00" + _message_id(message_id) + ni_b + nr_b)


def informational_hash(prf: Prf, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """Informational HASH(1) = prf(SKEYID_a, M-ID | N/D): ``rest`` is the Notification or
    Delete payload(s) after the HASH payload, generic headers included (RFC 2409 §5.7)."""
    return prf.prf(skeyid_a, _message_id(message_id) + rest)


# -- phase 2 KEYMAT (RFC 2409 §5.5) -------------------------------------------------------


def keymat(
    prf: Prf,
    skeyid_d: bytes,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    shared: bytes | None = None,
) -> bytes:
    """KEYMAT = K1 | K2 | ... truncated to ``length`` bytes, with
    K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
    Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).

    ``protocol`` is a :class:`pike.wire.isakmp_constants.ProtocolV1` value (ESP = 3);
    ``shared`` is the Quick Mode g^xy when PFS is used; ``spi`` is the SPI of the SA the
    keys are for, i.e. the one its receiving side chose."""
    if length <= 0:
        raise CryptoError(f"KEYMAT length must be positive, got {length}")
    seed = (shared or b"") + bytes((protocol,)) + spi + ni_b + nr_b
    out: list[bytes] = []
    block = b""
    have = 0
    while have < length:
        block = prf.prf(skeyid_d, block + seed)
        out.append(block)
        have += len(block)
    return b"".join(out)[:length]


@dataclass(frozen=True, repr=False, slots=True)
class SaKeys:
    """The keys of one phase-2 SA (one direction): encryption key first in KEYMAT, then
    the integrity key (as strongSwan, libreswan and the Linux kernel split it)."""

    encr: bytes
    integ: bytes

    def __repr__(self) -> str:
        return _hidden_repr(self)


@dataclass(frozen=True, repr=False, slots=True)
class Phase2Keys:
    """Both directions of a Quick Mode: ``i2r`` protects initiator-to-responder traffic
    (SPI chosen by the responder), ``r2i`` the reverse (SPI chosen by the initiator)."""

    i2r: SaKeys
    r2i: SaKeys

    def __repr__(self) -> str:
        return f"Phase2Keys(i2r={self.i2r!r}, r2i={self.r2i!r})"


def derive_phase2(
    prf: Prf,
    skeyid_d: bytes,
    protocol: int,
    spi_i: bytes,
    spi_r: bytes,
    ni_b: bytes,
    nr_b: bytes,
    encr_key_size: int,
    integ_key_size: int,
    shared: bytes | None = None,
) -> Phase2Keys:
    """KEYMAT of both SAs of one Quick Mode. ``spi_i`` is the SPI in the initiator's SA
    payload (its inbound SA), ``spi_r`` the responder's; sizes in bytes."""
    size = encr_key_size + integ_key_size

    def split(spi: bytes) -> SaKeys:
        km = keymat(prf, skeyid_d, protocol, spi, ni_b, nr_b, size, shared)
        return SaKeys(km[:encr_key_size], km[encr_key_size:])

    return Phase2Keys(i2r=split(spi_r), r2i=split(spi_i))


# -- NAT-D (RFC 3947 §3.2) ----------------------------------------------------------------


def natd_hash(
    prf: Prf,
    cky_i: bytes,
    cky_r: bytes,
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
) -> bytes:
    """HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash; IP in network order
    (4 or 16 bytes), port 2 bytes."""
    _check_cookies(cky_i, cky_r)
    packed = ipaddress.ip_address(ip).packed
    return digest(prf, cky_i + cky_r + packed + port.to_bytes(2, "big"))


def _hidden_repr(obj: "DataclassInstance") -> str:
    # Keys never reach logs: show only their lengths
    parts = ", ".join(f"{f.name}=<{len(getattr(obj, f.name))} bytes>" for f in fields(obj))
    return f"{type(obj).__name__}({parts})"
