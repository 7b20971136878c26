"""Phase-1 authentication with signatures (RFC 2409 §5.1, RFC 4754 §8), for Main and
Aggressive Mode, both roles.

The method is negotiated in the phase-1 transform (Authentication Method attribute) and
names the key type of both ends: 3 (RSA), 9/10/11 (ECDSA P-256/P-384/P-521 with RFC 4754).
Ours follows our certificate's key, as strongSwan derives it from its local credentials.

- SKEYID = prf(Ni_b | Nr_b, g^xy) (``keys.skeyid_signature``);
- the signed data is HASH_I / HASH_R itself: RSA pads it PKCS#1 v1.5 without a DigestInfo,
  ECDSA signs it as the digest and sends raw r||s (strongSwan's SIGN_RSA_EMSA_PKCS1_NULL /
  SIGN_ECDSA_WITH_NULL; Signer schemes ``RSA_PKCS1_NULL`` / ``ECDSA_NULL``);
- ``HDR*, IDx, CERT+, SIG`` carries our chain (X.509, encoding 4) and the signature;
  CERTREQ (RFC 2408 §3.10) names each CA we trust by its DER subject, as strongSwan does;
- the peer's chain goes to our CAs and its ID must be in its certificate, exactly as for
  IKEv2 (``pike.sa.certs``), with the same config keys (``auth = "pubkey"``, ``certs``,
  ``key``, ``cacerts``).

Our signature is never made here: like IKE_AUTH, we wait for it in ``pike.sa.signing``
(the key may be in a token) and the exchange continues when the engine's ``sign_done``
brings it.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pike.hsm.signer import SignatureScheme, digest_hash, ecdsa_der_to_raw, ecdsa_raw_to_der
from pike.ikev1.isakmp_sa import Continue, IsakmpSa, PeerError, log
from pike.ikev1.proposals import phase1_choices
from pike.policy.config import ConnectionConfig, Identity
from pike.sa.actions import SignRequest
from pike.sa.certs import (
    CertError,
    id_in_cert,
    ids_match,
    parse_cert_payloads,
    peer_identity,
    subject_identity,
    validate_chain,
)
from pike.sa.chain_check import verdict
from pike.sa.context import Context
from pike.sa.credentials import CredentialError
from pike.sa.revocation import RevocationPending
from pike.sa.signing import SignatureUnusable, Wanted
from pike.wire.isakmp_constants import AuthV1, CertEncodingV1
from pike.wire.isakmp_payloads import V1Cert, V1CertReq, V1Id, V1Message, V1Payload, V1Sig
from pike.wire.payloads import CertPayload

SIGNATURE_METHODS = frozenset(
    {AuthV1.RSA_SIG, AuthV1.ECDSA_SHA256, AuthV1.ECDSA_SHA384, AuthV1.ECDSA_SHA512}
)
_METHOD_OF_KEY = {
    "rsa": AuthV1.RSA_SIG,
    "ecdsa-p256": AuthV1.ECDSA_SHA256,
    "ecdsa-p384": AuthV1.ECDSA_SHA384,
    "ecdsa-p521": AuthV1.ECDSA_SHA512,
}
# RFC 4754 §3: curve and size of r and of s
_EC: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    AuthV1.ECDSA_SHA256: (ec.SECP256R1, 32),
    AuthV1.ECDSA_SHA384: (ec.SECP384R1, 48),
    AuthV1.ECDSA_SHA512: (ec.SECP521R1, 66),
}


def auth_method(ctx: Context, conn: ConnectionConfig) -> int:
    """The Authentication Method ``conn`` offers and accepts: PSK, or the signature
    method of our certificate's key. PeerError("no_credentials") when there is none."""
    if conn.local.auth != "pubkey":
        return AuthV1.PSK
    try:
        creds = ctx.credentials.local(conn)
    except CredentialError as exc:
        raise PeerError("no_credentials", str(exc)) from None
    method = _METHOD_OF_KEY.get(creds.key_type)
    if method is None:
        raise PeerError("no_credentials", f"{conn.name}: a {creds.key_type} key cannot sign IKEv1")
    return method


def uses_signatures(sa: IsakmpSa) -> bool:
    return sa.choice is not None and sa.choice.auth in SIGNATURE_METHODS


def certreqs(sa: IsakmpSa) -> list[V1Payload]:
    """One CERTREQ per CA we trust for the peer (its DER subject), when we want its cert."""
    conn = sa.conn
    if conn is None or conn.remote.auth != "pubkey":
        return []
    try:
        cas = sa.ctx.credentials.cas(conn)
    except CredentialError as exc:
        log.error("%s: %s", sa.tag(), exc)
        return []
    subjects = dict.fromkeys(ca.subject.public_bytes() for ca in cas)
    return [V1CertReq(CertEncodingV1.X509_SIGNATURE, s) for s in subjects]


def my_identity(sa: IsakmpSa) -> Identity:
    """Our configured id, else (as strongSwan) our certificate's subject DN."""
    conn = sa.conn
    assert conn is not None
    if conn.local.id is not None:
        return conn.local.id
    return subject_identity(sa.ctx.credentials.local(conn).chain[0])


def own_id(sa: IsakmpSa) -> V1Id:
    ident = my_identity(sa)
    return V1Id(ident.id_type, 0, 0, ident.data)


# -- our signature ---------------------------------------------------------------------------


def request(sa: IsakmpSa, hash_value: bytes, then: Continue, now: float) -> None:
    """Ask for our signature over ``hash_value`` (HASH_I or HASH_R); ``then`` sends the
    message once it is in. The wait, its deadline and a failure's handling are
    ``pike.sa.signing``'s, as for IKEv2's IKE_AUTH."""
    conn, choice = sa.conn, sa.choice
    assert conn is not None and choice is not None
    try:
        creds = sa.ctx.credentials.local(conn)
    except CredentialError as exc:
        raise PeerError("no_credentials", str(exc)) from None
    scheme = (
        SignatureScheme.RSA_PKCS1_NULL if creds.key_type == "rsa" else SignatureScheme.ECDSA_NULL
    )
    ref = sa.ctx.sign_ref()
    wanted = Wanted(
        SignRequest(ref, conn.name, creds.key, scheme, hash_value, creds.spki), _name(sa)
    )
    method = choice.auth

    def signed(signature: bytes, now: float) -> None:
        """Send the message our signature completes."""
        if method in _EC:
            try:
                signature = ecdsa_der_to_raw(signature, _EC[method][1])
            except ValueError as exc:  # a signer that gave no DER ECDSA-Sig-Value
                raise SignatureUnusable(str(exc)) from None
        der = serialization.Encoding.DER
        certs: list[V1Payload] = [
            V1Cert(CertEncodingV1.X509_SIGNATURE, c.public_bytes(der)) for c in creds.chain
        ]
        then(sa, [*certs, V1Sig(signature)], now)

    sa.signing = sa.ctx.signatures.wait(
        1, sa, wanted, now, signed, refused, answering=None if sa.initiator else 0
    )


def refused(why: str, now: float) -> None:
    """No signature (``pike.sa.signing``'s policy, logged there): the SA ends, in either
    role without a message (an IKEv1 phase-1 responder has no answer for it)."""
    raise PeerError("no_credentials", why)


def _name(sa: IsakmpSa) -> str:
    return "HASH_I" if sa.initiator else "HASH_R"


# -- the peer's signature --------------------------------------------------------------------


def verify_peer(
    sa: IsakmpSa, msg: V1Message, peer_id: V1Id, hash_value: bytes, now: float
) -> Identity:
    """Check the peer's chain, that ``peer_id`` is the configured remote id and in its
    certificate, and its SIG over ``hash_value``. PeerError("auth_failed") naming what
    failed; returns the peer's identity."""
    conn, choice = sa.conn, sa.choice
    assert conn is not None and choice is not None
    peer = peer_identity(peer_id.id_type, peer_id.data)
    if not ids_match(conn.remote.id, peer):
        other = _by_identity(sa, peer)
        if other is None:
            raise PeerError("auth_failed", f"peer identity '{peer}' is not '{conn.remote.id}'")
        conn = other
    sig = msg.first(V1Sig)
    if sig is None:
        raise PeerError("auth_failed", f"no SIG from '{peer}' (method {choice.auth})")
    store = sa.ctx.credentials
    try:
        cas = store.cas(conn)
        # checked off the loop in piked (the engine parked this message until then)
        path = verdict(sa.chain, tuple(c.data for c in msg.all(V1Cert)), cas)
        if path is None:
            payloads = (CertPayload(c.encoding, c.data) for c in msg.all(V1Cert))
            path = validate_chain(parse_cert_payloads(payloads), cas, store.wall(now))
    except (CertError, CredentialError) as exc:
        raise PeerError("auth_failed", f"certificate of '{peer}' not accepted: {exc}") from None
    leaf, anchor = path[0], path[-1]
    subject = leaf.subject.rfc4514_string()
    if not id_in_cert(peer, leaf):
        raise PeerError("auth_failed", f"identity '{peer}' is not in certificate '{subject}'")
    scheme = verify(choice.auth, sig.data, leaf.public_key(), hash_value)
    try:
        store.check_revocation(conn, path, now)
    except CredentialError as exc:
        raise PeerError("auth_failed", f"certificate of '{peer}' not accepted: {exc}") from None
    except RevocationPending as exc:
        # Not taken (the IV chain and flight stay): the peer's retransmission, or the
        # answer to ours, is looked at again once the status is in.
        raise PeerError("revocation_pending", str(exc)) from None
    sa.peer_path = tuple(path)
    log.info(
        "%s: authenticated peer '%s' with %s (method %d), certificate '%s' issued via '%s'",
        sa.tag(),
        peer,
        scheme.name,
        choice.auth,
        subject,
        anchor.subject.rfc4514_string(),
    )
    return peer


def _by_identity(sa: IsakmpSa, peer: Identity) -> ConnectionConfig | None:
    """Main Mode responder: MM1 could only choose by address and proposal; when the
    peer's ID belongs to another connection for the same addresses that accepts the same
    transform, the SA moves to it (as strongSwan re-selects its peer config by IDii)."""
    choice = sa.choice
    assert choice is not None
    agreed = (choice.key_bits, choice.hash_alg, choice.group, choice.auth)
    for conn in sa.candidates.for_peer(peer) if sa.candidates else ():
        if conn is sa.conn or conn.remote.auth != "pubkey":
            continue
        try:
            method = auth_method(sa.ctx, conn)
        except PeerError:
            continue
        ours = phase1_choices(conn.proposals, method, conn.isakmp_lifetime)
        if any((c.key_bits, c.hash_alg, c.group, c.auth) == agreed for c in ours):
            log.info("%s: peer '%s' belongs to connection %s", sa.tag(), peer, conn.name)
            sa.conn = conn
            return conn
    return None


def verify(
    method: int, sig: bytes, key: CertificatePublicKeyTypes, hash_value: bytes
) -> SignatureScheme:
    """A SIG payload of ``method`` over ``hash_value`` with the certificate ``key``."""
    if method == AuthV1.RSA_SIG:
        if not isinstance(key, rsa.RSAPublicKey):
            raise PeerError("auth_failed", "RSA signature method but the certificate is not RSA")
        try:
            got = key.recover_data_from_signature(sig, padding.PKCS1v15(), utils.NoDigestInfo())
        except (InvalidSignature, ValueError):
            raise PeerError("auth_failed", "RSA signature does not verify") from None
        if not hmac.compare_digest(got, hash_value):
            raise PeerError("auth_failed", "RSA signature does not verify")
        return SignatureScheme.RSA_PKCS1_NULL
    if method not in _EC:
        raise PeerError("auth_failed", f"authentication method {method} is not a signature")
    curve, size = _EC[method]
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
        raise PeerError("auth_failed", f"method {method} needs an ECDSA {curve.name} certificate")
    if len(sig) != 2 * size:
        raise PeerError("auth_failed", f"ECDSA signature of {len(sig)} bytes, not {2 * size}")
    try:
        key.verify(
            ecdsa_raw_to_der(sig), hash_value, ec.ECDSA(utils.Prehashed(digest_hash(hash_value)))
        )
    except (InvalidSignature, ValueError):
        raise PeerError("auth_failed", "ECDSA signature does not verify") from None
    return SignatureScheme.ECDSA_NULL
