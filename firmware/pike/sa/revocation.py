"""Revocation of the peer's certificates: CRLs (RFC 5280 §5) and OCSP (RFC 6960).

Sans-I/O. ``RevocationCache`` holds the CRLs and OCSP answers the runtime fetched (and
the CRL files the config names) and answers ``status`` from memory only. A status it does
not hold yet is PENDING: the cache notes a ``Fetch`` in ``wanted``, the runtime
(``pike.daemon.revocation``) drains it, fetches off the event loop with bounded time and
size, and hands the bytes back (``add_crl``, ``add_ocsp``) or the failure (``failed``).
The exchange that met PENDING is not answered (the peer's retransmission, or ours, asks
again once the answer is in), so no engine ever waits on I/O.

What a status means for the authentication is strongSwan's ``revocation`` policy
(``decide``): ``strict`` fails unless the certificate is known to be good, ``ifuri`` fails
when a CRL or OCSP URI exists but no status could be had, ``relaxed`` (the default) fails
only on a certificate known to be revoked.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from pike.sa import identity

log = logging.getLogger("pike.revocation")

Policy = Literal["strict", "ifuri", "relaxed"]
POLICIES: tuple[Policy, ...] = ("strict", "ifuri", "relaxed")

# How long a failed fetch stands for its URI (the retransmission that follows it must see
# the failure, not start another fetch), and how long an OCSP answer without nextUpdate
# is used (RFC 6960 §4.2.2.1: then newer information is always available).
FAILURE_HOLD = timedelta(seconds=60)
OCSP_NO_NEXT_UPDATE = timedelta(minutes=5)
# A response or CRL whose thisUpdate is this far in the future is refused (clock skew).
CLOCK_SKEW = timedelta(minutes=5)
NONCE_SIZE = 16
OCSP_PRUNE_EVERY = 1024  # held answers: expired ones are dropped at each multiple


class Status(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # no CRL or OCSP URI: nothing to ask (strongSwan's SKIPPED)
    FAILED = "failed"  # a URI exists, but no usable answer came
    PENDING = "pending"  # being fetched: ask again later


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    source: str = ""  # where the answer came from ("crl http://...", "ocsp http://...")
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Fetch:
    """What the runtime should fetch: a CRL by URI, or an OCSP status from a responder."""

    kind: Literal["crl", "ocsp"]
    uri: str
    cert: x509.Certificate | None = None  # OCSP: the certificate asked about
    issuer: x509.Certificate | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.uri, self.cert.serial_number if self.cert is not None else 0)


class RevocationError(Exception):
    """A CRL or OCSP response that cannot be used (the text says why)."""


# -- URIs in certificates -------------------------------------------------------------------


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def crl_uris(cert: x509.Certificate) -> list[str]:
    """The HTTP URIs of the certificate's CRL distribution points."""
    cdp = _ext(cert, x509.CRLDistributionPoints)
    out: list[str] = []
    if isinstance(cdp, x509.CRLDistributionPoints):
        for point in cdp:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and _http(name.value):
                    out.append(name.value)
    return out


def ocsp_uris(cert: x509.Certificate) -> list[str]:
    """The HTTP URIs of the OCSP responders in the certificate's authorityInfoAccess."""
    aia = _ext(cert, x509.AuthorityInformationAccess)
    out: list[str] = []
    if isinstance(aia, x509.AuthorityInformationAccess):
        for desc in aia:
            loc = desc.access_location
            if (
                desc.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(loc, x509.UniformResourceIdentifier)
                and _http(loc.value)
            ):
                out.append(loc.value)
    return out


def _http(uri: str) -> bool:
    return uri.lower().startswith("http://")


def serial_text(serial: int) -> str:
    """A serial as strongSwan and openssl print it: colon-separated hex bytes."""
    raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    return ":".join(f"{b:02x}" for b in raw)


def _subject(cert: x509.Certificate) -> str:
    return identity.printable(cert.subject.rfc4514_string())


def _keyid(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()


# -- signatures -----------------------------------------------------------------------------


def _verify(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    """Whether ``signature`` over ``data`` verifies with a certificate's public ``key``."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# -- CRLs -----------------------------------------------------------------------------------


@dataclass(slots=True)
class CrlEntry:
    crl: x509.CertificateRevocationList
    source: str  # "http://..." or a file path
    this_update: datetime
    next_update: datetime | None
    number: int | None
    # serial -> revocation date, built once: a hub looks up every peer at each scrape
    revoked: dict[int, datetime] = field(default_factory=dict)
    verified: dict[bytes, bool] = field(default_factory=dict)  # issuer key id -> signature ok

    def fresh(self, now: datetime) -> bool:
        return self.next_update is None or now <= self.next_update

    def signed_by(self, issuer: x509.Certificate) -> bool:
        kid = _keyid(issuer)
        ok = self.verified.get(kid)
        if ok is None:
            try:
                ok = self.crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError, UnsupportedAlgorithm):
                ok = False
            self.verified[kid] = ok
        return ok


def parse_crl(data: bytes, source: str) -> CrlEntry:
    """A CRL in DER or PEM; its signature is checked against the issuer when used."""
    try:
        if b"-----BEGIN" in data:
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc
        _ = crl.issuer.rfc4514_string()
        number = None
        for ext in crl.extensions:
            if isinstance(ext.value, x509.CRLNumber):
                number = ext.value.crl_number
            elif isinstance(ext.value, x509.DeltaCRLIndicator):
                raise RevocationError("delta CRLs are not supported")
            elif ext.critical:
                raise RevocationError(f"unsupported critical CRL extension {ext.oid}")
        revoked = {r.serial_number: r.revocation_date_utc for r in crl}
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RevocationError(f"not a CRL: {identity.printable(str(exc), 120)}") from None
    return CrlEntry(crl, source, this_update, next_update, number, revoked)


# -- OCSP -----------------------------------------------------------------------------------


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes) -> bytes:
    """A DER OCSPRequest for ``cert`` (SHA-1 CertID, as responders expect) with a nonce."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class OcspEntry:
    status: Status  # GOOD, REVOKED or UNKNOWN (the responder does not know it)
    source: str
    this_update: datetime
    next_update: datetime  # until when it is used
    revoked_at: datetime | None = None


def _responder_ok(resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> bool:
    """The response is signed by the issuer, or by a responder certificate the issuer
    issued for OCSP signing (RFC 6960 §4.2.2.2)."""
    data, sig, alg = resp.tbs_response_bytes, resp.signature, resp.signature_hash_algorithm
    if _verify(issuer.public_key(), sig, data, alg):
        return True
    for delegate in resp.certificates:
        try:
            delegate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            continue
        eku = _ext(delegate, x509.ExtendedKeyUsage)
        if (
            not isinstance(eku, x509.ExtendedKeyUsage)
            or ExtendedKeyUsageOID.OCSP_SIGNING not in eku
        ):
            continue
        if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
            continue
        if _verify(delegate.public_key(), sig, data, alg):
            return True
    return False


def check_ocsp_response(
    data: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes | None,
    now: datetime,
    source: str,
) -> OcspEntry:
    """The status an OCSP response gives ``cert``, after checking that it answers our
    request (CertID, nonce), is signed by someone allowed to and is fresh."""
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise RevocationError(f"not an OCSP response: {identity.printable(str(exc), 80)}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationError(f"responder answered {resp.response_status.name}")
    try:
        if not _responder_ok(resp, issuer, now):
            raise RevocationError(
                "response signature does not verify with the issuer or a responder it authorized"
            )
        got = None
        for ext in resp.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                got = ext.value.nonce
        # A nonce that differs is a replay or a mix-up. None at all is how RFC 5019
        # responders (pre-signed answers, most public CAs) answer: then thisUpdate and
        # nextUpdate bound the replay, as RFC 6960 §4.4.1 allows.
        if nonce is not None and got is not None and got != nonce:
            raise RevocationError("response nonce does not match our request")
        single = None
        want_key = _issuer_key_hash(issuer)
        for r in resp.responses:
            if r.serial_number != cert.serial_number:
                continue
            algo = type(r.hash_algorithm)
            if r.issuer_key_hash == want_key.get(algo) and r.issuer_name_hash == _name_hash(
                issuer, r.hash_algorithm
            ):
                single = r
                break
        if single is None:
            raise RevocationError("response does not answer for this certificate")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RevocationError(
            f"malformed OCSP response: {identity.printable(str(exc), 80)}"
        ) from None
    if this_update > now + CLOCK_SKEW:
        raise RevocationError(f"response thisUpdate {this_update} is in the future")
    if next_update is not None and next_update < now:
        raise RevocationError(f"response is stale (nextUpdate {next_update})")
    if next_update is None:
        if this_update < now - OCSP_NO_NEXT_UPDATE:
            raise RevocationError(f"response without nextUpdate is old (thisUpdate {this_update})")
        next_update = now + OCSP_NO_NEXT_UPDATE
    status = {
        ocsp.OCSPCertStatus.GOOD: Status.GOOD,
        ocsp.OCSPCertStatus.REVOKED: Status.REVOKED,
        ocsp.OCSPCertStatus.UNKNOWN: Status.UNKNOWN,
    }[single.certificate_status]
    revoked_at = single.revocation_time_utc if status is Status.REVOKED else None
    return OcspEntry(status, source, this_update, next_update, revoked_at)


def _issuer_key_hash(issuer: x509.Certificate) -> dict[type, bytes]:
    # the hash of the issuer's public key BIT STRING (RFC 6960 §4.1.1)
    der = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_bits = _spki_key_bits(der)
    out: dict[type, bytes] = {}
    for algo in (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512):
        h = hashes.Hash(algo())
        h.update(key_bits)
        out[algo] = h.finalize()
    return out


def _name_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(issuer.subject.public_bytes())
    return h.finalize()


def _spki_key_bits(der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's content (without the unused-bits octet)."""

    def header(buf: bytes, pos: int) -> tuple[int, int, int]:
        tag = buf[pos]
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[pos : pos + n], "big")
            pos += n
        return tag, pos, length

    _, pos, _ = header(der, 0)  # SubjectPublicKeyInfo SEQUENCE
    _, inner, alg_len = header(der, pos)  # AlgorithmIdentifier
    tag, bits, bits_len = header(der, inner + alg_len)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo without BIT STRING")
    return der[bits + 1 : bits + bits_len]


# -- the cache ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sources:
    """Where one connection looks, besides the certificate's own URIs (config)."""

    crl_files: tuple[str, ...] = ()
    crl_uris: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()  # replace the certificate's AIA responders


@dataclass
class RevocationCache:
    crls: dict[str, CrlEntry] = field(default_factory=dict)  # by source (URI or file)
    ocsp: dict[tuple[bytes, int], OcspEntry] = field(default_factory=dict)  # (issuer, serial)
    failures: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # source -> until
    inflight: set[tuple[str, str, int]] = field(default_factory=set)
    wanted: deque[Fetch] = field(default_factory=deque)
    # Health, for metrics and pikectl certs: per source, the last success and failure.
    fetched: dict[str, datetime] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    # -- what the runtime hands back ---------------------------------------------------------
    def add_crl(self, entry: CrlEntry, now: datetime) -> list[int]:
        """Store a CRL (a newer one replaces an older one from the same source); returns
        the serials it revokes that the one it replaced did not (for SA teardown)."""
        old = self.crls.get(entry.source)
        if (
            old
            and old.number is not None
            and entry.number is not None
            and entry.number < old.number
        ):
            raise RevocationError(f"CRL number {entry.number} is older than {old.number}")
        self.crls[entry.source] = entry
        self.failures.pop(entry.source, None)
        self.errors.pop(entry.source, None)
        self.fetched[entry.source] = now
        self.inflight.discard(("crl", entry.source, 0))
        before = old.revoked if old is not None else {}
        return [serial for serial in entry.revoked if serial not in before]

    def add_ocsp(self, fetch: Fetch, entry: OcspEntry, now: datetime) -> None:
        assert fetch.cert is not None and fetch.issuer is not None
        self.ocsp[(_keyid(fetch.issuer), fetch.cert.serial_number)] = entry
        if len(self.ocsp) % OCSP_PRUNE_EVERY == 0:  # answers past nextUpdate are never used
            for key in [k for k, e in self.ocsp.items() if e.next_update < now]:
                del self.ocsp[key]
        self.failures.pop(fetch.uri, None)
        self.errors.pop(fetch.uri, None)
        self.fetched[fetch.uri] = now
        self.inflight.discard(fetch.key)

    def failed(self, fetch: Fetch, why: str, now: datetime) -> None:
        self.failures[fetch.uri] = (now + FAILURE_HOLD, why)
        self.errors[fetch.uri] = why
        self.inflight.discard(fetch.key)

    def forget(self, keep_files: Iterable[str]) -> None:
        """After a reload: drop CRLs of files no longer configured."""
        keep = set(keep_files)
        for source in [s for s in self.crls if not _http(s) and s not in keep]:
            del self.crls[source]

    # -- the question ------------------------------------------------------------------------
    def peek(
        self, cert: x509.Certificate, issuer: x509.Certificate, sources: Sources, now: datetime
    ) -> Verdict:
        """``status`` without asking for any fetch (pikectl certs, metrics)."""
        return self.status(cert, issuer, sources, now, ask=False)

    def status(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        sources: Sources,
        now: datetime,
        ask: bool = True,
    ) -> Verdict:
        """The revocation status of ``cert`` (issued by ``issuer``) from memory; notes the
        fetches a PENDING or stale answer needs in ``wanted``."""
        kid = _keyid(issuer)
        serial = cert.serial_number
        ocsp_at = list(sources.ocsp_uris) or ocsp_uris(cert)
        crl_at = list(dict.fromkeys([*sources.crl_uris, *crl_uris(cert)]))
        has_uri = bool(ocsp_at or crl_at or sources.crl_files)
        failures: list[str] = []
        pending = False

        entry = self.ocsp.get((kid, serial))
        if entry is not None and now <= entry.next_update:
            if entry.status is Status.REVOKED:
                when = f" at {entry.revoked_at}" if entry.revoked_at else ""
                return Verdict(Status.REVOKED, f"ocsp {entry.source}", f"revoked{when}")
            if entry.status is Status.GOOD:
                return Verdict(Status.GOOD, f"ocsp {entry.source}")
            failures.append(f"ocsp {entry.source}: responder does not know the certificate")
        elif ocsp_at:
            uri = ocsp_at[0]
            state = self._ask(ask, Fetch("ocsp", uri, cert, issuer), now)
            if state is not None:
                failures.append(f"ocsp {uri}: {state}")
            else:
                pending = True

        # CRLs: files and fetched ones, by issuer; a revoked serial counts even if stale.
        good_from = ""
        stale: list[str] = []
        for source in [*sources.crl_files, *crl_at]:
            crl = self.crls.get(source)
            if crl is None:
                if _http(source):
                    state = self._ask(ask, Fetch("crl", source), now)
                    if state is not None:
                        failures.append(f"crl {source}: {state}")
                    else:
                        pending = True
                continue
            if crl.crl.issuer != cert.issuer or not crl.signed_by(issuer):
                continue
            at = crl.revoked.get(serial)
            if at is not None:
                return Verdict(Status.REVOKED, f"crl {source}", f"revoked at {at}")
            if crl.fresh(now):
                good_from = good_from or source
            else:
                stale.append(source)
                if _http(source):
                    self._ask(ask, Fetch("crl", source), now)
        if good_from:
            return Verdict(Status.GOOD, f"crl {good_from}")
        if pending:
            return Verdict(Status.PENDING, "", "fetching")
        failures.extend(f"crl {s}: stale (nextUpdate passed)" for s in stale)
        if failures or has_uri:
            detail = "; ".join(failures) or "no CRL or OCSP answer for its issuer"
            return Verdict(Status.FAILED, "", detail)
        return Verdict(Status.UNKNOWN, "", "no CRL or OCSP URI")

    def _ask(self, ask: bool, fetch: Fetch, now: datetime) -> str | None:
        """None: a fetch is (now) under way; else why the source failed recently."""
        fail = self.failures.get(fetch.uri)
        if fail is not None and now < fail[0]:
            return fail[1]
        if ask and fetch.key not in self.inflight:
            self.inflight.add(fetch.key)
            self.wanted.append(fetch)
        return None

    def revokes(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> str | None:
        """A held CRL or OCSP answer that says ``cert`` is revoked: its source, else None."""
        entry = self.ocsp.get((_keyid(issuer), cert.serial_number))
        if entry is not None and entry.status is Status.REVOKED:
            return f"ocsp {entry.source}"
        for source, crl in self.crls.items():
            if crl.crl.issuer != cert.issuer or not crl.signed_by(issuer):
                continue
            if cert.serial_number in crl.revoked:
                return f"crl {source}"
        return None


# -- the decision ---------------------------------------------------------------------------


# Given a peer's validated path (end entity first): why it is revoked now, or None.
RevokedCheck = Callable[[tuple[x509.Certificate, ...]], str | None]


def revoked_check(cache: RevocationCache, now: datetime) -> RevokedCheck:
    """What the engines' ``drop_revoked`` is given: the cache's word on a held path."""

    def check(path: tuple[x509.Certificate, ...]) -> str | None:
        for cert, issuer in itertools.pairwise(path):
            source = cache.revokes(cert, issuer, now)
            if source is not None:
                return f"serial {serial_text(cert.serial_number)} revoked ({source})"
        return None

    return check


class RevocationPending(Exception):
    """The status is being fetched: this exchange is not answered yet."""


def decide(policy: Policy, verdict: Verdict, cert: x509.Certificate) -> str | None:
    """Why ``policy`` refuses ``cert`` given ``verdict``, or None (accepted). PENDING
    raises RevocationPending."""
    status = verdict.status
    name = f"'{_subject(cert)}' (serial {serial_text(cert.serial_number)})"
    if status is Status.PENDING:
        raise RevocationPending(f"revocation status of {name} is being fetched")
    if status is Status.REVOKED:
        return f"certificate {name} is revoked ({verdict.detail}, {verdict.source})"
    if status is Status.GOOD:
        return None
    if policy == "strict":
        return f"revocation status of {name} unknown under revocation = strict ({verdict.detail})"
    if policy == "ifuri" and status is Status.FAILED:
        return (
            f"revocation status of {name} could not be fetched under revocation = ifuri "
            f"({verdict.detail})"
        )
    return None


def check_path(
    cache: RevocationCache,
    path: Sequence[x509.Certificate],
    policy: Policy,
    sources: Sources,
    now: datetime,
) -> list[Verdict]:
    """Check every certificate of a validated ``path`` (end entity first, trust anchor
    last) but the anchor against its issuer. Raises RevocationRefused or
    RevocationPending; returns the verdicts for the log."""
    verdicts = []
    pending: RevocationPending | None = None
    for cert, issuer in itertools.pairwise(path):
        verdict = cache.status(cert, issuer, sources, now)
        try:
            why = decide(policy, verdict, cert)
        except RevocationPending as exc:
            pending = pending or exc  # ask for the others' statuses in the same round
            continue
        if why is not None:
            raise RevocationRefused(why, verdict, cert)
        verdicts.append(verdict)
    if pending is not None:
        raise pending
    return verdicts


class RevocationRefused(Exception):
    def __init__(self, why: str, verdict: Verdict, cert: x509.Certificate) -> None:
        super().__init__(why)
        self.verdict = verdict
        self.cert = cert
