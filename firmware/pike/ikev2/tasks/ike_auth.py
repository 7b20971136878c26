"""IKE_AUTH with a pre-shared key (RFC 7296 §2.15).

AUTH = prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>), where the signed octets are our
IKE_SA_INIT message, the peer's nonce and prf(SK_p, our ID payload body).
"""

from __future__ import annotations

import hmac

from pike.ikev2 import identity
from pike.ikev2.state import IkeState, log
from pike.ikev2.tasks.base import RespondError, Task, TaskFailed
from pike.policy.config import ConnectionConfig, Identity
from pike.wire.constants import AuthMethod, ExchangeType, NotifyType
from pike.wire.payloads import AuthPayload, IdiPayload, IdrPayload, Message, NotifyPayload

KEY_PAD = b"Key Pad for IKEv2"  # RFC 7296 §2.15


def _id_body(ident: Identity) -> bytes:
    # RestOfInitIDPayload: ID Type | RESERVED (3 octets) | Identification Data
    return bytes((ident.id_type, 0, 0, 0)) + ident.data


class IkeAuth(Task):
    name = "ike_auth"

    @property
    def exchange(self) -> int:
        return ExchangeType.IKE_AUTH

    # -- helpers -------------------------------------------------------------------------
    def _my_id(self, conn: ConnectionConfig) -> Identity:
        return conn.local.id or identity.from_address(self.sa.local[0])

    def _psk(self, conn: ConnectionConfig, me: Identity, peer: Identity) -> bytes:
        psk = self.sa.ctx.config.psk_for(me.text, peer.text)
        if psk is None:
            raise TaskFailed("no_psk", f"no shared key for {me} - {peer}")
        return psk

    def _auth(self, psk: bytes, ident: Identity, signer_is_initiator: bool) -> bytes:
        sa = self.sa
        assert sa.prf is not None and sa.keys is not None
        prf = sa.prf
        if signer_is_initiator:
            octets = sa.init_request + sa.nr + prf.prf(sa.keys.sk_pi, _id_body(ident))
        else:
            octets = sa.init_response + sa.ni + prf.prf(sa.keys.sk_pr, _id_body(ident))
        return prf.prf(prf.prf(psk, KEY_PAD), octets)

    # -- initiator -----------------------------------------------------------------------
    def build(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._build_r(msg)
            return
        sa = self.sa
        assert sa.conn is not None
        me = self._my_id(sa.conn)
        sa.my_id = me
        peer = sa.conn.remote.id or identity.from_address(sa.remote[0])
        msg.payloads.append(IdiPayload(me.id_type, me.data))
        msg.payloads.append(NotifyPayload(NotifyType.INITIAL_CONTACT))
        if sa.conn.remote.id is not None:
            msg.payloads.append(IdrPayload(peer.id_type, peer.data))
        psk = self._psk(sa.conn, me, peer)
        msg.payloads.append(AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth(psk, me, True)))

    def process(self, msg: Message, now: float) -> None:
        if not self.initiator:
            self._process_r(msg)
            return
        sa = self.sa
        assert sa.conn is not None and sa.my_id is not None
        if msg.notify(NotifyType.AUTHENTICATION_FAILED) is not None:
            raise TaskFailed("auth_failed", "peer refused our authentication")
        for n in msg.all(NotifyPayload):
            if n.notify_type in (
                NotifyType.INVALID_SYNTAX,
                NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
            ):
                raise TaskFailed("peer_error", f"IKE_AUTH answered with notify {n.notify_type}")
        idr = msg.first(IdrPayload)
        auth = msg.first(AuthPayload)
        if idr is None or auth is None:
            raise TaskFailed("invalid_syntax", "IKE_AUTH response lacks IDr or AUTH")
        peer = identity.from_wire(idr.id_type, idr.data)
        if not identity.matches(sa.conn.remote.id, peer):
            raise TaskFailed("auth_failed", f"peer identity {peer} is not {sa.conn.remote.id}")
        if auth.method != AuthMethod.SHARED_KEY_MIC:
            raise TaskFailed("auth_failed", f"peer used auth method {auth.method}, we expect PSK")
        expected = self._auth(self._psk(sa.conn, sa.my_id, peer), peer, False)
        if not hmac.compare_digest(expected, auth.data):
            raise TaskFailed("auth_failed", f"AUTH payload of {peer} does not verify")
        sa.peer_id = peer
        self._established(now)

    # -- responder -----------------------------------------------------------------------
    def _process_r(self, msg: Message) -> None:
        sa = self.sa
        idi = msg.first(IdiPayload)
        auth = msg.first(AuthPayload)
        if idi is None or auth is None:
            raise RespondError(
                NotifyType.INVALID_SYNTAX, detail="IKE_AUTH request lacks IDi or AUTH"
            )
        peer = identity.from_wire(idi.id_type, idi.data)
        idr = msg.first(IdrPayload)
        wanted = identity.from_wire(idr.id_type, idr.data) if idr is not None else None
        conn = self._select(peer, wanted)
        if conn is None:
            raise RespondError(
                NotifyType.AUTHENTICATION_FAILED, detail=f"no connection for peer identity {peer}"
            )
        if auth.method != AuthMethod.SHARED_KEY_MIC or conn.remote.auth != "psk":
            raise RespondError(
                NotifyType.AUTHENTICATION_FAILED, detail=f"auth method {auth.method} not accepted"
            )
        me = self._my_id(conn)
        psk = self.sa.ctx.config.psk_for(me.text, peer.text)
        if psk is None or not hmac.compare_digest(self._auth(psk, peer, True), auth.data):
            raise RespondError(
                NotifyType.AUTHENTICATION_FAILED, detail=f"AUTH payload of {peer} does not verify"
            )
        sa.conn, sa.my_id, sa.peer_id = conn, me, peer
        log.info("%s: authenticated peer '%s' with a pre-shared key", sa.tag(), peer)

    def _select(self, peer: Identity, wanted: Identity | None) -> ConnectionConfig | None:
        """The connection for this peer: its remote id must match IDi (and IDr our id)."""
        for conn in self.sa.candidates:
            if not identity.matches(conn.remote.id, peer):
                continue
            if wanted is not None and not identity.matches(self._my_id(conn), wanted):
                continue
            return conn
        return None

    def _build_r(self, msg: Message) -> None:
        sa = self.sa
        assert sa.my_id is not None and sa.conn is not None and sa.peer_id is not None
        me = sa.my_id
        msg.payloads.append(IdrPayload(me.id_type, me.data))
        psk = self._psk(sa.conn, me, sa.peer_id)
        msg.payloads.append(AuthPayload(AuthMethod.SHARED_KEY_MIC, self._auth(psk, me, False)))

    def completed(self, now: float) -> None:
        if not self.initiator:
            self._established(now)

    def _established(self, now: float) -> None:
        from pike.ikev2.actions import IkeSaEstablished

        sa = self.sa
        sa.set_state(IkeState.ESTABLISHED)
        sa.established_at = now
        log.info(
            "%s: IKE_SA established between %s[%s]...%s[%s]",
            sa.tag(),
            sa.local[0],
            sa.my_id,
            sa.remote[0],
            sa.peer_id,
        )
        sa.ctx.emit(IkeSaEstablished(sa.name, sa.unique_id, sa.spi_i, sa.spi_r))
