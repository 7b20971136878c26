"""Credentials of the pubkey connections: our chain and signer, the CAs we trust.

One store per daemon (or per ``pikectl check-config``), made by its owner and given to the
engines, which reach it as ``ctx.credentials`` (docs/architecture.md); no module globals.
Certificates are loaded once per file, by ``preload`` when the config is loaded (piked's
start, reload; an engine built without it loads a file at its first use) and kept.
The engine stays free of key custody: it reads certificates only (``local``: the key type
comes from our certificate) and asks for a signature with a ``SignRequest`` action; the
runtime answers it with ``sign`` off the event loop (a token round trip blocks).
``signer_factory`` turns a config ``key`` into a Signer (``pkcs11:`` URIs become token
signers, anything else a file key), and ``clock`` turns the engine's ``now`` (monotonic)
into the wall-clock time certificates are checked at (piked: its clock; tests: fixed).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pike.hsm.signer import (
    KeyType,
    SignatureScheme,
    Signer,
    SignerError,
    TokenSigner,
    TokenState,
    key_type_of,
    token_signer,
)
from pike.policy.config import Config, ConnectionConfig
from pike.sa.cert_error import CertError
from pike.sa.cert_fields import keyid
from pike.sa.revocation import (
    Authority,
    RevocationCache,
    RevocationRefused,
    Sources,
    check_path,
)
from pike.sa.revocation_status import RevocationError, Verdict, serial_text

if TYPE_CHECKING:
    from datetime import datetime  # imported where a time is read (idle RSS)

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

log = logging.getLogger("pike.revocation")

MAX_CRL_FILE = 16 * 1024 * 1024
SignerFactory = Callable[[str], Signer]
Clock = Callable[[float], "datetime"]  # the engine's now (monotonic) -> wall-clock time


class CredentialError(Exception):
    """A configured certificate or key cannot be used (the text names the file)."""


def file_signer(key: str) -> Signer:
    """A token signer for an RFC 7512 ``pkcs11:`` URI, else a PEM key file."""
    if key[:7].lower() == "pkcs11:":  # the scheme is case-insensitive (RFC 7512)
        # Imported here, the one place: python-pkcs11 loads only for a token key.
        from pike.hsm.pkcs11 import Pkcs11Signer
        from pike.hsm.uri import UriError

        try:
            return Pkcs11Signer(key)
        except UriError as exc:
            raise SignerError(f"bad PKCS#11 URI: {exc}") from None
    from pike.hsm.filekey import FileKeySigner  # deferred: a key file is configured

    return FileKeySigner(key)


def _stamp(path: str) -> tuple[int, int] | None:
    """(mtime, size) of a file, None when it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def wall_clock(now: float) -> datetime:
    """Without a daemon clock (check-config, tests): the system's time, whatever ``now``."""
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _spki(key: PublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key."""
    # cryptography's serialization (0.9 MiB with ssh, dsa, ...): with certificates only
    from cryptography.hazmat.primitives import serialization

    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(der, spki)


@dataclass(frozen=True, slots=True)
class LocalCredentials:
    chain: tuple[x509.Certificate, ...]  # our end entity first
    key: str  # the configured key: a pkcs11: URI or a PEM file
    key_type: KeyType  # of our certificate's key, which the key must match
    spki: bytes  # our certificate's SubjectPublicKeyInfo (DER)


@dataclass
class CredentialStore:
    signer_factory: SignerFactory = file_signer
    clock: Clock = wall_clock
    _certs: dict[str, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    _stamps: dict[str, tuple[int, int] | None] = field(default_factory=dict, repr=False)
    _signers: dict[str, Signer] = field(default_factory=dict)
    # The SPKI (DER) of each signer's public key, which never changes for one signer
    # object: encoding it costs about as much as pike's whole signing path, per signature.
    _spkis: dict[str, tuple[Signer, bytes]] = field(default_factory=dict, repr=False)
    # ``sign`` runs in executor threads while the loop reads states: guards _signers.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # CRLs and OCSP answers (pike.sa.revocation): the runtime fills it, checks read it.
    revocation: RevocationCache = field(default_factory=RevocationCache)
    # CRL files by path: their bytes when read (a reload reads them again).
    _crl_files: dict[str, bytes] = field(default_factory=dict, repr=False)
    _crl_stamps: dict[str, tuple[int, int] | None] = field(default_factory=dict, repr=False)
    # [authorities.NAME] of the config loaded, by CA key id (load_authorities)
    authorities: tuple[Authority, ...] = ()

    def wall(self, now: float) -> datetime:
        """The wall-clock time at the engine's ``now``, for certificate validity."""
        return self.clock(now)

    def _load(self, path: str) -> tuple[x509.Certificate, ...]:
        # deferred: cryptography.x509 loads with the first certificate (idle RSS)
        from pike.sa.certs import load_certificates

        if path not in self._certs:
            try:
                self._stamps[path] = _stamp(path)
                self._certs[path] = tuple(load_certificates(path))
            except CertError as exc:
                raise CredentialError(str(exc)) from None
        return self._certs[path]

    def _forget_changed(self) -> None:
        """A reload: certificate files replaced since they were read are read again (a
        renewed certificate under the same name); the config is unchanged, so are the
        tunnels: the next authentication uses the new file."""
        for path in list(self._certs):
            if _stamp(path) != self._stamps.get(path):
                del self._certs[path]

    def local(self, conn: ConnectionConfig) -> LocalCredentials:
        """Our chain and key reference for ``conn`` (``local.auth = "pubkey"``).

        Reads certificate files only, never the key (which may be in a token): the key is
        checked against the certificate by ``preload`` and again by ``sign``."""
        cfg = conn.local
        if not cfg.certs or not cfg.key:
            raise CredentialError(f"{conn.name}: local pubkey auth needs certs and key")
        chain = tuple(c for path in cfg.certs for c in self._load(path))
        if not chain:
            raise CredentialError(f"{conn.name}: no certificate in {cfg.certs[0]}")
        public = chain[0].public_key()
        kind = key_type_of(public)
        if kind is None:
            raise CredentialError(
                f"{conn.name}: certificate {cfg.certs[0]} has an unsupported key "
                "(RSA, ECDSA P-256/P-384/P-521 or Ed25519 only)"
            )
        return LocalCredentials(chain, cfg.key, kind, _spki(public))

    def signer(self, key: str) -> Signer:
        """The Signer of a configured key, made once (thread-safe; no token I/O)."""
        with self._lock:
            signer = self._signers.get(key)
            if signer is None:
                try:
                    signer = self.signer_factory(key)
                except SignerError as exc:
                    raise CredentialError(str(exc)) from None
                self._signers[key] = signer
            return signer

    def sign(self, key: str, spki: bytes, data: bytes, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` with ``key``, which must belong to the certificate whose public
        key is ``spki``. Blocking (a token round trip): the runtime calls it off the event
        loop. Raises CredentialError or SignerError (TokenUnavailable: fail closed)."""
        known = self._spkis.get(key)
        # Lock-free when nothing changed: one dict read is atomic, and a signer replaced
        # meanwhile (first use, reload) takes the locked path and is encoded again.
        if known is None or self._signers.get(key) is not known[0]:
            signer = self.signer(key)
            known = self._spkis[key] = (signer, _spki(signer.public_key()))
        if known[1] != spki:
            raise CredentialError(f"key {key} does not belong to our certificate")
        return known[0].sign(data, scheme)

    def cas_of(self, path: str) -> tuple[x509.Certificate, ...]:
        """The certificates of one ``cacerts`` file."""
        return self._load(path)

    def cas(self, conn: ConnectionConfig) -> tuple[x509.Certificate, ...]:
        """The CA certificates ``conn`` trusts for the peer (``remote.cacerts``)."""
        return tuple(c for path in conn.remote.cacerts for c in self._load(path))

    def revocation_sources(self, conn: ConnectionConfig) -> Sources:
        r = conn.remote
        return Sources(r.crls, r.crl_uris, r.ocsp_uris, self.authorities)

    def load_authorities(self, config: Config) -> list[tuple[str, str]]:
        """The ``[authorities.NAME]`` CA certificates, read (again) at each load (once
        per config, not per connection as ``preload``); the problems as (NAME, why),
        which refuse the config."""
        out: list[Authority] = []
        problems = []
        self._forget_changed()  # a CA certificate replaced under the same name
        for a in config.authorities:
            try:
                certs = self._load(a.cacert)
            except CredentialError as exc:
                problems.append((a.name, str(exc)))
                continue
            out.extend(Authority(keyid(c), a.crl_uris, a.ocsp_uris) for c in certs)
        if not problems:  # a refused config (reload) leaves the running one's in place
            self.authorities = tuple(out)
        return problems

    def check_revocation(
        self, conn: ConnectionConfig, path: Sequence[x509.Certificate], now: float
    ) -> list[Verdict]:
        """The revocation check of a validated peer ``path`` under ``conn``'s policy,
        from the cache only (no I/O: a status not held yet raises RevocationPending and
        asks the runtime for it). A refusal is logged at WARNING naming serial and source
        and raised as CredentialError. Callable from wherever chains are validated."""
        try:
            return check_path(
                self.revocation,
                path,
                conn.remote.revocation,
                self.revocation_sources(conn),
                self.wall(now),
            )
        except RevocationRefused as exc:
            log.warning(
                "%s: peer certificate serial %s refused by revocation check: %s",
                conn.name,
                serial_text(exc.cert.serial_number),
                exc,
            )
            raise CredentialError(str(exc)) from None

    def load_crl_files(self, config: Config) -> list[str]:
        """(Re)read the CRL files ``config`` names; the problems, one line each. An
        unchanged file keeps its entry (and its checked signatures); the owner drops the
        files no longer configured (``RevocationCache.forget``) once the whole config is
        loaded."""
        return self._read_crl_files(config)[0]

    def reread_crl_files(self, config: Config) -> tuple[list[str], bool]:
        """The background check: CRL files replaced since they were read are read again;
        (the problems, whether any CRL changed)."""
        return self._read_crl_files(config)

    def _read_crl_files(self, config: Config) -> tuple[list[str], bool]:
        problems = []
        changed = False
        wanted = {f for c in config.connections.values() for f in c.remote.crls}
        for path in sorted(wanted):
            stamp = _stamp(path)
            if (
                stamp is not None
                and stamp == self._crl_stamps.get(path)
                and path in self.revocation.crls
            ):
                continue  # not touched since it was read
            try:
                with open(path, "rb") as f:
                    data = f.read(MAX_CRL_FILE + 1)
                if len(data) > MAX_CRL_FILE:
                    raise RevocationError(f"larger than {MAX_CRL_FILE} bytes")
                if self._crl_files.get(path) == data and path in self.revocation.crls:
                    self._crl_stamps[path] = stamp
                    continue
                from datetime import UTC, datetime

                from pike.sa.crl import parse_crl  # deferred: CRL files are configured

                self.revocation.add_crl(parse_crl(data, path), datetime.now(UTC))
                self._crl_files[path] = data
                self._crl_stamps[path] = stamp
                changed = True
            except (OSError, RevocationError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                problems.append(f"CRL {path}: {why}")
        return problems, changed

    def preload(self, config: Config, probe: bool = True) -> list[str]:
        """Load every connection's credentials now; returns the problems (one line each).

        ``probe=False`` (piked): no token I/O here; a token key not looked at yet is left
        to ``probe_key`` in a signing thread (``unprobed`` lists them)."""
        problems = []
        self._forget_changed()
        for conn in config.connections.values():
            try:
                if conn.local.auth == "pubkey" and self._token_down(conn, probe):
                    continue  # logged by the token; IKE_AUTH fails closed until it is back
                if conn.local.auth == "pubkey":
                    self._check_key(conn)
                if conn.remote.auth == "pubkey":
                    self.cas(conn)
            except CredentialError as exc:
                problems.append(f"{conn.name}: {exc}")
        problems.extend(self.load_crl_files(config))
        return problems

    def _check_key(self, conn: ConnectionConfig) -> None:
        creds = self.local(conn)
        try:
            public = _spki(self.signer(creds.key).public_key())
        except SignerError as exc:  # the token is not there (yet): fail closed
            raise CredentialError(f"{conn.name}: key unavailable: {exc}") from None
        if public != creds.spki:
            raise CredentialError(
                f"{conn.name}: key {creds.key} does not belong to certificate {conn.local.certs[0]}"
            )

    def _token_down(self, conn: ConnectionConfig, probe: bool = True) -> bool:
        """Probe a token key at start: a token that is absent, locked or refuses the PIN
        does not stop piked (its state is shown); a bad URI does (CredentialError).

        A token already looked at (a reload) keeps its state without a call: the call
        would wait for the module's lock, held by a signature that may hang. Without
        ``probe``, a key not looked at yet (or whose public key is not known) is down."""
        key = conn.local.key
        if not key or not key.lower().startswith("pkcs11:"):
            return False
        signer = token_signer(self.signer(key))
        if signer is not None:
            if not probe and not (signer.probed and signer.public_known):
                return True
            if signer.state is TokenState.UNKNOWN:
                signer.probe()
            return signer.state is not TokenState.READY
        return False

    def unprobed(self) -> list[str]:
        """The token keys in use that no probe has looked at yet."""
        return [k for k, s in self._token_keys() if not s.probed]

    def _token_keys(self) -> list[tuple[str, TokenSigner]]:
        with self._lock:
            signers = list(self._signers.items())
        return [(k, t) for k, s in signers if (t := token_signer(s)) is not None]

    def probe_key(self, key: str, config: Config | None) -> list[str]:
        """In a signing thread: reach the token and the key now (the token logs its
        state), then check the key against the certificate of each of ``config``'s
        connections that uses it; the problems, one line each."""
        signer = self.signer(key)
        probe = getattr(signer, "probe", None)
        if probe is not None:
            probe()
        problems = []
        for conn in [] if config is None else config.connections.values():
            if conn.local.auth != "pubkey" or conn.local.key != key:
                continue
            try:
                if not self._token_down(conn, probe=False):
                    self._check_key(conn)
            except CredentialError as exc:
                problems.append(f"{conn.name}: {exc}")
        return problems

    def token_states(self) -> dict[str, TokenState]:
        """State of each token key in use, by configured key URI (for metrics/status)."""
        return {k: s.state for k, s in self._token_keys()}

    def token_signers(self) -> list[TokenSigner]:
        """The token keys in use (for a re-probe on hot-plug)."""
        return [s for _, s in self._token_keys()]

    def tokens(self) -> dict[str, str]:
        """State of each token in use, by token label (metrics: no module path, no PIN)."""
        return {s.uri.token or "*": s.state.value for _, s in self._token_keys()}
