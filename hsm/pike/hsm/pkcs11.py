"""Keys in a PKCS#11 token (SoftHSM2, a USB HSM, a TPM 2.0 through tpm2-pkcs11).

``Pkcs11Signer(uri)`` signs with the private key an RFC 7512 URI names. The rules the
tokens impose (measured with SoftHSM2 2.6 and tpm2-pkcs11 1.9 on swtpm; docs/architecture.md):

- login is per process, not per session: one logged-in session per token
  (:class:`TokenSession`), shared by every key on it, kept open;
- we hash: ECDSA goes through raw ``CKM_ECDSA`` over our digest (SoftHSM has no hashed
  variant), RSA through ``CKM_RSA_PKCS`` over a DigestInfo and ``CKM_RSA_PKCS_PSS`` over a
  digest (salt = hash length), Ed25519 through ``CKM_EDDSA``. ECDSA comes back as r||s
  and leaves here as DER (the Signer contract);
- a token that went away (sign gives ObjectHandleInvalid/GeneralError, a new open
  UserAlreadyLoggedIn) needs ``C_Finalize`` + ``C_Initialize`` before anything works again.

Failure is a :class:`TokenState` (readable by metrics through the CredentialStore), one log
line when the state changes, and :class:`TokenUnavailable` from ``sign`` so IKE_AUTH fails
closed. Recovery is a bounded re-probe on the next use, at most every ``REPROBE_INTERVAL``,
or at once by ``reprobe`` (a USB token was plugged in or pulled: ``pike.board.hotplug``).
A PIN that the token refused is never presented again: only a different PIN (the operator
changed the PIN file or variable) is tried, once. A locked token (PinLocked) is never
logged in to again by this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import exceptions as p11e
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import MGF, Mechanism
from pkcs11.mechanisms import KeyType as P11KeyType

from pike.hsm.signer import (
    KeyType,
    PublicKey,
    SignatureScheme,
    SignerError,
    ecdsa_raw_to_der,
    key_type_of,
)
from pike.hsm.signer import TokenState as TokenState  # its home before pike.hsm.signer
from pike.hsm.uri import Pkcs11Uri, UriError, parse, read_pin

log = logging.getLogger("pike.hsm")

REPROBE_INTERVAL = 5.0  # seconds between two attempts to reach a token that failed


class TokenUnavailable(SignerError):
    """The key cannot sign now; ``state`` says why. IKE_AUTH fails closed."""

    def __init__(self, message: str, state: TokenState) -> None:
        super().__init__(message)
        self.state = state


# Errors that mean "the token (or its resource manager) is gone": recovery needs
# C_Finalize + C_Initialize.
_GONE = (
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
    p11e.GeneralError,
    p11e.DeviceError,
    p11e.DeviceRemoved,
    p11e.DeviceMemory,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.UserNotLoggedIn,
    p11e.UserAlreadyLoggedIn,
    p11e.FunctionFailed,
    p11e.SlotIDInvalid,
)

# DigestInfo prefixes of RFC 8017 §9.2 note 1 (for CKM_RSA_PKCS over our digest).
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_PSS_PARAMS = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1, 20),
    "sha256": (Mechanism.SHA256, MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, MGF.SHA512, 64),
}
# EC_PARAMS (named curve OID) -> curve and size of a coordinate
_CURVES: dict[bytes, tuple[type[ec.EllipticCurve], int]] = {
    bytes.fromhex("06082a8648ce3d030107"): (ec.SECP256R1, 32),
    bytes.fromhex("06052b81040022"): (ec.SECP384R1, 48),
    bytes.fromhex("06052b81040023"): (ec.SECP521R1, 66),
}
_ED25519_PARAMS = (bytes.fromhex("06032b6570"), b"\x13\x0cedwards25519")


# -- modules: one loaded library per path per process --------------------------------------


class Module:
    """A loaded PKCS#11 library. ``generation`` counts re-initializations: every session
    opened before the last one is dead (C_Finalize closes them all)."""

    def __init__(self, path: str, tcti: str | None) -> None:
        self.path = path
        self.tcti = tcti
        self.lock = threading.RLock()
        self.lib: Any = None
        self.generation = 0
        self.needs_reinit = False

    def load(self) -> Any:
        if self.lib is None:
            if self.tcti:
                # tpm2-pkcs11 reads it in C_Initialize; an explicit environment wins.
                os.environ.setdefault("TPM2_PKCS11_TCTI", self.tcti)
            if not os.path.exists(self.path):
                raise _Fail(TokenState.MODULE_MISSING, f"PKCS#11 module {self.path} not found")
            try:
                self.lib = pkcs11.lib(self.path)
            except p11e.PKCS11Error as exc:
                raise _Fail(
                    TokenState.MODULE_MISSING, f"cannot load PKCS#11 module {self.path}: {exc}"
                ) from None
            self.needs_reinit = False
        elif self.needs_reinit:
            try:
                self.lib.reinitialize()
            except p11e.PKCS11Error as exc:
                raise _Fail(
                    TokenState.FAILED, f"{self.path}: C_Initialize failed: {_name(exc)}"
                ) from None
            self.generation += 1
            self.needs_reinit = False
        return self.lib


_MODULES: dict[str, Module] = {}
_MODULES_LOCK = threading.RLock()


def module(path: str, tcti: str | None = None) -> Module:
    with _MODULES_LOCK:
        if path not in _MODULES:
            _MODULES[path] = Module(path, tcti)
        return _MODULES[path]


class _Fail(Exception):
    def __init__(self, state: TokenState, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


def _name(exc: BaseException) -> str:
    text = str(exc)
    return type(exc).__name__ + (f" ({text})" if text else "")


def find_token(lib: Any, uri: Pkcs11Uri) -> Any:
    """The one token the URI's path names (label, serial, manufacturer, model, slot)."""
    matches = []
    for slot in lib.get_slots(token_present=True):
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        tok = slot.get_token()
        if uri.token is not None and tok.label != uri.token:
            continue
        if uri.serial is not None and tok.serial.decode("ascii", "replace").strip() != uri.serial:
            continue
        if uri.manufacturer is not None and tok.manufacturer_id != uri.manufacturer:
            continue
        if uri.model is not None and tok.model != uri.model:
            continue
        matches.append(tok)
    if not matches:
        raise _Fail(TokenState.ABSENT, f"no token {uri.token or '*'} in {uri.module()}")
    if len(matches) > 1:
        raise _Fail(TokenState.FAILED, f"{len(matches)} tokens match {uri}: name one (token=)")
    return matches[0]


# -- one logged-in session per token --------------------------------------------------------


class TokenSession:
    """The logged-in session of one token, its state, and the re-probe schedule."""

    def __init__(self, uri: Pkcs11Uri, clock: Callable[[], float] = time.monotonic) -> None:
        self.uri = uri
        self.module = module(uri.module(), uri.tcti)
        self.clock = clock
        self.state = TokenState.UNKNOWN
        self.reason = "not tried yet"
        self.session: Any = None
        self.generation = -1
        self._next_probe = 0.0
        self._salt = os.urandom(16)
        self._refused_pin: bytes | None = None  # HMAC of a PIN the token refused
        self._locked = False
        self._was_ready = False

    @property
    def name(self) -> str:
        return f"token {self.uri.token or '*'}"

    def set_state(self, state: TokenState, reason: str) -> None:
        if state != self.state:
            if state is TokenState.READY:
                log.info("%s: ready (%s)", self.name, reason)
            else:
                log.error("%s: %s: %s", self.name, state.value, reason)
        self.state, self.reason = state, reason

    def unavailable(self) -> TokenUnavailable:
        return TokenUnavailable(f"{self.name} {self.state.value}: {self.reason}", self.state)

    def lost(self, exc: BaseException, what: str) -> TokenUnavailable:
        """A call failed on a session that worked: drop it, re-probe later."""
        if isinstance(exc, _GONE):
            self.module.needs_reinit = True
            self.set_state(TokenState.ABSENT, f"{what} failed: {_name(exc)}, token gone")
        else:
            self.set_state(TokenState.FAILED, f"{what} failed: {_name(exc)}")
        self.session = None
        self._next_probe = self.clock() + REPROBE_INTERVAL
        return self.unavailable()

    def get(self) -> Any:
        """The logged-in session; raises TokenUnavailable (quickly while backing off)."""
        if self.session is not None and self.generation == self.module.generation:
            return self.session
        if self._locked:
            raise self.unavailable()
        now = self.clock()
        if self.state is not TokenState.UNKNOWN and now < self._next_probe:
            raise self.unavailable()
        self._next_probe = now + REPROBE_INTERVAL
        try:
            self.session = self._open()
        except _Fail as fail:
            self.session = None
            self.set_state(fail.state, fail.message)
            raise self.unavailable() from None
        self.generation = self.module.generation
        self.set_state(TokenState.READY, "logged in" + (" again" if self._was_ready else ""))
        self._was_ready = True
        return self.session

    def reprobe(self) -> TokenState:
        """Look at the token now, whatever the back-off: a live session is checked (is the
        token still in its slot?), a missing one is opened. The PIN rules still hold: a
        refused PIN is not presented again, a locked token not logged in to."""
        if self.session is not None and self.generation == self.module.generation:
            try:
                find_token(self.module.lib, self.uri)
            except _Fail as fail:
                self.module.needs_reinit = True
                self.set_state(fail.state, f"re-probe: {fail.message}")
                self.session = None
                self._next_probe = self.clock() + REPROBE_INTERVAL
            except p11e.PKCS11Error as exc:
                self.lost(exc, "re-probe")
            return self.state
        self._next_probe = 0.0
        with contextlib.suppress(TokenUnavailable):
            self.get()
        return self.state

    def _pin_mac(self, pin: str) -> bytes:
        return hmac.new(self._salt, pin.encode(), hashlib.sha256).digest()

    def _open(self) -> Any:
        if self.session is not None or self.state in (TokenState.ABSENT, TokenState.FAILED):
            # A session of an older generation, or a token that went away.
            self.module.needs_reinit = self.module.lib is not None
        self.session = None
        try:
            pin = read_pin(self.uri)
        except UriError as exc:
            raise _Fail(TokenState.PIN_MISSING, str(exc)) from None
        mac = self._pin_mac(pin)
        if self._refused_pin is not None and hmac.compare_digest(mac, self._refused_pin):
            raise _Fail(
                TokenState.PIN_INCORRECT,
                "the token refused this PIN; not presented again (fix the PIN source)",
            )
        try:
            lib = self.module.load()
            token = find_token(lib, self.uri)
            try:
                return token.open(user_pin=pin)
            except p11e.UserAlreadyLoggedIn:
                # A login of a session that died with the token: only C_Finalize clears it.
                self.module.needs_reinit = True
                lib = self.module.load()
                return find_token(lib, self.uri).open(user_pin=pin)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange, p11e.PinExpired) as exc:
            self._refused_pin = mac
            raise _Fail(
                TokenState.PIN_INCORRECT,
                f"login refused ({type(exc).__name__}); the PIN is not retried",
            ) from None
        except p11e.PinLocked:
            self._locked = True
            raise _Fail(
                TokenState.PIN_LOCKED,
                "the token is locked (PinLocked); no further login until piked restarts",
            ) from None
        except (p11e.NoSuchToken, p11e.TokenNotPresent, p11e.TokenNotRecognised) as exc:
            self.module.needs_reinit = True
            raise _Fail(TokenState.ABSENT, f"no token {self.uri.token}: {_name(exc)}") from None
        except p11e.PKCS11Error as exc:
            if self.module.lib is not None:
                self.module.needs_reinit = True
            state = TokenState.ABSENT if isinstance(exc, _GONE) else TokenState.FAILED
            raise _Fail(state, f"cannot open a session: {_name(exc)}") from None


_TOKENS: dict[tuple[str, str | None, str | None, int | None], TokenSession] = {}


def token_session(uri: Pkcs11Uri) -> TokenSession:
    key = uri.token_key()
    with _MODULES_LOCK:
        if key not in _TOKENS:
            _TOKENS[key] = TokenSession(uri)
        return _TOKENS[key]


def token_states() -> dict[str, TokenState]:
    """Every token this process uses, by label (for metrics)."""
    return {ts.uri.token or "*": ts.state for ts in list(_TOKENS.values())}


# -- public keys out of token attributes ----------------------------------------------------


def _ec_point(raw: bytes, size: int) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING by the spec; some tokens give the bare point."""
    if len(raw) == size:
        return raw
    if raw[0] == 0x04 and raw[1] == len(raw) - 2:
        return raw[2:]
    if raw[0] == 0x04 and raw[1] == 0x81 and raw[2] == len(raw) - 3:
        return raw[3:]
    raise SignerError(f"cannot read EC_POINT of {len(raw)} octets")


def public_key_of(obj: Any) -> PublicKey:
    """A ``cryptography`` public key from a PKCS#11 public (or private) key object."""
    kt = obj.key_type
    if kt == P11KeyType.RSA:
        n = int.from_bytes(obj[Attribute.MODULUS], "big")
        e = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    params = bytes(obj[Attribute.EC_PARAMS])
    point = bytes(obj[Attribute.EC_POINT])
    if kt == P11KeyType.EC_EDWARDS or params in _ED25519_PARAMS:
        return ed25519.Ed25519PublicKey.from_public_bytes(_ec_point(point, 32))
    if params not in _CURVES:
        raise SignerError(f"unsupported curve (EC_PARAMS {params.hex()})")
    curve, size = _CURVES[params]
    return ec.EllipticCurvePublicKey.from_encoded_point(curve(), _ec_point(point, 2 * size + 1))


def _label_id(uri: Pkcs11Uri) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if uri.object is not None:
        kw["label"] = uri.object
    if uri.id is not None:
        kw["id"] = uri.id
    return kw


# -- the signer -----------------------------------------------------------------------------


class Pkcs11Signer:
    """A Signer whose private key stays in a PKCS#11 token.

    Construction never raises for a token problem: the state is kept and reported, and the
    key is looked up on first use. The public key (and so the key type) is cached once read,
    so a token that goes away later still lets the configuration be checked.
    """

    in_token = True  # pike.hsm.signer.token_signer: a TokenSigner

    def __init__(self, uri: str | Pkcs11Uri) -> None:
        self.uri = parse(uri) if isinstance(uri, str) else uri
        self.token = token_session(self.uri)
        self._key: Any = None
        self._generation = -1
        self._public: PublicKey | None = None
        self._type: KeyType | None = None
        self._plans: dict[SignatureScheme, _Plan] = {}
        self._scheme: SignatureScheme | None = None  # the last scheme and its plan
        self._plan: _Plan = _NO_PLAN
        self._lock = self.token.module.lock  # modules are never replaced: bind it once
        self.probed = False  # probe() or reprobe() has answered (piked's first look)

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.uri.describe()!r})"

    @property
    def state(self) -> TokenState:
        return self.token.state

    @property
    def public_known(self) -> bool:
        """The public key has been read (``public_key`` needs no token call)."""
        return self._public is not None

    def probe(self) -> TokenState:
        """Reach the token and the key now (at start); never raises for a token problem."""
        try:
            with self.token.module.lock:
                self._private()
        except SignerError:
            pass
        finally:
            self.probed = True
        return self.token.state

    def reprobe(self) -> TokenState:
        """Re-probe the token now (hot-plug); never raises for a token problem."""
        with self.token.module.lock:
            if self.token.reprobe() is TokenState.READY:
                with contextlib.suppress(SignerError):
                    self._private()
        self.probed = True
        return self.token.state

    def _private(self) -> Any:
        tok = self.token
        session = tok.get()
        if self._key is not None and self._generation == tok.module.generation:
            return self._key
        try:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, **_label_id(self.uri))
            if self._public is None:
                self._load_public(session, key)
        except (p11e.NoSuchKey, p11e.MultipleObjectsReturned) as exc:
            what = "no such key" if isinstance(exc, p11e.NoSuchKey) else "several keys match"
            tok.set_state(TokenState.NO_KEY, f"{self.uri.describe()}: {what}")
            raise tok.unavailable() from None
        except p11e.PKCS11Error as exc:
            raise tok.lost(exc, "key lookup") from None
        self._key, self._generation = key, tok.module.generation
        return key

    def _load_public(self, session: Any, private: Any) -> None:
        try:
            pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, **_label_id(self.uri))
            public = public_key_of(pub)
        except p11e.NoSuchKey:
            public = public_key_of(private)  # tokens that keep the public part there too
        kind = key_type_of(public)
        if kind is None:
            raise SignerError(f"{self.uri.describe()}: unsupported key")
        self._public, self._type = public, kind

    @property
    def key_type(self) -> KeyType:
        if self._type is None:
            with self.token.module.lock:
                self._private()
        assert self._type is not None
        return self._type

    def public_key(self) -> PublicKey:
        if self._public is None:
            with self.token.module.lock:
                self._private()
        assert self._public is not None
        return self._public

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        # The hot path runs once per IKE_AUTH and costs next to a software token's own
        # work (~0.1 ms for P-256): a few attribute compares, no lookups, no hashing of
        # the Enum (its __hash__ is Python code), see tests/bench/bench_signing.py.
        with self._lock:
            tok = self.token
            key = self._key
            if (
                key is None
                or tok.session is None
                or not self._generation == tok.module.generation == tok.generation
            ):
                key = self._private()  # (re)opens, or raises TokenUnavailable: fail closed
            plan = self._plan if scheme is self._scheme else self._plan_for(scheme)
            mech, param, prefix, hasher, der = plan
            payload = data if hasher is None else prefix + hasher(data).digest()
            try:
                raw: bytes = key.sign(payload, mechanism=mech, mechanism_param=param)
            except (p11e.MechanismInvalid, p11e.MechanismParamInvalid) as exc:
                raise SignerError(f"{self.uri}: token refuses {mech.name}: {_name(exc)}") from None
            except p11e.PKCS11Error as exc:
                self._key = None
                raise self.token.lost(exc, "sign") from None
        return ecdsa_raw_to_der(raw) if der else raw

    def _plan_for(self, scheme: SignatureScheme) -> _Plan:
        """The plan of ``scheme``, remembered as the next call's (one scheme per key is
        the usual case) and in the table; SignerError if the key cannot make it."""
        plan = self._plans.get(scheme)
        if plan is None:
            assert self._type is not None
            if not scheme.fits(self._type):
                raise SignerError(f"{scheme.name} does not fit a {self._type} key ({self.uri})")
            plan = self._plans[scheme] = _plan(scheme)
        self._scheme, self._plan = scheme, plan
        return plan


_Plan = tuple[Mechanism, Any, bytes, Callable[[bytes], Any] | None, bool]
_NO_PLAN: _Plan = (Mechanism.ECDSA, None, b"", None, False)  # never used: _scheme is None


def _plan(scheme: SignatureScheme) -> _Plan:
    """(mechanism, parameter, prefix, hash, DER-encode?) of one signature scheme: we hash,
    the token signs the digest (DigestInfo-prefixed for PKCS#1 v1.5)."""
    family, hname = scheme.family, scheme.hash_name
    if family == "ed25519":
        return Mechanism.EDDSA, None, b"", None, False
    if scheme.prehashed:
        # IKEv1's *_NULL schemes: the data is the digest, signed as it is (CKM_RSA_PKCS
        # pads it without a DigestInfo).
        if family == "ecdsa":
            return Mechanism.ECDSA, None, b"", None, True
        return Mechanism.RSA_PKCS, None, b"", None, False
    assert hname is not None
    hasher = getattr(hashlib, hname)
    if family == "ecdsa":
        return Mechanism.ECDSA, None, b"", hasher, True
    if family == "rsa-pss":
        return Mechanism.RSA_PKCS_PSS, _PSS_PARAMS[hname], b"", hasher, False
    return Mechanism.RSA_PKCS, None, _DIGEST_INFO[hname], hasher, False
