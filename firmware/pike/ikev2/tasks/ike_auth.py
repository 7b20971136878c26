"""IKE_AUTH with a pre-shared key or a certificate (RFC 7296 §2.15, RFC 7427).

Both sign the same octets: our IKE_SA_INIT message, the peer's nonce and
prf(SK_p, our ID payload body). With a PSK, AUTH = prf(prf(PSK, "Key Pad for IKEv2"),
octets); with a certificate, AUTH is a signature over them (``pike.ikev2.pubkey``), and the
peer's CERT chain is validated to our CAs and must contain its ID (``pike.sa.certs``).

Initiator: IDi [CERT+] N(INITIAL_CONTACT) [CERTREQ] [IDr] AUTH; responder: IDr [CERT+] AUTH.

Our signature is never made here: ``prepare`` emits a ``SignRequest`` (the key may sit in a
token that takes its time) and the task manager builds the message once ``signed`` brings
the answer. A failure to sign fails closed, with the same log line whatever the cause.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pike.hsm.signer import SignatureScheme
from pike.ikev2.log import log
from pike.ikev2.negotiate import select
from pike.ikev2.pubkey import (
    SIGNATURE_METHODS,
    NoUsableScheme,
    SignatureError,
    auth_data,
    choose_scheme,
    verify_auth,
)
from pike.ikev2.tasks.base import RespondError, Task, TaskFailed
from pike.ikev2.tasks.ike_hash_algs import peer_hashes
from pike.policy.config import ConnectionConfig, Identity
from pike.sa import identity
from pike.sa.actions import SignRequest
from pike.sa.credentials import CredentialError, LocalCredentials
from pike.sa.id_match import is_wildcard
from pike.sa.peer_ids import ids_match, peer_identity
from pike.sa.state import IkeState
from pike.wire.constants import AuthMethod, ExchangeType, NotifyType, ProtocolId, notify_name
from pike.wire.payloads import (
    AuthPayload,
    CertPayload,
    IdiPayload,
    IdrPayload,
    Message,
    NotifyPayload,
    Payload,
)

if TYPE_CHECKING:
    from pike.ikev2.ike_sa import IkeSa

KEY_PAD = b"Key Pad for IKEv2"  # RFC 7296 §2.15


class AuthFailure(Exception):
    """The peer's authentication failed; the text says what, for one log line."""


@dataclass(frozen=True, slots=True)
class _Ours:
    """What we put in IKE_AUTH besides IDs: our certificates and AUTH."""

    certs: list[Payload]
    auth: AuthPayload


def _id_body(ident: Identity) -> bytes:
    # RestOfInitIDPayload: ID Type | RESERVED (3 octets) | Identification Data
    return bytes((ident.id_type, 0, 0, 0)) + ident.data


def _expected(conns: Sequence[ConnectionConfig]) -> str:
    """The remote ids the connections want, for an error line: ``'hq.example.net' (hq)``
    (the first five: a hub may have thousands)."""
    wanted = [f"'{c.remote.id}' ({c.name})" for c in conns if c.remote.id is not None]
    more = f" or {len(wanted) - 5} more" if len(wanted) > 5 else ""
    return " or ".join(wanted[:5]) + more or "any configured remote id"


def _method_name(method: int) -> str:
    try:
        return AuthMethod(method).name
    except ValueError:
        return f"auth method {method}"


def _is_psk(method: int) -> bool:
    return method == AuthMethod.SHARED_KEY_MIC


@dataclass(slots=True)
class _Signing:
    """Our signature in progress: what was asked, and the answer once it is in."""

    ref: int
    method: int
    scheme: SignatureScheme
    creds: LocalCredentials
    result: bytes | Exception | None = None


class IkeAuth(Task):
    sa: IkeSa

    name = "ike_auth"

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self._signing: _Signing | None = None

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_AUTH

    # -- helpers -------------------------------------------------------------------------
    def _my_id(self, conn: ConnectionConfig) -> Identity:
        if conn.local.id is not None:
            return conn.local.id
        if conn.local.auth == "pubkey":
            # strongSwan's default: the subject of our certificate.
            from pike.sa.certs import subject_identity

            return subject_identity(self.sa.ctx.credentials.local(conn).chain[0])
        return identity.from_address(self.sa.local[0])

    def _psk(self, me: Identity, peer: Identity) -> bytes:
        psk = self.sa.ctx.config.psk_for(me.text, peer.text)
        if psk is None:
            raise AuthFailure(f"no shared key for {me} - {peer}")
        return psk

    def _octets(self, ident: Identity, signer_is_initiator: bool) -> bytes:
        """RFC 7296 §2.15 InitiatorSignedOctets / ResponderSignedOctets."""
        sa = self.sa
        assert sa.prf is not None and sa.keys is not None
        if signer_is_initiator:
            return sa.init_request + sa.nr + sa.prf.prf(sa.keys.sk_pi, _id_body(ident))
        return sa.init_response + sa.ni + sa.prf.prf(sa.keys.sk_pr, _id_body(ident))

    def _psk_auth(self, psk: bytes, ident: Identity, signer_is_initiator: bool) -> bytes:
        assert self.sa.prf is not None
        prf = self.sa.prf
        return prf.prf(prf.prf(psk, KEY_PAD), self._octets(ident, signer_is_initiator))

    def _ours(self, conn: ConnectionConfig, me: Identity, peer: Identity) -> _Ours:
        """Our CERTs and AUTH; raises AuthFailure when we cannot authenticate ourselves."""
        if conn.local.auth == "psk":
            data = self._psk_auth(self._psk(me, peer), me, self.initiator)
            return _Ours([], AuthPayload(AuthMethod.SHARED_KEY_MIC, data))
        signing = self._signing
        if signing is None or signing.result is None:
            # prepare() asks first; a build without the answer is a bug of ours.
            raise AuthFailure("cannot sign our AUTH: no signature was asked for")
        if isinstance(signing.result, Exception):
            raise AuthFailure(f"cannot sign our AUTH: {signing.result}")
        try:
            data = auth_data(signing.method, signing.scheme, signing.result)
        except ValueError as exc:  # a signer that returned no DER ECDSA-Sig-Value
            raise AuthFailure(f"cannot sign our AUTH: {exc}") from None
        from pike.sa.certs import cert_payloads

        return _Ours(list(cert_payloads(signing.creds.chain)), AuthPayload(signing.method, data))

    # -- our signature -------------------------------------------------------------------
    def prepare(self, now: float) -> int | None:
        sa = self.sa
        conn = sa.conn
        if conn is None or conn.local.auth != "pubkey" or self._signing is not None:
            return None
        try:
            me = self._my_id(conn) if self.initiator else sa.my_id
            assert me is not None
            creds = sa.ctx.credentials.local(conn)
            method, scheme = choose_scheme(creds.key_type, peer_hashes(sa), conn.local.rsa_pss)
        except (CredentialError, NoUsableScheme) as exc:
            raise self._cannot_sign(AuthFailure(f"cannot sign our AUTH: {exc}")) from None
        ref = sa.ctx.sign_ref()
        self._signing = _Signing(ref, method, scheme, creds)
        octets = self._octets(me, self.initiator)
        sa.ctx.emit(SignRequest(ref, conn.name, creds.key, scheme, octets, creds.spki))
        return ref

    def signed(self, ref: int, result: bytes | Exception) -> None:
        if self._signing is not None and self._signing.ref == ref:
            self._signing.result = result

    def _cannot_sign(self, exc: AuthFailure) -> Exception:
        """What build raises when we cannot authenticate ourselves, by role."""
        if self.initiator:
            return self._fail("no_credentials", exc)
        log.error("%s: cannot authenticate ourselves: %s", self.sa.tag(), exc)
        return RespondError(NotifyType.AUTHENTICATION_FAILED, detail=str(exc))

    def _verify(
        self, conn: ConnectionConfig, peer: Identity, msg: Message, auth: AuthPayload, now: float
    ) -> str:
        """Check the peer's AUTH (and certificate); returns how, for the log line."""
        peer_is_initiator = not self.initiator
        if conn.remote.auth == "psk":
            if not _is_psk(auth.method):
                raise AuthFailure(f"peer used auth method {auth.method}, we expect PSK")
            expected = self._psk_auth(self._psk(self._my_id(conn), peer), peer, peer_is_initiator)
            if not hmac.compare_digest(expected, auth.data):
                raise AuthFailure(f"AUTH payload of {peer} does not verify (PSK)")
            return "a pre-shared key"
        if auth.method not in SIGNATURE_METHODS:
            raise AuthFailure(f"peer used auth method {auth.method}, we expect a signature")
        # certificates (cryptography.x509) only with pubkey connections
        from pike.sa.certs import CertError, id_in_cert, parse_cert_payloads, validate_chain

        store = self.sa.ctx.credentials
        try:
            certs = parse_cert_payloads(msg.all(CertPayload))
            path = validate_chain(certs, store.cas(conn), store.wall(now))
        except (CertError, CredentialError) as exc:
            raise AuthFailure(f"certificate of {peer} not accepted: {exc}") from None
        leaf = certs[0]
        subject = leaf.subject.rfc4514_string()
        if not id_in_cert(peer, leaf):
            raise AuthFailure(f"identity '{peer}' is not in certificate '{subject}'")
        try:
            how = verify_auth(
                auth.method, auth.data, leaf.public_key(), self._octets(peer, peer_is_initiator)
            )
        except SignatureError as exc:
            raise AuthFailure(f"AUTH payload of {peer} (method {auth.method}): {exc}") from None
        return (
            f"{how.scheme.name} (method {how.method}), certificate '{subject}' "
            f"issued via '{path[-1].subject.rfc4514_string()}'"
        )

    def _certreq(self, conn: ConnectionConfig) -> list[Payload]:
        if conn.remote.auth != "pubkey":
            return []
        from pike.sa.certs import certreq_payload

        try:
            req = certreq_payload(self.sa.ctx.credentials.cas(conn))
        except CredentialError as exc:
            log.error("%s: %s", self.sa.tag(), exc)
            return []
        return [req] if req is not None else []

    def _fail(self, reason: str, exc: Exception) -> TaskFailed:
        log.error("%s: authentication failed: %s", self.sa.tag(), exc)
        return TaskFailed(reason, str(exc))

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg)
            return
        sa = self.sa
        assert sa.conn is not None
        try:
            me = self._my_id(sa.conn)
            peer = sa.conn.remote.id or identity.from_address(sa.remote[0])
            ours = self._ours(sa.conn, me, peer)
        except (AuthFailure, CredentialError) as exc:
            raise self._cannot_sign(AuthFailure(str(exc))) from None
        sa.my_id = me
        msg.payloads.append(IdiPayload(me.id_type, me.data))
        msg.payloads.extend(ours.certs)
        contact = sa.ctx.has_contact((me.id_type, me.data), (peer.id_type, peer.data))
        if sa.replaces is None and not contact:
            # Not when reauthenticating, nor beside another IKE SA with the same
            # identities (strongSwan's rule): the peer would drop the SAs we still use.
            msg.payloads.append(NotifyPayload(NotifyType.INITIAL_CONTACT))
        msg.payloads.extend(self._certreq(sa.conn))
        if not is_wildcard(sa.conn.remote.id):
            assert peer is not None
            msg.payloads.append(IdrPayload(peer.id_type, peer.data))
        msg.payloads.append(ours.auth)

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg, now)
            return
        sa = self.sa
        assert sa.conn is not None and sa.my_id is not None
        if msg.notify(NotifyType.AUTHENTICATION_FAILED) is not None:
            log.error("%s: the peer refused our authentication (AUTHENTICATION_FAILED)", sa.tag())
            raise TaskFailed("auth_failed", "peer refused our authentication")
        for n in msg.all(NotifyPayload):
            if n.notify_type in (
                NotifyType.INVALID_SYNTAX,
                NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
            ):
                raise TaskFailed(
                    "peer_error", f"IKE_AUTH answered with notify {notify_name(n.notify_type)}"
                )
        idr = msg.first(IdrPayload)
        auth = msg.first(AuthPayload)
        if idr is None or auth is None:
            raise TaskFailed("invalid_syntax", "IKE_AUTH response lacks IDr or AUTH")
        peer = peer_identity(idr.id_type, idr.data)
        try:
            if not ids_match(sa.conn.remote.id, peer):
                raise AuthFailure(f"peer identity {peer} is not {sa.conn.remote.id}")
            how = self._verify(sa.conn, peer, msg, auth, now)
        except (AuthFailure, CredentialError) as exc:
            raise self._fail("auth_failed", exc) from None
        log.info("%s: authenticated peer '%s' with %s", sa.tag(), peer, how)
        sa.peer_id = peer
        self._established(now)

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message, now: float) -> None:
        sa = self.sa
        idi = msg.first(IdiPayload)
        auth = msg.first(AuthPayload)
        if idi is None or auth is None:
            raise RespondError(
                NotifyType.INVALID_SYNTAX, detail="IKE_AUTH request lacks IDi or AUTH"
            )
        peer = peer_identity(idi.id_type, idi.data)
        idr = msg.first(IdrPayload)
        wanted = peer_identity(idr.id_type, idr.data) if idr is not None else None
        conn: ConnectionConfig | None = None
        try:
            conn = self._select(peer, wanted, auth.method)
            how = self._verify(conn, peer, msg, auth, now)
        except (AuthFailure, CredentialError) as exc:
            log.error("%s: authentication of '%s' failed: %s", sa.tag(), peer, exc)
            # counted under the connection it was for (the only one its address fits)
            only = sa.candidates.conns if sa.candidates and len(sa.candidates) == 1 else ()
            sa.conn = conn or (only[0] if only else None)
            raise RespondError(NotifyType.AUTHENTICATION_FAILED, detail=str(exc)) from None
        sa.conn, sa.my_id, sa.peer_id = conn, self._my_id(conn), peer
        log.info("%s: authenticated peer '%s' with %s", sa.tag(), peer, how)

    def _select(self, peer: Identity, wanted: Identity | None, method: int) -> ConnectionConfig:
        """The connection for this peer: its remote id must match IDi (and IDr our id),
        and its remote auth the kind of AUTH the peer sent."""
        sa = self.sa
        fitting = sa.candidates.for_peer(peer) if sa.candidates else []
        by_id = [
            conn
            for conn in fitting
            if (wanted is None or ids_match(self._my_id(conn), wanted)) and self._accepts(conn)
        ]
        if not by_id:
            known = sa.candidates.conns if sa.candidates else ()
            raise AuthFailure(f"peer identity '{peer}' is not {_expected(known)}")
        for conn in by_id:
            if (conn.remote.auth == "psk") == _is_psk(method):
                return conn
        others = [c for c in sa.candidates or () if c not in by_id]
        wrong_id = f"peer identity '{peer}' is not {_expected(others)}; " if others else ""
        raise AuthFailure(
            f"{wrong_id}{by_id[0].name} expects {by_id[0].remote.auth} authentication,"
            f" the peer used {_method_name(method)}"
        )

    def _accepts(self, conn: ConnectionConfig) -> bool:
        """Whether ``conn``'s IKE proposals choose what IKE_SA_INIT agreed (a connection
        with other proposals is not this IKE SA's, as in strongSwan)."""
        sa = self.sa
        if sa.conn is not None and conn.proposals == sa.conn.proposals:
            return True
        if sa.chosen is None or not sa.offer:
            return False
        return select(conn.proposals, sa.offer, ProtocolId.IKE, sa.chosen.group) == sa.chosen

    def _build_r(self, msg: Message) -> None:
        sa = self.sa
        assert sa.my_id is not None and sa.conn is not None and sa.peer_id is not None
        me = sa.my_id
        try:
            ours = self._ours(sa.conn, me, sa.peer_id)
        except AuthFailure as exc:
            raise self._cannot_sign(exc) from None
        msg.payloads.append(IdrPayload(me.id_type, me.data))
        msg.payloads.extend(ours.certs)
        msg.payloads.append(ours.auth)

    def completed(self, now: float) -> None:
        if not self.initiator:
            self._established(now)

    def _established(self, now: float) -> None:
        from pike.sa.actions import IkeSaEstablished

        sa = self.sa
        sa.set_state(IkeState.ESTABLISHED)
        sa.established_at = now
        # AUTH signed them; nothing needs them again (a hub keeps ~0.5 KiB less per SA)
        sa.init_request = sa.init_response = b""
        log.info(
            "%s: IKE_SA established between %s[%s]...%s[%s]",
            sa.tag(),
            sa.local[0],
            sa.my_id,
            sa.remote[0],
            sa.peer_id,
        )
        took = max(now - sa.created_at, 0.0)
        sa.ctx.emit(IkeSaEstablished(sa.name, sa.unique_id, sa.spi_i, sa.spi_r, took))
