"""pike.hsm: the Signer protocol and the development file-key signer."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    NoDigestInfo,
    Prehashed,
    encode_dss_signature,
)

from pike.hsm.filekey import FileKeySigner
from pike.hsm.signer import (
    SignatureScheme,
    Signer,
    SignerError,
    ecdsa_der_to_raw,
    ecdsa_raw_to_der,
    key_type_of,
)

DATA = b"IKE_SA_INIT | Nr | prf(SK_pi, IDi)"


def _key(kind: str):
    return {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ecdsa-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[kind]()


def _write(tmp_path: Path, key, password: bytes | None = None) -> str:
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )
    return str(path)


SCHEMES = {
    "rsa": [s for s in SignatureScheme if s.family in ("rsa-pkcs1", "rsa-pss") and not s.prehashed],
    "ecdsa-p256": [s for s in SignatureScheme if s.family == "ecdsa" and not s.prehashed],
    "ecdsa-p384": [s for s in SignatureScheme if s.family == "ecdsa" and not s.prehashed],
    "ecdsa-p521": [s for s in SignatureScheme if s.family == "ecdsa" and not s.prehashed],
    "ed25519": [SignatureScheme.ED25519],
}


@pytest.mark.parametrize("kind", list(SCHEMES))
def test_file_key_signs_every_fitting_scheme(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    key = _key(kind)
    signer = FileKeySigner(_write(tmp_path, key))
    assert isinstance(signer, Signer)
    assert signer.key_type == kind
    assert "is a file, not a token" in caplog.text
    pub = signer.public_key()
    for scheme in SCHEMES[kind]:
        sig = signer.sign(DATA, scheme)
        if kind == "ed25519":
            pub.verify(sig, DATA)  # type: ignore[call-arg]
        elif kind == "rsa":
            h = scheme.hash_algorithm()
            pad = (
                padding.PSS(padding.MGF1(h), h.digest_size)
                if scheme.family == "rsa-pss"
                else padding.PKCS1v15()
            )
            pub.verify(sig, DATA, pad, h)  # type: ignore[call-arg,arg-type]
        else:
            pub.verify(sig, DATA, ec.ECDSA(scheme.hash_algorithm()))  # type: ignore[call-arg,arg-type]
    others = [s for s in SignatureScheme if not s.fits(kind)]
    for scheme in others:
        with pytest.raises(SignerError, match="does not fit"):
            signer.sign(DATA, scheme)


def test_warning_once_per_key_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pike.hsm")
    signer = FileKeySigner(_write(tmp_path, _key("ecdsa-p256")))
    signer.sign(DATA, SignatureScheme.ECDSA_SHA256)
    signer.sign(DATA, SignatureScheme.ECDSA_SHA384)
    assert caplog.text.count("is a file, not a token") == 1


def test_encrypted_key(tmp_path: Path) -> None:
    path = _write(tmp_path, _key("ecdsa-p256"), b"pw")
    assert FileKeySigner(path, b"pw").key_type == "ecdsa-p256"
    with pytest.raises(SignerError, match="not a usable PEM private key"):
        FileKeySigner(path)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="cannot read key file"):
        FileKeySigner(str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SignerError, match="not a usable PEM private key"):
        FileKeySigner(str(junk))
    secp256k1 = _write(tmp_path, ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(SignerError, match="unsupported key"):
        FileKeySigner(secp256k1)


def test_ecdsa_raw_der_conversion() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    der = key.sign(DATA, ec.ECDSA(hashes.SHA384()))
    raw = ecdsa_der_to_raw(der, 48)
    assert len(raw) == 96
    assert ecdsa_raw_to_der(raw) == der
    with pytest.raises(ValueError, match="odd"):
        ecdsa_raw_to_der(raw[:-1])


@pytest.mark.parametrize("half", [1, 2, 32, 48, 60, 61, 66])
def test_ecdsa_raw_to_der_is_the_library_encoding(half: int) -> None:
    """The hand-built DER (the hot path after every token signature) gives the octets
    ``encode_dss_signature`` gives: leading zeros dropped, a zero octet before a high
    bit, zero itself, and the long-form lengths past P-384 (left to the library)."""
    rng = random.Random(half)
    edge = [
        bytes(half),
        b"\xff" * half,
        b"\x80" + bytes(half - 1),
        bytes(half - 1) + b"\x7f",
        bytes(half - 1) + b"\x80",
        bytes(half // 2) + b"\x80" * (half - half // 2),
    ]
    values = edge + [rng.randbytes(half) for _ in range(200)]
    for r in values:
        for s in (values[rng.randrange(len(values))], rng.randbytes(half)):
            want = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            assert ecdsa_raw_to_der(r + s) == want
            assert ecdsa_der_to_raw(want, half) == r + s
    with pytest.raises(ValueError, match="odd"):
        ecdsa_raw_to_der(b"")


def test_key_type_of() -> None:
    assert key_type_of(_key("ecdsa-p384").public_key()) == "ecdsa-p384"
    assert key_type_of(ec.generate_private_key(ec.SECP521R1())) == "ecdsa-p521"
    assert key_type_of(ec.generate_private_key(ec.SECP256K1())) is None
    assert key_type_of(object()) is None


@pytest.mark.parametrize("kind", ["rsa", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"])
def test_file_key_signs_a_given_digest_for_ikev1(tmp_path: Path, kind: str) -> None:
    """RSA_PKCS1_NULL: PKCS#1 v1.5 padding around the bare digest (no DigestInfo), as
    strongSwan's SIGN_RSA_EMSA_PKCS1_NULL; ECDSA_NULL: the data is the digest."""
    key = _key(kind)
    signer = FileKeySigner(_write(tmp_path, key))
    pub = key.public_key()
    sizes = [(20, hashes.SHA1()), (32, hashes.SHA256()), (48, hashes.SHA384())]
    for size, h in [*sizes, (64, hashes.SHA512())]:
        digest = bytes(range(size))
        if kind == "rsa":
            sig = signer.sign(digest, SignatureScheme.RSA_PKCS1_NULL)
            assert (
                pub.recover_data_from_signature(sig, padding.PKCS1v15(), NoDigestInfo()) == digest
            )
        else:
            sig = signer.sign(digest, SignatureScheme.ECDSA_NULL)
            pub.verify(sig, digest, ec.ECDSA(Prehashed(h)))
    if kind != "rsa":
        with pytest.raises(SignerError, match="cannot sign a 7-byte digest"):
            signer.sign(b"7 bytes", SignatureScheme.ECDSA_NULL)
