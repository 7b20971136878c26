"""Revocation of the peer's certificates: CRLs (RFC 5280 §5) and OCSP (RFC 6960).

Sans-I/O. ``RevocationCache`` holds the CRLs and OCSP answers the runtime fetched (and
the CRL files the config names) and answers ``status`` from memory only. A status it does
not hold yet is PENDING: the cache notes a ``Fetch`` in ``wanted``, the runtime
(``pike.daemon.revocation``) drains it, fetches off the event loop with bounded time and
size, and hands the bytes back (``add_crl``, ``add_ocsp``) or the failure (``failed``).
The exchange that met PENDING is not answered (the peer's retransmission, or ours, asks
again once the answer is in), so no engine ever waits on I/O.

The parts live beside it: ``pike.sa.crl`` (CRLs), ``pike.sa.ocsp`` (OCSP requests and
response checks), ``pike.sa.cert_fields`` (the URIs a certificate names),
``pike.sa.revocation_status`` (Status, Verdict).

What a status means for the authentication is strongSwan's ``revocation`` policy
(``decide``): ``strict`` fails unless the certificate is known to be good, ``ifuri`` fails
when a CRL or OCSP URI exists but no status could be had, ``relaxed`` (the default) fails
only on a certificate known to be revoked.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

from pike.sa.cert_fields import crl_uris, delta_crl_uris, is_http, keyid, ocsp_uris
from pike.sa.crl import CrlEntry, revoked_by
from pike.sa.revocation_status import (
    RevocationError,
    Status,
    Verdict,
    serial_text,
    subject_text,
)

if TYPE_CHECKING:
    from datetime import datetime  # imported where a time is made (idle RSS)

    # only annotations here: cryptography.x509 and the OCSP module load with the first
    # certificate (idle RSS, docs/performance.md)
    from cryptography import x509

    from pike.sa.ocsp import OcspEntry

Policy = Literal["strict", "ifuri", "relaxed"]
POLICIES: tuple[Policy, ...] = ("strict", "ifuri", "relaxed")

# How long a failed fetch stands for its URI (the retransmission that follows it must see
# the failure, not start another fetch).
FAILURE_HOLD = 60.0  # seconds
OCSP_PRUNE_EVERY = 1024  # held answers: expired ones are dropped at each multiple


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


# -- the cache ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sources:
    """Where one connection looks, besides the certificate's own URIs (config)."""

    crl_files: tuple[str, ...] = ()
    crl_uris: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()  # replace the certificate's AIA responders
    # [authorities.NAME]: per CA (its key id), where what it issued is looked up
    authorities: tuple[Authority, ...] = ()

    def of_issuer(self, kid: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The (CRL, OCSP) URIs the authorities give for certificates of issuer ``kid``."""
        crls: list[str] = []
        ocsps: list[str] = []
        for a in self.authorities:
            if a.keyid == kid:
                crls.extend(a.crl_uris)
                ocsps.extend(a.ocsp_uris)
        return tuple(crls), tuple(ocsps)


@dataclass(frozen=True, slots=True)
class Authority:
    """strongSwan's ``authorities`` entry: revocation URIs for one CA's certificates."""

    keyid: bytes  # keyid() of the CA certificate
    crl_uris: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()


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
        self.ocsp[(keyid(fetch.issuer), fetch.cert.serial_number)] = entry
        if len(self.ocsp) % OCSP_PRUNE_EVERY == 0:  # answers past nextUpdate are never used
            for key in [k for k, e in self.ocsp.items() if e.next_update < now]:
                del self.ocsp[key]
        self.failures.pop(fetch.uri, None)
        self.errors.pop(fetch.uri, None)
        self.fetched[fetch.uri] = now
        self.inflight.discard(fetch.key)

    def failed(self, fetch: Fetch, why: str, now: datetime) -> None:
        from datetime import timedelta

        self.failures[fetch.uri] = (now + timedelta(seconds=FAILURE_HOLD), why)
        self.errors[fetch.uri] = why
        self.inflight.discard(fetch.key)

    def forget(self, keep_files: Iterable[str]) -> None:
        """After a reload: drop CRLs of files no longer configured."""
        keep = set(keep_files)
        for source in [s for s in self.crls if not is_http(s) and s not in keep]:
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
        kid = keyid(issuer)
        serial = cert.serial_number
        ca_crls, ca_ocsps = sources.of_issuer(kid)
        # OCSP: the connection's responders, else the CA's, else the certificate's AIA
        ocsp_at = list(sources.ocsp_uris or ca_ocsps) or ocsp_uris(cert)
        crl_at = list(dict.fromkeys([*sources.crl_uris, *ca_crls, *crl_uris(cert)]))
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

        # CRLs: files and fetched ones, complete and delta, by issuer; a revoked serial
        # counts even if stale.
        bases: list[CrlEntry] = []
        deltas: list[CrlEntry] = []
        todo = [*sources.crl_files, *crl_at, *delta_crl_uris(cert)]
        seen: set[str] = set()
        while todo:
            source = todo.pop(0)
            if source in seen:
                continue
            seen.add(source)
            crl = self.crls.get(source)
            if crl is None:
                if is_http(source):
                    state = self._ask(ask, Fetch("crl", source), now)
                    if state is not None:
                        failures.append(f"crl {source}: {state}")
                    else:
                        pending = True
                continue
            if crl.crl.issuer != cert.issuer or not crl.signed_by(issuer):
                continue
            if crl.delta_base is None:
                bases.append(crl)
                todo.extend(crl.delta_uris)  # the delta CRLs it names (freshestCRL)
            else:
                deltas.append(crl)
        hit = revoked_by(serial, bases, deltas)
        if hit is not None:
            return Verdict(Status.REVOKED, f"crl {hit[0].source}", f"revoked at {hit[1]}")
        good_from = _current(bases, deltas, now)
        if good_from:
            return Verdict(Status.GOOD, f"crl {good_from}")
        stale = [c.source for c in [*bases, *deltas] if not c.fresh(now)]
        for source in stale:
            if is_http(source):
                self._ask(ask, Fetch("crl", source), now)
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

    def held(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> Verdict:
        """What the CRLs and OCSP answers held say of ``cert``, whatever source fetched
        them, without asking for anything (our own certificate: its CA's CRL is there
        when a peer of the same CA needed it)."""
        revoked = self.revokes(cert, issuer, now)
        if revoked is not None:
            return Verdict(Status.REVOKED, revoked)
        entry = self.ocsp.get((keyid(issuer), cert.serial_number))
        if entry is not None and entry.status is Status.GOOD and now <= entry.next_update:
            return Verdict(Status.GOOD, f"ocsp {entry.source}")
        good_from = _current(*self._of_issuer(cert, issuer), now)
        if good_from:
            return Verdict(Status.GOOD, f"crl {good_from}")
        return Verdict(Status.UNKNOWN, "", "no fresh CRL or OCSP answer of its CA held")

    def revokes(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> str | None:
        """A held CRL or OCSP answer that says ``cert`` is revoked: its source, else None."""
        entry = self.ocsp.get((keyid(issuer), cert.serial_number))
        if entry is not None and entry.status is Status.REVOKED:
            return f"ocsp {entry.source}"
        hit = revoked_by(cert.serial_number, *self._of_issuer(cert, issuer))
        return None if hit is None else f"crl {hit[0].source}"

    def _of_issuer(
        self, cert: x509.Certificate, issuer: x509.Certificate
    ) -> tuple[list[CrlEntry], list[CrlEntry]]:
        """The complete and the delta CRLs held that ``issuer`` signed for ``cert``."""
        bases: list[CrlEntry] = []
        deltas: list[CrlEntry] = []
        for _, crl in sorted(self.crls.items()):
            if crl.crl.issuer == cert.issuer and crl.signed_by(issuer):
                (bases if crl.delta_base is None else deltas).append(crl)
        return bases, deltas


def _current(bases: list[CrlEntry], deltas: list[CrlEntry], now: datetime) -> str:
    """The source of a current CRL answer: a fresh complete CRL, or a stale one that a
    fresh delta CRL updates (what deltas are for); "" when there is none."""
    for base in bases:
        if base.fresh(now):
            return base.source
    for base in bases:
        for delta in deltas:
            if delta.fresh(now) and delta.applies_to(base):
                return f"{base.source} + delta {delta.source}"
    return ""


# -- the decision ---------------------------------------------------------------------------


# Given a peer's validated path (end entity first): why it is revoked now, or None.
RevokedCheck: TypeAlias = "Callable[[tuple[x509.Certificate, ...]], str | None]"


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
    name = f"'{subject_text(cert)}' (serial {serial_text(cert.serial_number)})"
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
