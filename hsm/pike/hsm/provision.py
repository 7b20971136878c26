"""Provisioning a token: key pairs made on the token, CSRs and certificates it signs.

Keys are generated on the token, sensitive and non-extractable. The EC templates are the
ones tpm2-pkcs11 1.9 accepts (measured on swtpm: it maps ENCRYPT/WRAP/DECRYPT/UNWRAP/DERIVE
oddly and refuses other templates with "attr mismatch"); SoftHSM takes them too.

A CSR (PKCS#10) is DER we build here, signed by the token through a Signer: ``cryptography``
signs only with keys it holds. A self-signed certificate is built by ``cryptography``
around the token's public key, and its TBS is signed again by the token.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import DEFAULT, Mechanism
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11e
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from pike.hsm.signer import KeyType, SignatureScheme, Signer

KINDS = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa2048", "rsa3072", "ed25519")
_CURVE_OIDS = {
    "ecdsa-p256": "1.2.840.10045.3.1.7",
    "ecdsa-p384": "1.3.132.0.34",
    "ecdsa-p521": "1.3.132.0.35",
}
_ED25519_PARAMS = b"\x13\x0cedwards25519"  # PrintableString, as SoftHSM expects

# signature scheme and AlgorithmIdentifier DER per key type, for CSRs and certificates
_SIGALG: dict[KeyType, tuple[SignatureScheme, bytes]] = {
    "ecdsa-p256": (SignatureScheme.ECDSA_SHA256, bytes.fromhex("300a06082a8648ce3d040302")),
    "ecdsa-p384": (SignatureScheme.ECDSA_SHA384, bytes.fromhex("300a06082a8648ce3d040303")),
    "ecdsa-p521": (SignatureScheme.ECDSA_SHA512, bytes.fromhex("300a06082a8648ce3d040304")),
    "rsa": (SignatureScheme.RSA_PKCS1_SHA256, bytes.fromhex("300d06092a864886f70d01010b0500")),
    "ed25519": (SignatureScheme.ED25519, bytes.fromhex("300506032b6570")),
}


def generate(session: Any, kind: str, label: str, key_id: bytes) -> None:
    """A key pair on the token: private part sensitive, non-extractable, sign only."""
    priv: dict[Any, Any] = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
    if kind.startswith("rsa") and kind[3:].isdigit():
        session.generate_keypair(
            P11KeyType.RSA, int(kind[3:]), store=True, label=label, id=key_id,
            private_template=priv,
        )  # fmt: skip
        return
    if kind in _CURVE_OIDS:
        params = encode_named_curve_parameters(_CURVE_OIDS[kind])
        key_type = P11KeyType.EC
    elif kind == "ed25519":
        params = _ED25519_PARAMS
        key_type = P11KeyType.EC_EDWARDS
    else:
        raise ValueError(f"key type {kind}: one of {', '.join(KINDS)}")
    # The template tpm2-pkcs11 accepts (measured; "attr mismatch" otherwise): these
    # attributes left out of the templates rather than set.
    pub: dict[Any, Any] = {Attribute.ENCRYPT: DEFAULT, Attribute.WRAP: DEFAULT}
    priv.update({Attribute.DECRYPT: DEFAULT, Attribute.UNWRAP: DEFAULT, Attribute.DERIVE: DEFAULT})
    dp = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: params}, local=True)
    public, private = dp.generate_keypair(
        store=True, label=label, id=key_id, public_template=pub, private_template=priv
    )
    if kind in _CURVE_OIDS:
        _probe(public, private, kind)


def _probe(public: Any, private: Any, kind: str) -> None:
    """Sign once with a new EC key. tpm2-pkcs11 1.9 makes P-521 keys that it cannot sign
    with (C_Sign: HostMemory, "d2i_ASN1_OCTET_STRING: too long"): the type is refused
    here rather than left to fail every IKE_AUTH. Such a token cannot destroy the private
    object either (FunctionFailed, measured), so the message says what is left."""
    try:
        private.sign(bytes(64), mechanism=Mechanism.ECDSA)
    except p11e.PKCS11Error as exc:
        left = []
        for name, obj in (("public", public), ("private", private)):
            try:
                obj.destroy()
            except p11e.PKCS11Error:
                left.append(name)
        what = f"{' and '.join(left)} key object left on the token" if left else "key removed"
        raise ValueError(
            f"the token made the {kind} key but cannot sign with it "
            f"({type(exc).__name__}): {what}; choose another --type"
        ) from None


# -- DER, just what PKCS#10 needs -----------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + head + body


def _signed(tbs: bytes, signer: Signer) -> bytes:
    scheme, alg = _SIGALG[signer.key_type]
    sig = signer.sign(tbs, scheme)
    return _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + sig))


def _spki(signer: Signer) -> bytes:
    return signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _san_attribute(sans: list[x509.GeneralName]) -> bytes:
    """pkcs-9 extensionRequest with one subjectAltName extension."""
    # Let cryptography encode the extension value (a throwaway certificate would be more
    # work): x509.SubjectAlternativeName.public_bytes() gives the extnValue DER.
    ext_value = x509.SubjectAlternativeName(sans).public_bytes()
    ext = _tlv(0x30, _tlv(0x06, bytes.fromhex("551d11")) + _tlv(0x04, ext_value))
    exts = _tlv(0x30, ext)
    oid = _tlv(0x06, bytes.fromhex("2a864886f70d01090e"))
    return _tlv(0x30, oid + _tlv(0x31, exts))


def csr(
    signer: Signer, subject: x509.Name, sans: list[x509.GeneralName]
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (RFC 2986) for the token key, signed by it."""
    attrs = _san_attribute(sans) if sans else b""
    info = _tlv(
        0x30,
        _tlv(0x02, b"\x00") + subject.public_bytes() + _spki(signer) + _tlv(0xA0, attrs),
    )
    req = x509.load_der_x509_csr(_signed(info, signer))
    if not req.is_signature_valid:
        raise ValueError("the token's CSR signature does not verify")
    return req


@dataclass(frozen=True)
class _Stub:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


_STUB_CURVES: dict[KeyType, type[ec.EllipticCurve]] = {
    "ecdsa-p256": ec.SECP256R1,
    "ecdsa-p384": ec.SECP384R1,
    "ecdsa-p521": ec.SECP521R1,
}

# the hash of _SIGALG's scheme, as CertificateBuilder.sign takes it
_STUB_HASHES: dict[KeyType, hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None] = {
    "rsa": hashes.SHA256(),
    "ecdsa-p256": hashes.SHA256(),
    "ecdsa-p384": hashes.SHA384(),
    "ecdsa-p521": hashes.SHA512(),
    "ed25519": None,
}


def _stub_key(kind: KeyType) -> _Stub:
    if kind == "rsa":
        return _Stub(rsa.generate_private_key(65537, 2048))
    if kind == "ed25519":
        return _Stub(ed25519.Ed25519PrivateKey.generate())
    return _Stub(ec.generate_private_key(_STUB_CURVES[kind]()))


def self_signed(
    signer: Signer, subject: x509.Name, sans: list[x509.GeneralName], days: int = 365
) -> x509.Certificate:
    """A self-signed certificate of the token key (TBS built by cryptography, signed by us)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pub = signer.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), False)
    kind = signer.key_type
    stub = _stub_key(kind).key
    hash_alg = _STUB_HASHES[kind]
    draft = b.sign(stub, hash_alg)  # same algorithm identifiers; only the signature changes
    cert = x509.load_der_x509_certificate(_signed(draft.tbs_certificate_bytes, signer))
    cert.verify_directly_issued_by(cert)
    return cert


def import_cert(session: Any, cert: x509.Certificate, label: str, key_id: bytes) -> None:
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: 0,  # CKC_X_509
            Attribute.TOKEN: True,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: _tlv(0x02, _int_bytes(cert.serial_number)),
            Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
        }
    )


def replace_cert(session: Any, cert: x509.Certificate, label: str, key_id: bytes) -> int:
    """Import ``cert`` and then remove the key's other certificates (a renewal: the token
    keeps one certificate per key). Returns how many were removed."""
    import_cert(session, cert, label, key_id)
    new = cert.public_bytes(serialization.Encoding.DER)
    old = [
        obj
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
        if bytes(obj[Attribute.ID]) == key_id and bytes(obj[Attribute.VALUE]) != new
    ]
    for obj in old:
        obj.destroy()
    return len(old)


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def list_objects(session: Any) -> list[tuple[str, str, str, str]]:
    """(class, label, id hex, detail) of the token's keys and certificates."""
    rows = []
    for cls, name in (
        (ObjectClass.PRIVATE_KEY, "private"),
        (ObjectClass.PUBLIC_KEY, "public"),
        (ObjectClass.CERTIFICATE, "cert"),
    ):
        for obj in session.get_objects({Attribute.CLASS: cls}):
            label = obj[Attribute.LABEL]
            kid = bytes(obj[Attribute.ID]).hex()
            detail = ""
            if cls == ObjectClass.PRIVATE_KEY:
                sens = obj[Attribute.SENSITIVE]
                extr = obj[Attribute.EXTRACTABLE]
                detail = f"{obj.key_type.name} sensitive={sens} extractable={extr}"
            elif cls == ObjectClass.CERTIFICATE:
                cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
                detail = cert.subject.rfc4514_string()
            rows.append((name, str(label), kid, detail))
    return rows


def public_pem(signer: Signer) -> bytes:
    return signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
