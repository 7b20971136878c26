"""RFC 7512 PKCS#11 URIs: ``pkcs11:token=gw;object=ike?module-path=/usr/lib/..&pin-source=..``.

Path attributes (``;``-separated) select the token and the key: ``token``, ``manufacturer``,
``model``, ``serial``, ``object``, ``id``, ``type``, ``slot-id``. Query attributes (``&``)
say how to reach it: ``module-path`` or ``module-name``, and ``pin-source`` (``file:/path``
or a plain path; our extension ``env:NAME`` reads a variable). ``pin-value`` is refused: a
PIN never sits in a config file or a command line. Without ``pin-source`` the PIN comes
from the environment variable ``PIKE_PIN``. Vendor attribute ``x-tpm2-tcti`` sets the TCTI
the tpm2-pkcs11 module uses (``device:/dev/tpmrm0``).

Unknown attributes are errors (a typo never selects "any token"), and so are repeats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

SCHEME = "pkcs11:"
PIN_ENV = "PIKE_PIN"
_PATH_ATTRS = frozenset(
    {"token", "manufacturer", "model", "serial", "object", "id", "type", "slot-id"}
)
_QUERY_ATTRS = frozenset({"module-path", "module-name", "pin-source", "x-tpm2-tcti"})
_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/arm-linux-gnueabihf/pkcs11",
    "/usr/lib/softhsm",
    "/usr/lib/pkcs11",
)


class UriError(ValueError):
    """The text is not a PKCS#11 URI we can use (the message says which part)."""


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    token: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    slot_id: int | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_source: str | None = None
    tcti: str | None = None

    def module(self) -> str:
        """The module file: ``module-path``, or ``module-name`` looked up in the usual
        directories; the path is returned even when it does not exist (the caller says so)."""
        if self.module_path:
            return self.module_path
        if self.module_name:
            for d in MODULE_DIRS:
                for name in (f"{self.module_name}.so", f"lib{self.module_name}.so"):
                    path = os.path.join(d, name)
                    if os.path.exists(path):
                        return path
            return f"{self.module_name}.so"
        raise UriError("needs module-path=... (or module-name=...) to find the PKCS#11 module")

    def token_key(self) -> tuple[str, str | None, str | None, int | None]:
        """What identifies the token: one logged-in session exists per value."""
        return (self.module(), self.token, self.serial, self.slot_id)

    def describe(self) -> str:
        """Short text for log lines: no PIN source, no module path."""
        parts = [f"token={self.token}" if self.token else "token=*"]
        if self.object:
            parts.append(f"object={self.object}")
        if self.id is not None:
            parts.append(f"id={self.id.hex()}")
        return "pkcs11:" + ";".join(parts)

    def __str__(self) -> str:
        return self.describe()


def _decode(name: str, raw: str) -> bytes:
    if any(c in raw for c in '"<>\\^`{|} \t'):
        raise UriError(f"{name}: characters that must be percent-encoded")
    try:
        return unquote_to_bytes(raw)
    except ValueError as exc:  # pragma: no cover - unquote_to_bytes is lenient
        raise UriError(f"{name}: {exc}") from None


def _text(name: str, raw: str) -> str:
    try:
        return _decode(name, raw).decode("utf-8")
    except UnicodeDecodeError:
        raise UriError(f"{name}: not UTF-8 after percent-decoding") from None


def parse(text: str, need_key: bool = True) -> Pkcs11Uri:
    """Parse an RFC 7512 URI (``pkcs11:`` is case-insensitive, attribute names are not)."""
    if not text[: len(SCHEME)].lower() == SCHEME:
        raise UriError("not a pkcs11: URI")
    rest = text[len(SCHEME) :]
    path, _, query = rest.partition("?")
    seen: dict[str, str] = {}
    for part, allowed, where in ((path, _PATH_ATTRS, "path"), (query, _QUERY_ATTRS, "query")):
        if not part:
            continue
        sep = ";" if where == "path" else "&"
        for item in part.split(sep):
            name, eq, value = item.partition("=")
            if not eq or not name:
                # Not echoed when it may hold a PIN (``pin-value1234``).
                shown = "an attribute" if "pin" in item.lower() else repr(item)
                raise UriError(f"{shown} is not name=value")
            if name == "pin-value":
                raise UriError("pin-value is refused: give the PIN by pin-source or PIKE_PIN")
            if (name in _QUERY_ATTRS and where == "path") or (
                name in _PATH_ATTRS and where == "query"
            ):
                raise UriError(
                    f"{name} belongs in the URI's {'path' if where == 'query' else 'query'}"
                )
            if name not in allowed:
                raise UriError(f"unknown attribute {name}")
            if name in seen:
                raise UriError(f"{name} given twice")
            seen[name] = value
    kw: dict[str, object] = {}
    for name, raw in seen.items():
        if name == "id":
            kw["id"] = _decode(name, raw)
        elif name == "slot-id":
            try:
                kw["slot_id"] = int(_text(name, raw))
            except ValueError:
                raise UriError("slot-id must be a decimal number") from None
        elif name == "type":
            value = _text(name, raw)
            if value not in _TYPES:
                raise UriError(f"type={value}: one of {', '.join(sorted(_TYPES))}")
            kw["type"] = value
        elif name == "x-tpm2-tcti":
            kw["tcti"] = _text(name, raw)
        else:
            kw[name.replace("-", "_")] = _text(name, raw)
    uri = Pkcs11Uri(**kw)  # type: ignore[arg-type]
    if uri.type not in (None, "private"):
        raise UriError(f"type={uri.type}: a signing key is type=private")
    if need_key and uri.object is None and uri.id is None:
        raise UriError("names no key: give object=... and/or id=...")
    if uri.module_path is None and uri.module_name is None:
        raise UriError("needs module-path=... (or module-name=...)")
    return uri


def read_pin(uri: Pkcs11Uri, env: dict[str, str] | None = None) -> str:
    """The user PIN from ``pin-source`` (file, or ``env:NAME``) or ``PIKE_PIN``.

    Errors name the source, never the PIN. One trailing newline of a file is dropped.
    """
    environ = os.environ if env is None else env
    src = uri.pin_source
    if src is None or src.startswith("env:"):
        var = PIN_ENV if src is None else src[4:]
        pin = environ.get(var)
        if not pin:
            raise UriError(f"no PIN: set {var} (or pin-source=file:/path in the URI)")
        return pin
    path = src[5:] if src.startswith("file:") else src
    if path.startswith("//"):  # file:///etc/... (empty authority)
        path = path[2:]
    try:
        with open(path, encoding="utf-8") as f:
            pin = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise UriError(f"cannot read PIN file {path}: {reason}") from None
    pin = pin[:-1] if pin.endswith("\n") else pin
    if not pin:
        raise UriError(f"PIN file {path} is empty")
    return pin
