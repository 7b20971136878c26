"""A message waiting for its peer's CERT chain to be checked off the event loop
(``CheckChain``), for both IKE versions: what is parked, which CAs it may chain to, and
the verdict once the runtime answered. IKEv2: ``pike.ikev2.chain_wait``; IKEv1: its
engine parks a phase-1 message and feeds the same datagram again after the answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from pike.policy.config import ConnectionConfig
from pike.sa.actions import Address
from pike.sa.certs import MAX_CERT_PAYLOADS, CertError, parse_cert_payloads
from pike.sa.credentials import CredentialError, CredentialStore
from pike.wire.constants import CertEncoding
from pike.wire.payloads import CertPayload, Message

if TYPE_CHECKING:
    from cryptography import x509

_DER = serialization.Encoding.DER


@dataclass(slots=True)
class ChainWait:
    ref: int  # the CheckChain's
    message_id: int
    response: bool
    msg: Message | None  # IKEv2: the message handed on once answered (IKEv1: None)
    data: bytes
    src: Address
    dst: Address
    certs: tuple[bytes, ...]
    anchors: tuple[bytes, ...]
    result: tuple[int, ...] | Exception | None = None


def offloadable(payloads: Sequence[CertPayload]) -> bool:
    """Worth a round trip: some certificates, not more than accepted, all X.509 (else
    the inline check refuses them at once, without the work)."""
    if not payloads or len(payloads) > MAX_CERT_PAYLOADS:
        return False
    return all(p.encoding == CertEncoding.X509_SIGNATURE for p in payloads)


def trust_key(conn: ConnectionConfig) -> Hashable:
    """What decides a connection's anchors: ``Candidates.distinct(trust_key)`` gives one
    connection per distinct set (built once per config: a hub with thousands of
    connections sharing a CA pays one, not thousands, per IKE_AUTH)."""
    return conn.remote.auth == "pubkey", conn.remote.cacerts


def anchors_of(store: CredentialStore, conns: Iterable[ConnectionConfig]) -> tuple[bytes, ...]:
    """The CA certificates (DER) of the pubkey connections a message may be for."""
    anchors: dict[bytes, None] = {}
    for cacerts in {tuple(c.remote.cacerts) for c in conns if c.remote.auth == "pubkey"}:
        for path in cacerts:
            try:
                for ca in store.cas_of(path):
                    anchors[ca.public_bytes(_DER)] = None
            except CredentialError:
                continue  # reported when that connection is chosen
    return tuple(anchors)


def verdict(
    wait: ChainWait | None, certs: tuple[bytes, ...], cas: tuple[x509.Certificate, ...]
) -> list[x509.Certificate] | None:
    """The path of ``certs`` as checked off the loop, from the end entity to the trusted
    CA (as ``validate_chain`` returns it: revocation checks every certificate of it); None
    when no answer for these certificates is in. Raises CertError when the check failed or
    the path ends at a CA the chosen connection (``cas``) does not trust."""
    if wait is None or wait.result is None or wait.certs != certs:
        return None
    if isinstance(wait.result, Exception):
        if isinstance(wait.result, CertError):
            raise wait.result
        raise CertError(f"certificate check failed: {wait.result}")
    pool = (*wait.certs, *wait.anchors)
    try:
        top = pool[wait.result[-1]]
    except IndexError:
        raise CertError("certificate check answered no path") from None
    anchor = next((c for c in cas if c.public_bytes(_DER) == top), None)
    if anchor is None:
        raise CertError("the chain ends at a CA this connection does not trust")
    if not wait.result or wait.result[0] != 0:
        raise CertError("certificate check answered a path not from the end entity")
    try:
        between = [pool[i] for i in wait.result[:-1]]
    except IndexError:
        raise CertError("certificate check answered no path") from None
    chain = parse_cert_payloads([CertPayload(CertEncoding.X509_SIGNATURE, d) for d in between])
    return [*chain, anchor]
