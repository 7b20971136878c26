"""What the IKEv2 engine asks the runtime to do, and what it tells it.

The engine is sans-I/O: every effect is one of these frozen values, drained by the runtime
with ``Ikev2Engine.next_action()``. Addresses are ``(ip_text, port)`` tuples.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING

from pike.frozen import frozen
from pike.hsm.signer import SignatureScheme
from pike.policy.ipsec import PolicySpec, SaSpec

if TYPE_CHECKING:
    from datetime import datetime  # annotations only: datetime is 0.4 MiB of idle RSS

Address = tuple[str, int]


@frozen
class SendDatagram:
    """Send an IKE message. When either port is not 500 (NAT-T, RFC 3948 §2.2) the
    runtime sends it from its UDP-encapsulation socket, prefixed by the non-ESP marker."""

    data: bytes
    src: Address
    dst: Address


@frozen
class IkeRef:
    """The IKE (or ISAKMP) SA a CHILD_SA belongs to, as the updown script sees it: its
    unique id and the authenticated identities."""

    unique_id: int
    local_id: str
    remote_id: str


@frozen
class InstallChildSa:
    """Install a CHILD_SA: inbound SA first, then outbound SA and the policies.

    ``defer_outbound``: the outbound SA waits for :class:`InstallOutboundSa` (the
    responder of a CHILD_SA rekey keeps sending on the old SA until the initiator, which
    installs its inbound SA only after our response, deletes the old one)."""

    conn: str
    child: str
    unique_id: int
    inbound: SaSpec
    outbound: SaSpec
    policies: tuple[PolicySpec, ...]
    defer_outbound: bool = False
    ike: IkeRef | None = None  # its IKE SA (updown's PLUTO_UNIQUEID, PLUTO_MY_ID, ...)


@frozen
class InstallOutboundSa:
    """Install the deferred outbound SA of a rekeyed CHILD_SA (before the old one goes)."""

    conn: str
    child: str
    unique_id: int
    outbound: SaSpec


@frozen
class InstallInboundSa:
    """Install a CHILD_SA's inbound SA before the exchange that creates it is answered.

    Reauthentication (make-before-break): the peer, as IKE_AUTH responder, sends on its new
    SA as soon as it has answered; with our inbound SA already in, nothing it sends in that
    moment is dropped. ``inbound`` carries a short hard lifetime so a failed exchange leaves
    nothing behind; the ``InstallChildSa`` that follows updates it (same keys)."""

    conn: str
    child: str
    unique_id: int
    inbound: SaSpec


@frozen
class RemoveInboundSa:
    """Remove an inbound SA installed ahead (``InstallInboundSa``) whose exchange failed."""

    conn: str
    child: str
    unique_id: int
    inbound: SaSpec


@frozen
class DeleteChildSa:
    """Remove a CHILD_SA's SAs and (unless ``keep_policies``) its policies."""

    conn: str
    child: str
    unique_id: int
    inbound: SaSpec
    outbound: SaSpec
    policies: tuple[PolicySpec, ...]
    keep_policies: bool = False
    ike: IkeRef | None = None  # its IKE SA (updown's PLUTO_UNIQUEID, PLUTO_MY_ID, ...)


@frozen
class MigrateChildSa:
    """Move an installed CHILD_SA to new outer addresses (MOBIKE, RFC 4555): same SPIs,
    keys and sequence numbers; its policies' templates follow (XFRM_MSG_MIGRATE, or
    remove and add again where the kernel cannot migrate). ``old_*`` are as installed."""

    conn: str
    child: str
    unique_id: int
    old_inbound: SaSpec
    old_outbound: SaSpec
    old_policies: tuple[PolicySpec, ...]
    inbound: SaSpec
    outbound: SaSpec
    policies: tuple[PolicySpec, ...]


@frozen
class SendKeepalive:
    """A NAT-T keepalive (RFC 3948 §2.3): one 0xFF octet from the NAT-T socket."""

    src: Address
    dst: Address


@frozen
class InstallTrap:
    """Policies without SAs: the kernel asks (XFRM ACQUIRE, by reqid) when traffic
    matches, and the engine negotiates then (start_action / dpd_action = trap)."""

    conn: str
    child: str
    reqid: int
    policies: tuple[PolicySpec, ...]


@frozen
class SignRequest:
    """Sign ``data`` (IKEv2's AUTH octets, RFC 7296 §2.15; IKEv1's HASH_I/HASH_R) with
    ``scheme`` and the configured ``key`` (a ``pkcs11:`` URI or a PEM file), which must
    belong to the certificate whose SubjectPublicKeyInfo is ``spki``. A token may take a
    long time, so the runtime signs off its event loop and answers with the engine's
    ``sign_done(ref, ...)``; the exchange waits for that answer (``pike.sa.signing``, both
    IKE versions)."""

    ref: int
    conn: str
    key: str
    scheme: SignatureScheme
    data: bytes = field(repr=False)
    spki: bytes = field(repr=False)


@frozen
class CheckChain:
    """Check a peer's CERT chain (``certs``, DER, end entity first) against ``anchors``
    (the configured CAs, DER) at wall-clock time ``when``, off the event loop (pike-keyd,
    or piked's chain worker: ``pike.sa.certs.check_chain``). The runtime answers with
    ``engine.chain_checked(ref, path or CertError, now)``; the IKE_AUTH message waits."""

    ref: int
    conn: str  # the IKE SA's name, for log lines
    certs: tuple[bytes, ...] = field(repr=False)
    anchors: tuple[bytes, ...] = field(repr=False)
    when: datetime


@frozen
class ResolveRequest:
    """Look ``host`` (a DNS name in ``remote_addrs``) up, off the event loop, and answer
    with ``engine.resolved(conn, addresses, now)`` (no addresses: it failed). The
    initiation of ``conn`` waits; every new attempt asks again."""

    conn: str
    host: str
    family: int  # 4 or 6 to match our local address, 0: either


@frozen
class IkeSaEstablished:
    conn: str
    unique_id: int
    spi_i: bytes
    spi_r: bytes
    handshake_seconds: float = 0.0  # first IKE_SA_INIT to established (0 for a rekey)
    rekey: bool = False


@frozen
class IkeSaDeleted:
    conn: str
    unique_id: int
    reason: str  # "terminated", "peer_deleted", "retransmit_timeout", "auth_failed", ...
    spis: tuple[bytes, bytes] | None = None  # (SPIi, SPIr) of an SA that was established


@frozen
class ChildSaEstablished:
    conn: str
    child: str
    unique_id: int
    spis: tuple[int, int] | None = None  # (inbound, outbound), for the runtime's log line


@frozen
class ChildSaFailed:
    """A CHILD_SA could not be created (peer refused, or our kernel cannot take it)."""

    conn: str
    child: str
    reason: str


@frozen
class MessageDropped:
    """An inbound datagram was dropped or answered with an error notify (counted)."""

    reason: str
    src: Address


Action = (
    SendDatagram
    | SendKeepalive
    | InstallTrap
    | SignRequest
    | CheckChain
    | ResolveRequest
    | InstallChildSa
    | InstallOutboundSa
    | InstallInboundSa
    | RemoveInboundSa
    | DeleteChildSa
    | MigrateChildSa
    | IkeSaEstablished
    | IkeSaDeleted
    | ChildSaEstablished
    | ChildSaFailed
    | MessageDropped
)


@frozen
class ChildSaInfo:
    """A CHILD_SA as ``pikectl list-sas`` shows it (counters come from the kernel)."""

    name: str
    unique_id: int
    state: str  # "INSTALLING", "INSTALLED", "REKEYING", "DELETING", ...
    mode: str
    protocol: str  # "ESP"
    spi_in: int
    spi_out: int
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    algorithms: str  # proposal string, e.g. "aes128gcm16" or "aes256-sha256-modp3072"
    inbound: SaSpec | None  # for the runtime to query counters (dst, spi)
    outbound: SaSpec | None
    installed_at: float | None
    rekey_at: float | None = None  # engine clock: the next rekey (rekey_time)
    expire_at: float | None = None  # engine clock: the end of its life (life_time)


@frozen
class IkeSaInfo:
    name: str
    unique_id: int
    state: str  # "CONNECTING", "ESTABLISHED", "REKEYING", "DELETING"
    version: int
    initiator: bool
    local: Address
    remote: Address
    local_id: str
    remote_id: str
    spi_i: bytes
    spi_r: bytes
    algorithms: str
    established_at: float | None
    nat_local: bool
    nat_remote: bool
    children: tuple[ChildSaInfo, ...]
    last_inbound: float | None = None  # engine clock: last authenticated IKE message
    dpd_outstanding: bool = False  # a liveness check awaits its answer
    keepalive_at: float | None = None  # engine clock: next NAT-T keepalive
    rekey_at: float | None = None  # engine clock: the next IKE SA rekey (IKEv2)
    reauth_at: float | None = None  # engine clock: the next reauthentication
    ppk: bool = False  # a post-quantum preshared key is mixed into the keys (RFC 8784)
    mobike: bool = False  # both sides negotiated MOBIKE (RFC 4555): local/remote may move
    peer_addrs: tuple[str, ...] = ()  # the peer's other addresses it announced (MOBIKE)
