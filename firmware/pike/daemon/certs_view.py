"""The certificates piked holds and their revocation state, as JSON (``pikectl certs``)
and as what the metrics read (``pike_certificate_expiry_timestamp_seconds`` and the CRL /
OCSP health series).

Roles: ``local`` (our chain, per connection, with what the CRLs and OCSP answers held
say of our certificate), ``ca`` (the CAs a connection trusts for its
peer), ``peer`` (the validated end entity of each live IKE SA, with the revocation status
the cache holds for it now).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from pike.policy.config import Config
from pike.sa import identity
from pike.sa.credentials import CredentialError, CredentialStore
from pike.sa.revocation_status import serial_text

JsonDict = dict[str, Any]
# (connection, the peer's validated path, end entity first) of each live IKE SA
PeerPaths = Iterable[tuple[str, tuple[x509.Certificate, ...]]]


def _subject(cert: x509.Certificate) -> str:
    return identity.printable(cert.subject.rfc4514_string())


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _cert(conn: str, role: str, cert: x509.Certificate) -> JsonDict:
    return {
        "connection": conn,
        "role": role,
        "subject": _subject(cert),
        "issuer": identity.printable(cert.issuer.rfc4514_string()),
        "serial": serial_text(cert.serial_number),
        "not_before": cert.not_valid_before_utc.timestamp(),
        "not_after": cert.not_valid_after_utc.timestamp(),
    }


def _local(
    name: str,
    chain: tuple[x509.Certificate, ...],
    config: Config,
    store: CredentialStore,
    now: datetime,
) -> JsonDict:
    """Our certificate, with what the CRLs and OCSP answers held say of it (never a
    fetch of its own): its issuer from our chain, else from the CAs loaded."""
    entry = _cert(name, "local", chain[0])
    issuer = chain[1] if len(chain) > 1 else _issuer_of(chain[0], config, store)
    if issuer is None:
        entry["revocation"] = "unknown"
        entry["revocation_source"] = "its CA certificate is not loaded"
    else:
        verdict = store.revocation.held(chain[0], issuer, now)
        entry["revocation"] = verdict.status.value
        entry["revocation_source"] = verdict.source or verdict.detail
    return entry


def _issuer_of(
    cert: x509.Certificate, config: Config, store: CredentialStore
) -> x509.Certificate | None:
    for conn in config.connections.values():
        if conn.remote.auth != "pubkey":
            continue
        try:
            cas = store.cas(conn)
        except CredentialError:
            continue
        for ca in cas:
            if ca.subject == cert.issuer:
                try:
                    cert.verify_directly_issued_by(ca)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return ca
    return None


def certificates(
    config: Config, store: CredentialStore, peers: PeerPaths, wall: float
) -> list[JsonDict]:
    """Every certificate in use, one entry per (connection, role, certificate); peers
    carry ``revocation`` (good, revoked, unknown, failed, pending) and its ``source``."""
    out: list[JsonDict] = []
    now = datetime.fromtimestamp(wall, UTC)
    for conn in config.connections.values():
        try:
            if conn.local.auth == "pubkey":
                out.append(_local(conn.name, store.local(conn).chain, config, store, now))
            if conn.remote.auth == "pubkey":
                out.extend(_cert(conn.name, "ca", c) for c in store.cas(conn))
        except CredentialError:
            continue  # reported by check-config and at load
    seen: set[tuple[str, int]] = set()
    for name, path in peers:
        if not path or (name, path[0].serial_number) in seen:
            continue
        seen.add((name, path[0].serial_number))
        entry = _cert(name, "peer", path[0])
        peer_conn = config.connections.get(name)
        if len(path) > 1 and peer_conn is not None:
            sources = store.revocation_sources(peer_conn)
            verdict = store.revocation.peek(path[0], path[1], sources, now)
            entry["revocation"] = verdict.status.value
            entry["revocation_source"] = verdict.source or verdict.detail
        out.append(entry)
    return out


def crls(store: CredentialStore) -> list[JsonDict]:
    """The CRLs held: where from, whose, when issued and due, how many revoked."""
    cache = store.revocation
    out = []
    for source, entry in sorted(cache.crls.items()):
        out.append(
            {
                "source": source,
                "issuer": identity.printable(entry.crl.issuer.rfc4514_string()),
                "this_update": _ts(entry.this_update),
                "next_update": _ts(entry.next_update),
                "number": entry.number,
                "revoked": len(entry.revoked),
                "fetched_at": _ts(cache.fetched.get(source)),
                "error": cache.errors.get(source),
            }
        )
    return out


def sources(store: CredentialStore) -> list[JsonDict]:
    """Each CRL URI and OCSP responder asked: last success and the last error."""
    cache = store.revocation
    names = sorted(set(cache.fetched) | set(cache.errors))
    return [
        {
            "source": s,
            "fetched_at": _ts(cache.fetched.get(s)),
            "error": cache.errors.get(s),
        }
        for s in names
    ]
