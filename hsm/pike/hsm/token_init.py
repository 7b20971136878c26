"""Initializing a fresh token: C_InitToken, then the user PIN (C_InitPIN as SO).

python-pkcs11 0.10.1 has no C_InitToken, so it is called through ctypes on the module
python-pkcs11 already loaded and initialized: dlopen of the same path returns the same
handle, so the call sees the initialized library (measured: SoftHSM2 2.6.1 and
tpm2-pkcs11 1.9.0 both export the symbol). tpm2-pkcs11 initializes a token on a TPM that
no ``tpm2_ptool`` ever touched: an empty ``TPM2_PKCS11_STORE`` directory is enough, the
module creates its database and primary key there.

PINs go to the module only: never into messages or exceptions.
"""

from __future__ import annotations

import ctypes
from typing import Any

from pkcs11 import exceptions as p11e
from pkcs11.constants import TokenFlag

LABEL_SIZE = 32  # CK_TOKEN_INFO.label: UTF-8, padded with spaces

# CKR_* values worth a name in the one-line error (PKCS#11 v2.40 §5.1).
_CKR = {
    0x03: "SLOT_ID_INVALID",
    0x05: "GENERAL_ERROR",
    0x06: "FUNCTION_FAILED",
    0x30: "DEVICE_ERROR",
    0x31: "DEVICE_MEMORY",
    0x32: "DEVICE_REMOVED",
    0x54: "FUNCTION_NOT_SUPPORTED",
    0xA0: "PIN_INCORRECT",
    0xA1: "PIN_INVALID",
    0xA2: "PIN_LEN_RANGE",
    0xA4: "PIN_LOCKED",
    0xB6: "SESSION_EXISTS",
    0xE0: "TOKEN_NOT_PRESENT",
    0xE2: "TOKEN_WRITE_PROTECTED",
    0x190: "CRYPTOKI_NOT_INITIALIZED",
}


class TokenExists(ValueError):
    """A token with that label is already initialized: nothing was changed."""


def padded_label(label: str) -> bytes:
    raw = label.encode("utf-8")
    if not raw or len(raw) > LABEL_SIZE or label != label.strip():
        raise ValueError(f"token label must be 1-{LABEL_SIZE} bytes without outer spaces")
    return raw.ljust(LABEL_SIZE, b" ")


def _c_init_token(module_path: str, slot_id: int, so_pin: str, label: bytes) -> None:
    fn = ctypes.CDLL(module_path).C_InitToken
    fn.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    fn.restype = ctypes.c_ulong
    pin = so_pin.encode("utf-8")
    rv = int(fn(slot_id, pin, len(pin), label))
    if rv:
        raise ValueError(f"C_InitToken failed: CKR_{_CKR.get(rv, f'{rv:#x}')}")


def init_token(lib: Any, module_path: str, label: str, so_pin: str, user_pin: str) -> int:
    """Initialize the first uninitialized token as ``label``, set its user PIN; the slot id.

    ``lib`` is the python-pkcs11 library loaded from ``module_path``.
    """
    padded = padded_label(label)
    fresh = None
    for slot in lib.get_slots(token_present=True):
        tok = slot.get_token()
        if TokenFlag.TOKEN_INITIALIZED in tok.flags:
            if tok.label == label:
                raise TokenExists(f"token {label} already exists")
        elif fresh is None:
            fresh = slot.slot_id
    if fresh is None:
        raise ValueError("no slot with an uninitialized token")
    _c_init_token(module_path, fresh, so_pin, padded)
    # The slot list changed under python-pkcs11: read it again (tpm2-pkcs11 adds a new
    # empty slot; SoftHSM2 may give the token another slot id at the next C_Initialize).
    tok = next(
        (s.get_token() for s in lib.get_slots(token_present=True)
         if s.get_token().label == label),
        None,
    )  # fmt: skip
    if tok is None:
        raise ValueError(f"C_InitToken succeeded but no token {label} is listed")
    try:
        with tok.open(rw=True, so_pin=so_pin) as session:
            session.init_pin(user_pin)
    except p11e.PKCS11Error as exc:
        # The label is taken now: say so, or a rerun would only see "already exists".
        raise ValueError(
            f"token {label} was initialized but its user PIN was not set "
            f"({type(exc).__name__}); set it as SO or start from a fresh token"
        ) from None
    return int(fresh)
