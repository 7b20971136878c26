"""Test certificates made with ``cryptography``: CAs, intermediates, end entities.

ca = make_ca("ecdsa-p256")
gw = issue(ca, "rsa", "gw.example.net", sans=[x509.DNSName("gw.example.net")])
paths = write(tmp_path, "gw", gw)    # gw.pem, gw.key
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def new_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def dn(self) -> str:
        """strongSwan/pike notation of the subject (RDNs in DER order)."""
        return ", ".join(r.rfc4514_string() for r in self.cert.subject.rdns)


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pike test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _build(
    subject: x509.Name,
    key: PrivateKey,
    issuer: Issued | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> Issued:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    for ext, critical in extensions:
        b = b.add_extension(ext, critical)
    signing_key = issuer.key if issuer else key
    return Issued(b.sign(signing_key, _sign_hash(signing_key)), key)


def _ku(digital: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    kind: str = "ecdsa-p256",
    cn: str = "pike test CA",
    *,
    issuer: Issued | None = None,
    path_length: int | None = None,
    ca_flag: bool = True,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 3650 * DAY,
) -> Issued:
    """A root (or, with ``issuer``, an intermediate) CA."""
    return _build(
        name(cn),
        new_key(kind),
        issuer,
        not_before,
        not_after,
        [
            (x509.BasicConstraints(ca=ca_flag, path_length=path_length if ca_flag else None), True),
            (_ku(cert_sign=True), True),
        ],
    )


def issue(
    ca: Issued,
    kind: str,
    cn: str,
    sans: Sequence[x509.GeneralName] = (),
    *,
    digital_signature: bool = True,
    key_usage: bool = True,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 365 * DAY,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """An end-entity certificate for ``cn`` (and ``sans``) signed by ``ca``."""
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True)
    ]
    if key_usage:
        exts.append((_ku(digital=digital_signature), True))
    if sans:
        exts.append((x509.SubjectAlternativeName(list(sans)), False))
    exts.extend(extra)
    return _build(name(cn), new_key(kind), ca, not_before, not_after, exts)


def certify(
    ca: Issued,
    req: x509.CertificateSigningRequest,
    sans: Sequence[x509.GeneralName] = (),
    *,
    not_after: dt.datetime = NOW + DAY,
) -> x509.Certificate:
    """An end-entity certificate for the key behind ``req``: a key made on a token, of
    which we only have the CSR (``pike.hsm.provision.csr``)."""
    b = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(ca.cert.subject)
        .public_key(req.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), False)
    return b.sign(ca.key, _sign_hash(ca.key))


def write(directory: Path, stem: str, issued: Issued, *chain: Issued) -> tuple[Path, Path]:
    """``stem.pem`` (the cert, then ``chain``) and ``stem.key`` (PKCS#8 PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{stem}.pem"
    key = directory / f"{stem}.key"
    cert.write_bytes(
        b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in (issued, *chain))
    )
    key.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key
