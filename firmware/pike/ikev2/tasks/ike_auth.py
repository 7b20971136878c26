"""IKE_AUTH with a pre-shared key or a certificate (RFC 7296 §2.15, RFC 7427).

Both sign the same octets: our IKE_SA_INIT message, the peer's nonce and
prf(SK_p, our ID payload body). With a PSK, AUTH = prf(prf(PSK, "Key Pad for IKEv2"),
octets); with a certificate, AUTH is a signature over them (``pike.ikev2.pubkey``), and the
peer's CERT chain is validated to our CAs and must contain its ID (``pike.sa.certs``).

Initiator: IDi [CERT+] N(INITIAL_CONTACT) [CERTREQ] [IDr] AUTH; responder: IDr [CERT+] AUTH;
then, as steps of this task, MOBIKE's announcement (``pike.ikev2.tasks.ike_mobike``).

After IKE_INTERMEDIATE exchanges (RFC 9242) the octets end with IntAuth. With a
post-quantum preshared key (RFC 8784: USE_PPK announced by both), SK_d/SK_pi/SK_pr take
the PPK before AUTH; the initiator adds PPK_IDENTITY and, unless ``ppk_required``,
NO_PPK_AUTH (AUTH made without the PPK, a second signature with certificates) for a peer
that lacks it; the responder confirms with an empty PPK_IDENTITY.

Our signature is never made here: ``prepare`` emits a ``SignRequest`` (the key may sit in a
token that takes its time) and the task manager builds the message once ``signed`` brings
the answer. A failure to sign fails closed, with the same log line whatever the cause.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pike.crypto.kdf import IkeKeys
from pike.frozen import frozen
from pike.hsm.signer import SignatureScheme
from pike.ikev2.chain_wait import checked
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
from pike.ikev2.tasks.ike_mobike import announce_mobike, learn_mobike, mobike_wanted
from pike.policy.config import ConnectionConfig, Identity
from pike.sa import identity
from pike.sa.actions import IkeSaEstablished, SignRequest
from pike.sa.certs import (
    CertError,
    cert_payloads,
    certreq_payload,
    id_in_cert,
    ids_match,
    parse_cert_payloads,
    peer_identity,
    subject_identity,
    validate_chain,
)
from pike.sa.credentials import CredentialError, LocalCredentials
from pike.sa.id_match import is_wildcard
from pike.sa.signing import SignatureUnusable, Wanted
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

# Enum members the handshake path compares with: a member lookup is slow on 3.11
_SHARED_KEY_MIC = AuthMethod.SHARED_KEY_MIC
_ESTABLISHED = IkeState.ESTABLISHED

KEY_PAD = b"Key Pad for IKEv2"  # RFC 7296 §2.15
PPK_ID_FIXED = b"\x02"  # RFC 8784 §3: PPK_ID type "fixed", the id's octets follow


class AuthFailure(Exception):
    """The peer's authentication failed; the text says what, for one log line."""


@frozen
class _Ours:
    """What we put in IKE_AUTH besides IDs: our certificates and AUTH."""

    certs: list[Payload]
    auth: AuthPayload


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

    # The task's state, each None until set (defaults of the class, not stored by an
    # __init__: every IKE_AUTH makes one of these tasks).
    _signing: _Signing | None = None
    # RFC 8784: the keys without the PPK (NO_PPK_AUTH, and the fallback when the
    # responder has no PPK); set once the PPK is mixed in
    _no_ppk_keys: IkeKeys | None = None
    _no_ppk_signing: _Signing | None = None  # certificates: NO_PPK_AUTH's signature
    # prf(PSK, KEY_PAD) for a pair of identities: a responder verifies the peer's AUTH
    # and makes its own with the same key, so it is looked up and padded once
    _pad: tuple[tuple[str, str], bytes] | None = None
    _peer_mobike = False  # responder: the peer's request announced MOBIKE

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_AUTH

    # -- helpers -------------------------------------------------------------------------
    def _my_id(self, conn: ConnectionConfig) -> Identity:
        if conn.local.id is not None:
            return conn.local.id
        if conn.local.auth == "pubkey":
            # strongSwan's default: the subject of our certificate.
            return subject_identity(self.sa.ctx.credentials.local(conn).chain[0])
        return identity.from_address(self.sa.local[0])

    def _psk_pad(self, me: Identity, peer: Identity) -> bytes:
        """prf(PSK, "Key Pad for IKEv2") of the shared key for ``me`` and ``peer``."""
        ids = (me.text, peer.text)
        if self._pad is not None and self._pad[0] == ids:
            return self._pad[1]
        psk = self.sa.ctx.config.psk_for(*ids)
        if psk is None:
            raise AuthFailure(f"no shared key for {me} - {peer}")
        assert self.sa.prf is not None
        pad = self.sa.prf.prf(psk, KEY_PAD)
        self._pad = (ids, pad)
        return pad

    def _octets(
        self, ident: Identity, signer_is_initiator: bool, keys: IkeKeys | None = None
    ) -> bytes:
        """RFC 7296 §2.15 InitiatorSignedOctets / ResponderSignedOctets (with ``keys``
        instead of the SA's: the ones without PPK for NO_PPK_AUTH)."""
        sa = self.sa
        assert sa.prf is not None and sa.keys is not None
        k = keys or sa.keys
        # RFC 9242 §3.3.2: IntAuth follows, the same for both (empty without IKE_INTERMEDIATE);
        # the IKE_AUTH request is the one outstanding (ours) or being answered (the peer's).
        int_auth = b""  # (no IKE_INTERMEDIATE: the usual case)
        if sa.int_auth_i:
            int_auth = sa.int_auth(sa.tasks.mid_out if self.initiator else sa.tasks.mid_in)
        # RestOfInitIDPayload: ID Type | RESERVED (3 octets) | Identification Data
        id_body = bytes((ident.id_type, 0, 0, 0)) + ident.data
        if signer_is_initiator:
            mac = sa.prf.prf(k.sk_pi, id_body)
            return sa.init_request + sa.nr + mac + int_auth
        mac = sa.prf.prf(k.sk_pr, id_body)
        return sa.init_response + sa.ni + mac + int_auth

    def _psk_auth(
        self, pad: bytes, ident: Identity, signer_is_initiator: bool, keys: IkeKeys | None = None
    ) -> bytes:
        """AUTH = prf(prf(PSK, KEY_PAD), <SignedOctets>) with ``pad`` from ``_psk_pad``."""
        assert self.sa.prf is not None
        return self.sa.prf.prf(pad, self._octets(ident, signer_is_initiator, keys))

    # -- post-quantum preshared keys (RFC 8784) --------------------------------------------
    def _use_ppk_i(self) -> None:
        """Initiator: mix our PPK into SK_d/SK_pi/SK_pr before AUTH, once, when both sides
        announced USE_PPK."""
        sa = self.sa
        conn = sa.conn
        if self._no_ppk_keys is not None or conn is None or conn.ppk_id is None:
            return
        if not sa.ppk_peer:
            log.info("%s: the peer does not support PPK, authenticating without", sa.tag())
            return
        ppk = sa.ctx.config.ppk_for(conn.ppk_id)
        if ppk is None:  # the loader checks; a reload may have removed it
            raise self._cannot_sign(AuthFailure(f"no PPK for ppk_id '{conn.ppk_id}'"))
        assert sa.keys is not None
        self._no_ppk_keys = sa.keys
        sa.apply_ppk(ppk)

    def _ppk_payloads(self, conn: ConnectionConfig, me: Identity, peer: Identity) -> list[Payload]:
        """PPK_IDENTITY, and NO_PPK_AUTH where the peer may lack the PPK (not required)."""
        if self._no_ppk_keys is None or conn.ppk_id is None:
            return []
        out: list[Payload] = [
            NotifyPayload(NotifyType.PPK_IDENTITY, PPK_ID_FIXED + conn.ppk_id.encode())
        ]
        if not conn.ppk_required and conn.local.auth == "psk":
            data = self._psk_auth(self._psk_pad(me, peer), me, True, self._no_ppk_keys)
            out.append(NotifyPayload(NotifyType.NO_PPK_AUTH, data))
        no_ppk = self._no_ppk_signing
        if no_ppk is not None and isinstance(no_ppk.result, bytes):
            # the AUTH payload's data without the PPK; its method is the AUTH payload's
            data = auth_data(no_ppk.method, no_ppk.scheme, no_ppk.result)
            out.append(NotifyPayload(NotifyType.NO_PPK_AUTH, data))
        return out  # without NO_PPK_AUTH when it could not be signed (logged then)

    def _ppk_answer_i(self, conn: ConnectionConfig, msg: Message) -> None:
        """Initiator: the responder confirms the PPK with PPK_IDENTITY, or did without."""
        sa = self.sa
        if self._no_ppk_keys is None:
            if conn.ppk_required:
                raise AuthFailure("ppk_required, but no PPK was used")
            return
        if msg.notify(NotifyType.PPK_IDENTITY) is not None:
            sa.ppk_used = True
            return
        if conn.ppk_required:
            raise AuthFailure(f"the peer did not use the PPK '{conn.ppk_id}' (ppk_required)")
        log.info("%s: the peer has no PPK '%s', keys without it", sa.tag(), conn.ppk_id)
        sa.keys, self._no_ppk_keys = self._no_ppk_keys, None

    def _ppk_r(self, conn: ConnectionConfig, msg: Message, auth: AuthPayload) -> AuthPayload:
        """Responder: use the PPK the initiator names if we hold it; else its NO_PPK_AUTH
        (unless ppk_required). Returns the AUTH to verify."""
        sa = self.sa
        note = msg.notify(NotifyType.PPK_IDENTITY) if sa.ppk_peer else None
        ppk_id: str | None = None
        if note is not None and len(note.data) > 1 and note.data[:1] == PPK_ID_FIXED:
            ppk_id = note.data[1:].decode("utf-8", "replace")
        if ppk_id is not None and conn.ppk_id is not None and ppk_id != conn.ppk_id:
            wants = f"{conn.name} wants '{conn.ppk_id}'"
            log.info("%s: PPK_ID '%s' received, %s", sa.tag(), ppk_id, wants)
            ppk_id = None
        ppk = sa.ctx.config.ppk_for(ppk_id) if ppk_id is not None else None
        if ppk is not None:
            assert sa.keys is not None
            self._no_ppk_keys = sa.keys
            sa.apply_ppk(ppk)
            sa.ppk_used = True
            return auth
        if conn.ppk_required:
            raise AuthFailure(f"ppk_required, but no PPK for PPK_ID '{ppk_id}'")
        if note is None:
            return auth
        fallback = msg.notify(NotifyType.NO_PPK_AUTH)
        if fallback is None:
            raise AuthFailure(f"no PPK for PPK_ID '{ppk_id}' and no NO_PPK_AUTH")
        log.info("%s: no PPK for PPK_ID '%s', using NO_PPK_AUTH", sa.tag(), ppk_id)
        return AuthPayload(auth.method, fallback.data)  # the AUTH payload's method

    def _ours(self, conn: ConnectionConfig, me: Identity, peer: Identity) -> _Ours:
        """Our CERTs and AUTH; raises AuthFailure when we cannot authenticate ourselves."""
        if conn.local.auth == "psk":
            data = self._psk_auth(self._psk_pad(me, peer), me, self.initiator)
            return _Ours([], AuthPayload(_SHARED_KEY_MIC, data))
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
        return _Ours(list(cert_payloads(signing.creds.chain)), AuthPayload(signing.method, data))

    # -- our signature -------------------------------------------------------------------
    def prepare(self, now: float) -> Wanted | None:
        sa = self.sa
        conn = sa.conn
        if self.initiator:
            self._use_ppk_i()  # the signature covers SK_pi'
        if conn is None or conn.local.auth != "pubkey":
            return None
        if self._signing is not None:
            return self._prepare_no_ppk(conn)
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
        return Wanted(SignRequest(ref, conn.name, creds.key, scheme, octets, creds.spki), "AUTH")

    def _prepare_no_ppk(self, conn: ConnectionConfig) -> Wanted | None:
        """Initiator with a certificate and a PPK the peer may lack: a second signature,
        over the octets without the PPK, for NO_PPK_AUTH (RFC 8784 §3)."""
        sa, first = self.sa, self._signing
        if (
            not self.initiator
            or self._no_ppk_keys is None
            or conn.ppk_required
            or self._no_ppk_signing is not None
            or first is None
            or not isinstance(first.result, bytes)
        ):
            return None
        me = self._my_id(conn)
        ref = sa.ctx.sign_ref()
        self._no_ppk_signing = _Signing(ref, first.method, first.scheme, first.creds)
        octets = self._octets(me, True, self._no_ppk_keys)
        creds = first.creds
        req = SignRequest(ref, conn.name, creds.key, first.scheme, octets, creds.spki)
        return Wanted(req, "NO_PPK_AUTH", required=False)

    def signed(self, ref: int, result: bytes | Exception) -> None:
        for signing in (self._signing, self._no_ppk_signing):
            if signing is not None and signing.ref == ref:
                signing.result = result
                if isinstance(result, bytes):
                    try:  # a signer that returned no DER ECDSA-Sig-Value
                        auth_data(signing.method, signing.scheme, result)
                    except ValueError as exc:
                        signing.result = exc
                        raise SignatureUnusable(str(exc)) from None

    def _cannot_sign(self, exc: AuthFailure) -> Exception:
        """What build raises when we cannot authenticate ourselves, by role."""
        if self.initiator:
            return self._fail("no_credentials", exc)
        log.error("%s: cannot authenticate ourselves: %s", self.sa.tag(), exc)
        return RespondError(NotifyType.AUTHENTICATION_FAILED, detail=str(exc))

    def _verify(
        self,
        conn: ConnectionConfig,
        me: Identity,
        peer: Identity,
        msg: Message,
        auth: AuthPayload,
        now: float,
    ) -> str:
        """Check the peer's AUTH (and certificate) with ``me`` our identity; returns how,
        for the log line."""
        peer_is_initiator = not self.initiator
        if conn.remote.auth == "psk":
            if auth.method != _SHARED_KEY_MIC:
                raise AuthFailure(f"peer used auth method {auth.method}, we expect PSK")
            expected = self._psk_auth(self._psk_pad(me, peer), peer, peer_is_initiator)
            if not hmac.compare_digest(expected, auth.data):
                raise AuthFailure(f"AUTH payload of {peer} does not verify (PSK)")
            return "a pre-shared key"
        if auth.method not in SIGNATURE_METHODS:
            raise AuthFailure(f"peer used auth method {auth.method}, we expect a signature")
        store = self.sa.ctx.credentials
        try:
            cas = store.cas(conn)
            path = checked(self.sa, msg, cas)  # off the loop, in piked (chain_wait)
            if path is None:
                path = validate_chain(
                    parse_cert_payloads(msg.all(CertPayload)), cas, store.wall(now)
                )
        except (CertError, CredentialError) as exc:
            raise AuthFailure(f"certificate of {peer} not accepted: {exc}") from None
        leaf, anchor = path[0], path[-1]
        subject = leaf.subject.rfc4514_string()
        if not id_in_cert(peer, leaf):
            raise AuthFailure(f"identity '{peer}' is not in certificate '{subject}'")
        try:
            how = verify_auth(
                auth.method, auth.data, leaf.public_key(), self._octets(peer, peer_is_initiator)
            )
        except SignatureError as exc:
            raise AuthFailure(f"AUTH payload of {peer} (method {auth.method}): {exc}") from None
        # After the signature: only a peer that holds the key makes us fetch a status.
        try:
            store.check_revocation(conn, path, now)
        except CredentialError as exc:
            raise AuthFailure(f"certificate of {peer} not accepted: {exc}") from None
        self.sa.peer_path = tuple(path)
        return (
            f"{how.scheme.name} (method {how.method}), certificate '{subject}' "
            f"issued via '{anchor.subject.rfc4514_string()}'"
        )

    def _certreq(self, conn: ConnectionConfig) -> list[Payload]:
        if conn.remote.auth != "pubkey":
            return []
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
        self._use_ppk_i()
        try:
            me = self._my_id(sa.conn)
            peer = sa.conn.remote.id or identity.from_address(sa.remote[0])
            ours = self._ours(sa.conn, me, peer)
            ppk = self._ppk_payloads(sa.conn, me, peer)
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
        msg.payloads.extend(ppk)
        if mobike_wanted(sa):
            announce_mobike(sa, msg)

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
            self._ppk_answer_i(sa.conn, msg)
            how = self._verify(sa.conn, sa.my_id, peer, msg, auth, now)
        except (AuthFailure, CredentialError) as exc:
            raise self._fail("auth_failed", exc) from None
        if log.isEnabledFor(logging.INFO):  # a hub at WARNING builds no tag
            log.info("%s: authenticated peer '%s' with %s", sa.tag(), peer, how)
        sa.peer_id = peer
        self._established(now)
        sa.mobike = learn_mobike(sa, msg) and mobike_wanted(sa)
        if sa.mobike:
            log.info("%s: MOBIKE negotiated", sa.tag())

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message, now: float) -> None:
        sa = self.sa
        if sa.addke_todo:
            raise RespondError(
                NotifyType.INVALID_SYNTAX, detail="IKE_AUTH before the additional key exchanges"
            )
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
            my_id = self._my_id(conn)
            if sa.ppk_peer or conn.ppk_required:  # (else the AUTH payload is the one)
                auth = self._ppk_r(conn, msg, auth)
            how = self._verify(conn, my_id, peer, msg, auth, now)
        except (AuthFailure, CredentialError) as exc:
            # counted exactly (auth failures); the lines, as IKEv1's, within the limit
            if sa.ctx.log_limit.wanted(log, logging.ERROR, "auth_failed", now, sa.unproven):
                log.error("%s: authentication of '%s' failed: %s", sa.tag(), peer, exc)
            # counted under the connection it was for (the only one its address fits)
            only = sa.candidates.conns if sa.candidates and len(sa.candidates) == 1 else ()
            sa.set_conn(conn or (only[0] if only else None))
            raise RespondError(NotifyType.AUTHENTICATION_FAILED, detail=str(exc)) from None
        sa.set_conn(conn)
        sa.my_id, sa.peer_id = my_id, peer
        if log.isEnabledFor(logging.INFO):  # a hub at WARNING builds no tag
            log.info("%s: authenticated peer '%s' with %s", sa.tag(), peer, how)
        self._peer_mobike = learn_mobike(sa, msg)  # (the connection is chosen)

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
            if (conn.remote.auth == "psk") == (method == _SHARED_KEY_MIC):
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
        if sa.ppk_used:
            msg.payloads.append(NotifyPayload(NotifyType.PPK_IDENTITY))  # RFC 8784 §3
        if self._peer_mobike and mobike_wanted(sa):
            announce_mobike(sa, msg)
            sa.mobike = True

    def completed(self, now: float) -> None:
        if not self.initiator:
            self._established(now)

    def _established(self, now: float) -> None:
        sa = self.sa
        sa.set_state(_ESTABLISHED)
        sa.established_at = now
        # AUTH signed them; nothing needs them again (a hub keeps ~0.5 KiB less per SA)
        sa.init_request = sa.init_response = sa.int_auth_i = sa.int_auth_r = b""
        # Nor what picked the connection (responder): the candidates and the peer's IKE
        # proposals are a dozen objects per held SA for the collector to scan.
        sa.candidates, sa.offer = None, ()
        if log.isEnabledFor(logging.INFO):
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
