"""IKE_SA_INIT additions for certificate authentication (RFC 7427 §4, RFC 7296 §3.7):
steps of the ike_init task, both roles.

Both roles send N(SIGNATURE_HASH_ALGORITHMS) when a connection uses public keys, and
record the peer's list: ike_auth signs with RFC 7427 (method 14) only when the peer sent
one. The responder also asks for certificates here (CERTREQ in its IKE_SA_INIT response,
as strongSwan does): a strongSwan initiator with ``send_cert = ifasked`` (its default)
sends its certificate only when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from pike.ikev2.log import log
from pike.ikev2.pubkey import decode_hash_algorithms, encode_hash_algorithms
from pike.policy.config import ConnectionConfig
from pike.sa.certs import certreq_payload
from pike.sa.credentials import CredentialError
from pike.wire.constants import NotifyType
from pike.wire.payloads import Message, NotifyPayload

if TYPE_CHECKING:
    from cryptography import x509

    from pike.ikev2.ike_sa import IkeSa

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_SIGNATURE_HASH_ALGORITHMS = NotifyType.SIGNATURE_HASH_ALGORITHMS

# The peer's SIGNATURE_HASH_ALGORITHMS per IKE SA (absent: it sent none). A side table so
# that IkeSa needs no field for it; it goes with the SA.
_PEER_HASHES: WeakKeyDictionary[IkeSa, frozenset[int]] = WeakKeyDictionary()


def peer_hashes(sa: IkeSa) -> frozenset[int] | None:
    """The hash algorithms the peer announced in IKE_SA_INIT, None if it sent none."""
    return _PEER_HASHES.get(sa)


def uses_pubkey(conn: ConnectionConfig) -> bool:
    return "pubkey" in (conn.local.auth, conn.remote.auth)


def _conns(sa: IkeSa, initiator: bool) -> Sequence[ConnectionConfig]:
    """The connections the announcement is for: the responder's candidates, or ours."""
    if not initiator and sa.candidates:
        return sa.candidates.pubkey()
    return [sa.conn] if sa.conn is not None and uses_pubkey(sa.conn) else []


def announce_hashes(sa: IkeSa, msg: Message, initiator: bool) -> None:
    """Our hash algorithms when a connection uses public keys; the responder's CERTREQ."""
    conns = _conns(sa, initiator)
    if not conns:
        return
    msg.payloads.append(
        NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, encode_hash_algorithms())
    )
    if initiator:
        return  # the initiator's CERTREQ goes in IKE_AUTH (RFC 7296 §1.2)
    store = sa.ctx.credentials
    cas: list[x509.Certificate] = []
    for conn in conns:
        if conn.remote.auth != "pubkey":
            continue
        try:
            cas.extend(store.cas(conn))
        except CredentialError as exc:
            log.error("%s: %s", sa.tag(), exc)
    certreq = certreq_payload(cas)
    if certreq is not None:
        msg.payloads.append(certreq)


def note_hashes(sa: IkeSa, msg: Message) -> None:
    """The peer's hash algorithms in ``msg``, if it sent them."""
    n = msg.notify(_SIGNATURE_HASH_ALGORITHMS)
    if n is not None:
        _PEER_HASHES[sa] = decode_hash_algorithms(n.data)
