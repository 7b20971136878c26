"""``pike.toml`` -> ``Config``, validated, with errors that name file, line and key.

Every key is checked (unknown keys are errors, so typos cannot pass silently); addresses,
proposals, traffic selectors, identities and secrets are parsed here so that the daemon
and the engines only ever see valid values. Error text never contains a secret.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar, cast

from pike.crypto.errors import ProposalError
from pike.crypto.ids import ADDKE_TYPES, TransformType
from pike.crypto.ke import is_kem
from pike.crypto.proposal import ProposalSpec, algorithm_name, parse_proposal
from pike.policy import toml_fast
from pike.policy.addrs import is_name
from pike.policy.config import (
    AuthConfig,
    AuthorityConfig,
    ChildConfig,
    CloseAction,
    Config,
    ConnectionConfig,
    DaemonConfig,
    DpdAction,
    EnrollConfig,
    Identity,
    Secret,
    StartAction,
)
from pike.policy.config_values import decode_secret, parse_duration, parse_size, parse_ts
from pike.policy.identity import IdentityError, identity_of_address, parse_identity
from pike.policy.ipsec import NO_MARK, Mark, Mode, Offload
from pike.policy.paths import DEFAULT_SOCKET
from pike.policy.toml_lines import KeyPath
from pike.policy.toml_table import ConfigError, Source, Table
from pike.policy.ts import TrafficSelector

__all__ = [
    "NO_DEFAULTS",
    "ConfigError",
    "DefaultProposals",
    "load_config",
    "load_config_reusing",
    "load_config_text",
    "secret_of_file",
]

T = TypeVar("T")
ANY = "%any"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_MAX_SECONDS = 10 * 365 * 86400
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# Pure parses of one value, memoized: a hub's 10 000 connections repeat the same few
# proposals, selectors and addresses, and share the (frozen) results. Errors are not
# cached (they re-raise), and the results are immutable, so sharing changes nothing.
_proposal = functools.lru_cache(maxsize=512)(parse_proposal)
_ts = functools.lru_cache(maxsize=2048)(parse_ts)


@functools.lru_cache(maxsize=2048)
def _address(text: str) -> str:
    return str(ipaddress.ip_address(text))


@functools.lru_cache(maxsize=2048)
def _network(text: str) -> str:
    net = ipaddress.ip_network(text, strict=True)
    single = net.prefixlen == net.max_prefixlen
    return str(net.network_address) if single else str(net)


@dataclass(frozen=True, slots=True)
class DefaultProposals:
    """Proposals for connections/children that name none: the board's (``pike.board``)."""

    ike: tuple[str, ...] = ()
    esp: tuple[str, ...] = ()


NO_DEFAULTS = DefaultProposals()


def load_config(path: str, defaults: DefaultProposals = NO_DEFAULTS) -> Config:
    """Read and validate ``path``; raises ConfigError (``FILE:LINE: KEY: ...``)."""
    return load_config_text(read_config_text(path), path, defaults)


def read_config_text(path: str) -> str:
    """The UTF-8 text of ``path``; raises ConfigError when it cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(path, 0, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(path, line, "", "not UTF-8 text") from None


def load_config_text(
    text: str, path: str = "<config>", defaults: DefaultProposals = NO_DEFAULTS
) -> Config:
    """Validate TOML ``text`` as if read from ``path`` (relative secret_file names are
    resolved against the directory of ``path``)."""
    return load_config_reusing(text, path, defaults, {})[0]


def load_config_reusing(
    text: str,
    path: str,
    defaults: DefaultProposals,
    reuse: Mapping[bytes, ConnectionConfig],
) -> tuple[Config, dict[str, bytes]]:
    """``load_config_text``, taking each connection whose TOML (its whole subtree, and its
    name) has a digest in ``reuse`` from there instead of validating it again: what an
    earlier load of the same path, defaults and code made of the same input (the config
    cache keeps them, so a reload after editing one of 10 000 connections checks that one).
    Also returns each connection's digest, for the next load."""
    try:
        data = toml_fast.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError (toml_fast imports tomllib)
        msg = str(exc)
        m = _TOML_AT.search(msg)
        line = int(m.group(1)) if m else 0
        detail = msg[: m.start()] if m else msg
        col = f" (column {m.group(2)})" if m else ""
        raise ConfigError(path, line, "", f"TOML syntax error: {detail}{col}") from None
    src = Source(path, text)
    root = Table(src, (), data)
    daemon = _daemon(root.table("daemon", {}))
    secrets = tuple(_secret(t, path) for t in root.tables("secrets"))
    # equal children and auth sections, one object each; what _auth_once and _child_once made
    shared: dict[object, object] = {}
    connections: dict[str, ConnectionConfig] = {}
    digests: dict[str, bytes] = {}
    for t in root.tables("connections"):
        name = _name(t)
        digest = digests[name] = hashlib.sha256(repr((name, t.data)).encode()).digest()
        old = reuse.get(digest)
        if old is not None and _files_readable(old):
            at = src.header_line(t.path)  # the text above it may have moved
            connections[name] = old if old.source_line == at else replace(old, source_line=at)
        else:
            connections[name] = _connection(t, defaults, shared)
    enroll = _enroll(root.table("enroll")) if root.has("enroll") else None
    authorities = tuple(_authority(t) for t in root.tables("authorities"))
    root.finish()
    config = Config(daemon, connections, secrets, path, enroll, authorities)
    for conn in connections.values():
        _check_psk(src, config, conn)
        _check_ppk(src, config, conn)
    return config, digests


def _files_readable(conn: ConnectionConfig) -> bool:
    """The files a connection names are still there (what ``_file`` checked when it was
    loaded; when one is gone the connection is loaded again, which says where)."""
    for a in (conn.local, conn.remote):
        files = [*a.certs, *a.cacerts, *a.crls]
        if a.key is not None and a.key[:7].lower() != "pkcs11:":
            files.append(a.key)
        if not all(os.path.isfile(f) and os.access(f, os.R_OK) for f in files):
            return False
    return True


def _name(t: Table) -> str:
    """Connection and child names go into logs, metrics labels and ``CONN.CHILD``."""
    name = str(t.path[-1])
    if not _NAME.match(name):
        raise t.error(t.path, "names may only use letters, digits, '-' and '_'")
    return name


# -- [daemon] -------------------------------------------------------------------------------


def _daemon(t: Table) -> DaemonConfig:
    sock = t.typed("control_socket", str, DEFAULT_SOCKET)
    if not sock:
        raise t.error("control_socket", "must not be empty")
    cfg = DaemonConfig(
        control_socket=sock,
        metrics_listen=t.convert("metrics_listen", _listen_address, ""),
        save_keys_dir=t.typed("save_keys_dir", str, ""),
        ike_port=t.integer("ike_port", 500, 1, 65535),
        natt_port=t.integer("natt_port", 4500, 1, 65535),
        retransmit_timeout=t.convert("retransmit_timeout", _positive_duration, 4.0),
        retransmit_base=t.typed("retransmit_base", float, 1.8),
        retransmit_tries=t.integer("retransmit_tries", 5, 0, 100),
        keepalive=t.convert("keepalive", parse_duration, 20.0),
        fragment_size=t.integer("fragment_size", 1280, 576, 65535),
        max_packet=t.integer("max_packet", 10000, 1280, 65535),
        cookie_threshold=t.integer("cookie_threshold", 10, 0, 1_000_000),
        block_threshold=t.integer("block_threshold", 5, 1, 1_000_000),
        half_open_max=t.integer("half_open_max", 1000, 1, 1_000_000),
        ike_sa_max=t.integer("ike_sa_max", 20000, 1, 10_000_000),
        init_rate=t.integer("init_rate", 0, 0, 1_000_000),
        log_level=t.choice("log_level", LOG_LEVELS, "info"),
        key_helper=t.typed("key_helper", str, "spawn"),
    )
    if cfg.key_helper not in ("spawn", "off") and not cfg.key_helper.startswith("/"):
        raise t.error("key_helper", '"spawn", "off" or the absolute path of its socket')
    if cfg.retransmit_base < 1.0:
        raise t.error("retransmit_base", f"{cfg.retransmit_base} is below 1.0")
    if cfg.natt_port == cfg.ike_port:
        raise t.error("natt_port", f"must differ from ike_port ({cfg.ike_port})")
    t.finish()
    return cfg


def _listen_address(value: object) -> str:
    """``metrics_listen``: ``HOST:PORT`` (``[v6]:PORT`` for IPv6), or "" (disabled)."""
    if not isinstance(value, str):
        raise ValueError(f'expected a string like "127.0.0.1:9447", got {value!r}')
    if value == "":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT with a port 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, as [::1]:9447")
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
    return value


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def _seconds(value: object) -> int:
    seconds = parse_duration(value)
    if seconds != int(seconds) or seconds > _MAX_SECONDS:
        raise ValueError(f"{value!r} is not a whole number of seconds up to 10 years")
    return int(seconds)


# -- [enroll] and [authorities.NAME] ---------------------------------------------------------


def _enroll(t: Table) -> EnrollConfig:
    url = t.typed("url", str)
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        raise t.error("url", f"{url!r}: EST runs over TLS, give an https:// URL")
    user = t.typed("user", str, None)
    password_file = t.typed("password_file", str, None)
    if password_file is not None:
        password_file = _file(t, t.at("password_file"), password_file)
    if user is None and password_file is not None:
        raise t.error("password_file", "needs user (HTTP basic auth)")
    within = t.typed("within_days", float, 45.0)
    if not 0 < within <= 3650:
        raise t.error("within_days", f"{within!r} is not a number of days between 0 and 3650")
    key = _key(t)
    if key is None:
        raise t.error("key", "missing (the key's file or pkcs11: URI)")
    cfg = EnrollConfig(
        url=url,
        ca=_file(t, t.at("ca"), t.typed("ca", str)),
        key=key,
        # renewed in place: it may not exist yet when the config is checked before enrolment
        cert=_resolve(t, t.typed("cert", str)),
        user=user,
        password_file=password_file,
        within_days=within,
        import_cert=t.typed("import", bool, False),
    )
    if cfg.import_cert and not key.lower().startswith("pkcs11:"):
        raise t.error("import", "only a pkcs11: key has a token to import into")
    t.finish()
    return cfg


def _authority(t: Table) -> AuthorityConfig:
    cfg = AuthorityConfig(
        name=_name(t),
        cacert=_file(t, t.at("cacert"), t.typed("cacert", str)),
        crl_uris=tuple(_http_uri(t, p, v) for p, v in t.strings("crl_uris", [])),
        ocsp_uris=tuple(_http_uri(t, p, v) for p, v in t.strings("ocsp_uris", [])),
    )
    if not (cfg.crl_uris or cfg.ocsp_uris):
        raise t.error(t.path, "needs crl_uris or ocsp_uris (else it adds nothing)")
    t.finish()
    return cfg


# -- [secrets.NAME] -------------------------------------------------------------------------


def _secret(t: Table, config_path: str) -> Secret:
    # One string is one identity: a DN has commas of its own.
    ids = tuple(_identity(t, p, text).text for p, text in t.strings("id", [], split=False))
    has_inline, has_file = t.has("secret"), t.has("secret_file")
    if has_inline and has_file:
        raise t.error("secret_file", "give either secret or secret_file, not both")
    if not (has_inline or has_file):
        raise t.error(t.path, 'needs secret = "..." or secret_file = "PATH"')
    if has_inline:
        value = decode_secret(t.typed("secret", str))
        key, file = "secret", config_path
    else:
        value, file = _read_secret_file(t, config_path)
        key = "secret_file"
    if not value:
        raise t.error(key, "the secret is empty")
    t.finish()
    return Secret(str(t.path[-1]), ids, value, file)


def _read_secret_file(t: Table, config_path: str) -> tuple[bytes, str]:
    """The key and the path it was read from."""
    name = t.typed("secret_file", str)
    path = os.path.join(os.path.dirname(os.path.abspath(config_path)), name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise t.error("secret_file", f"cannot read {path}: {exc.strerror or exc}") from None
    return secret_of_file(data), path


def secret_of_file(data: bytes) -> bytes:
    """The secret a ``secret_file`` holding ``data`` gives."""
    # One trailing newline is the editor's, not the key's.
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    try:
        return decode_secret(data.decode("utf-8"))
    except UnicodeDecodeError:
        return data  # a binary key file is the key itself


# -- [connections.NAME] ---------------------------------------------------------------------


def _identity(t: Table, path: KeyPath, text: str) -> Identity:
    try:
        return parse_identity(text)
    except IdentityError as exc:
        raise t.error(path, str(exc)) from None


def _host_or_none(addrs: tuple[str, ...]) -> str | None:
    """The first address if it is a single host (one can send to it), else None."""
    if not addrs or addrs[0] == ANY or "/" in addrs[0]:
        return None
    return addrs[0]


def _local_addrs(t: Table) -> tuple[str, ...]:
    """IP addresses; missing or %any: any local address (the kernel picks the source)."""
    out = []
    for path, text in t.strings("local_addrs", [ANY]):
        if text == ANY:
            continue
        try:
            out.append(_address(text))
        except ValueError:
            raise t.error(path, f"{text!r} is not an IPv4/IPv6 address or %any") from None
    return tuple(out)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# RFC 1123 host names; the last label not all digits (so 192.0.2.300 stays a bad address)
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\.?$)(?:{_LABEL}\.)*(?=[^.]*[A-Za-z-]){_LABEL}\.?$")


def _remote_addrs(t: Table) -> tuple[str, ...]:
    """IP addresses or DNS names (resolved when initiating), or (responder only) subnets
    and %any; missing means %any."""
    items = t.strings("remote_addrs", [ANY])
    if not items:
        raise t.error("remote_addrs", "must name at least one address (or %any)")
    out = []
    for path, text in items:
        if text == ANY:
            out.append(ANY)
            continue
        try:
            out.append(_network(text))
        except ValueError:
            if _HOSTNAME.match(text):
                out.append(text.lower().rstrip("."))  # resolved when initiating
                continue
            raise t.error(
                path,
                f"{text!r} is not an IPv4/IPv6 address, a DNS name, a subnet or %any"
                " (responder only)",
            ) from None
    return tuple(out)


def _proposals(
    t: Table, key: str, protocol: Literal["ike", "esp"], default: tuple[str, ...] = ()
) -> tuple[ProposalSpec, ...]:
    if not t.has(key) and default:
        # None configured: the board's choice (`pikectl board`). A bad one is reported
        # against the key that was left out, naming where it came from.
        items = [(t.at(key), text) for text in default]
    else:
        items = t.strings(key)
    if not items:
        raise t.error(key, "must list at least one proposal")
    out = []
    for path, text in items:
        try:
            out.append(_proposal(text, protocol))
        except ProposalError as exc:
            origin = "" if t.has(key) else " (board default)"
            raise t.error(path, f"{exc}{origin}") from None
    return tuple(out)


def _auth(t: Table, default_id: str | None, side: Literal["local", "remote"]) -> AuthConfig:
    if not t.has("auth"):
        raise t.error("auth", "missing (psk or pubkey)")
    auth = t.choice("auth", ("psk", "pubkey"), "psk")
    if t.has("id") and side == "remote" and t.typed("id", str).strip() == "%any":
        ident: Identity | None = None  # any peer identity (what a wildcard admits)
    elif t.has("id"):
        ident = _identity(t, t.at("id"), t.typed("id", str))
    elif auth == "pubkey":
        # strongSwan's defaults: our certificate's subject, and any peer the CA vouches for.
        ident = None
    else:
        ident = identity_of_address(default_id) if default_id else None
    cfg = AuthConfig(
        auth=cast(Literal["psk", "pubkey"], auth),
        id=ident,
        certs=tuple(_file(t, p, v) for p, v in t.strings("certs", [])),
        key=_key(t),
        cacerts=tuple(_file(t, p, v) for p, v in t.strings("cacerts", [])),
        rsa_pss=t.typed("rsa_pss", bool, False),
    )
    if side == "remote" and auth == "pubkey":
        cfg = replace(
            cfg,
            revocation=cast(
                Literal["strict", "ifuri", "relaxed"],
                t.choice("revocation", ("strict", "ifuri", "relaxed"), "relaxed"),
            ),
            crls=tuple(_file(t, p, v) for p, v in t.strings("crls", [])),
            crl_uris=tuple(_http_uri(t, p, v) for p, v in t.strings("crl_uris", [])),
            ocsp_uris=tuple(_http_uri(t, p, v) for p, v in t.strings("ocsp_uris", [])),
        )
    if auth == "pubkey" and side == "local" and not (cfg.certs and cfg.key):
        raise t.error("auth", 'pubkey needs certs = ["..."] and key = "..."')
    if auth == "pubkey" and side == "remote" and not cfg.cacerts:
        raise t.error("auth", 'pubkey needs cacerts = ["..."] (the CAs that vouch for the peer)')
    t.finish()
    return cfg


def _http_uri(t: Table, path: KeyPath, uri: str) -> str:
    if not uri.lower().startswith("http://") or len(uri) <= len("http://"):
        raise t.error(path, f"{uri!r}: only http:// URIs (CRLs and OCSP are signed)")
    return uri


def _resolve(t: Table, name: str) -> str:
    """A config-relative path made absolute against the config file's directory."""
    return os.path.join(os.path.dirname(os.path.abspath(t.src.file)), name)


def _file(t: Table, path: KeyPath, name: str) -> str:
    full = _resolve(t, name)
    if not os.path.isfile(full) or not os.access(full, os.R_OK):
        raise t.error(path, f"cannot read {full}")
    return full


def _key(t: Table) -> str | None:
    """A key file (resolved like certs) or an RFC 7512 ``pkcs11:`` URI (kept as written,
    checked here so that a typo names file, line and key before anything starts)."""
    value = t.typed("key", str, None)
    if value is None:
        return value
    if value[:7].lower() == "pkcs11:":
        from pike.hsm.uri import UriError, parse

        try:
            parse(value)
        except UriError as exc:  # the message never repeats a PIN
            raise t.error("key", f"bad PKCS#11 URI: {exc}") from None
        return value
    return _file(t, t.at("key"), value)


def _selectors(
    t: Table, key: str, dynamic: str | None, side: str, routed: bool = False
) -> tuple[TrafficSelector, ...]:
    out = []
    default = ["0.0.0.0/0", "::/0"] if routed else ["dynamic"]
    for path, text in t.strings(key, default):
        if text == "dynamic":
            if dynamic is None:
                raise t.error(path, f"dynamic needs {side}_addrs to name one address")
            out.append(TrafficSelector.host(ipaddress.ip_address(dynamic)))
            continue
        try:
            out.append(_ts(text))
        except ValueError as exc:
            raise t.error(path, str(exc)) from None
    if not out:
        raise t.error(key, "must list at least one traffic selector")
    return tuple(out)


_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # the kernel's IFNAMSIZ less the NUL


def _mark(value: object) -> Mark:
    """``mark_in``/``mark_out``: a number (mask 0xffffffff) or "VALUE/MASK" as swanctl
    writes it (decimal or 0x hex)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a mark (a number or VALUE/MASK)")
    if isinstance(value, int):
        v, m = value, 0xFFFFFFFF
    elif isinstance(value, str):
        text, _, mask = value.partition("/")
        try:
            v, m = int(text, 0), int(mask, 0) if mask else 0xFFFFFFFF
        except ValueError:
            raise ValueError(f"{value!r} is not a mark (a number or VALUE/MASK)") from None
    else:
        raise ValueError(f"{value!r} is not a mark (a number or VALUE/MASK)")
    if not (0 < v <= 0xFFFFFFFF and 0 < m <= 0xFFFFFFFF) or v & ~m:
        raise ValueError(f"{value!r}: value and mask must be 1..0xffffffff, value within mask")
    return v, m


def _route(t: Table, if_ids: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """Route-based keys of a child: XFRM interface ids (the connection's ``if_ids`` unless
    the child has its own), VTI marks, the interface piked creates, the updown script."""
    if_in = t.integer("if_id_in", if_ids[0], 0, 0xFFFFFFFF)
    if_out = t.integer("if_id_out", if_ids[1], 0, 0xFFFFFFFF)
    mark_in = t.convert("mark_in", _mark, NO_MARK)
    mark_out = t.convert("mark_out", _mark, NO_MARK)
    interface = t.typed("interface", str, "")
    updown = t.typed("updown", str, "")
    if interface:
        if not _IFNAME.match(interface):
            raise t.error(
                "interface", f"{interface!r} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)"
            )
        xfrm = bool(if_in or if_out)
        vti = mark_in != NO_MARK or mark_out != NO_MARK
        if xfrm and vti:
            raise t.error(
                "interface",
                "takes if_id_in/if_id_out (XFRM interface) or mark_in/mark_out (VTI), not both",
            )
        if xfrm and if_in != if_out:
            raise t.error(
                "if_id_out", f"an XFRM interface has one if_id: set if_id_in = if_id_out ({if_in})"
            )
        if vti and (
            mark_in[1] != 0xFFFFFFFF or mark_out[1] != 0xFFFFFFFF or NO_MARK in (mark_in, mark_out)
        ):
            raise t.error("mark_in", "a VTI needs mark_in and mark_out (its keys), without masks")
        if not (xfrm or vti):
            raise t.error(
                "interface", "needs if_id_in/if_id_out (XFRM interface) or mark_in/mark_out (VTI)"
            )
    if updown and not os.path.isabs(updown):
        raise t.error("updown", f"{updown!r} must be an absolute path")
    return {
        "if_id_in": if_in,
        "if_id_out": if_out,
        "mark_in": mark_in,
        "mark_out": mark_out,
        "interface": interface,
        "updown": updown,
    }


def _offload(value: object) -> str:
    if isinstance(value, bool):
        return "crypto" if value else "no"
    if value == "yes":
        return "crypto"
    if value in ("no", "crypto", "packet", "auto"):
        return str(value)
    raise ValueError(f"{value!r} is not one of no, crypto, packet, auto")


def _child(
    t: Table,
    local_addr: str | None,
    remote_addr: str | None,
    defaults: DefaultProposals,
    if_ids: tuple[int, int] = (0, 0),
) -> ChildConfig:
    start = t.choice("start_action", ("none", "start", "trap"), "none")
    if start != "none" and remote_addr is None:
        raise t.error(
            "start_action",
            f"{start} needs a remote address (%any and subnets are responder only)",
        )
    close = t.choice("close_action", ("none", "trap", "start"), "none")
    if close != "none" and remote_addr is None:
        raise t.error(
            "close_action",
            f"{close} needs a remote address (%any and subnets are responder only)",
        )
    if remote_addr is not None and is_name(remote_addr):
        for key, value in (("start_action", start), ("close_action", close)):
            if value == "trap":
                raise t.error(key, "trap needs an IP address in remote_addrs, not a name")
        remote_addr = None  # no address for remote_ts = dynamic
    rekey = t.convert("rekey_time", _seconds, 3600)
    route = _route(t, if_ids)
    if route["interface"]:
        # Policies for everything, bound to the interface: routes decide what enters.
        local_addr = remote_addr = None
    rekey_bytes, life_bytes, rand_bytes = _volume(t, "bytes")
    rekey_packets, life_packets, rand_packets = _volume(t, "packets")
    child = ChildConfig(
        name=_name(t),
        local_ts=_selectors(t, "local_ts", local_addr, "local", bool(route["interface"])),
        remote_ts=_selectors(t, "remote_ts", remote_addr, "remote", bool(route["interface"])),
        esp_proposals=_proposals(t, "esp_proposals", "esp", defaults.esp),
        mode=cast(Mode, t.choice("mode", ("tunnel", "transport"), "tunnel")),
        start_action=cast(StartAction, start),
        close_action=cast(CloseAction, close),
        rekey_time=rekey,
        life_time=t.convert("life_time", _seconds, int(rekey * 1.1)),
        rand_time=t.convert("rand_time", _seconds, rekey // 10),
        rekey_bytes=rekey_bytes,
        life_bytes=life_bytes,
        rand_bytes=rand_bytes,
        rekey_packets=rekey_packets,
        life_packets=life_packets,
        rand_packets=rand_packets,
        hw_offload=cast(Offload, t.convert("hw_offload", _offload, "no")),
        replay_window=t.integer("replay_window", 32, 0, 2**32 - 1),
        **route,
    )
    if child.life_time and child.rekey_time and child.life_time <= child.rekey_time:
        raise t.error("life_time", f"must be longer than rekey_time ({child.rekey_time}s)")
    t.finish()
    return child


def _volume(t: Table, unit: str) -> tuple[int, int, int]:
    """``rekey_<unit>``, ``life_<unit>``, ``rand_<unit>`` with strongSwan's defaults: all 0
    (no limit); life is rekey + 10 %; rekey is life / 1.1 when only life is given; rand is
    life - rekey (kept below rekey, so the soft limit never reaches 0)."""
    rekey_key, life_key, rand_key = f"rekey_{unit}", f"life_{unit}", f"rand_{unit}"
    rekey = t.convert(rekey_key, parse_size, None)
    life = t.convert(life_key, parse_size, None)
    rand = t.convert(rand_key, parse_size, None)
    if rekey is None:
        rekey = life * 10 // 11 if life else 0
    if life is None:
        life = rekey * 110 // 100
    if rekey and life and rekey > life:
        raise t.error(rekey_key, f"{rekey} is more than {life_key} ({life})")
    if rand is None:
        rand = min(max(life - rekey, 0), rekey - 1) if rekey else 0
    elif rand and rand >= rekey:
        raise t.error(rand_key, f"{rand} must be less than {rekey_key} ({rekey})")
    return rekey, life, rand


def _shared(shared: dict[object, object], value: T) -> T:
    """The one object equal to ``value`` in this config (frozen values, so sharing is
    invisible; it saves memory and the config cache's size)."""
    return cast(T, shared.setdefault(value, value))


# What an auth section names on disk: its checks read the file system, so it is validated
# each time; everything else is a function of the table's text (and the arguments).
_FILE_KEYS = frozenset(("certs", "cacerts", "key", "crls"))


def _auth_once(
    shared: dict[object, object],
    t: Table,
    default_id: str | None,
    side: Literal["local", "remote"],
) -> AuthConfig:
    """``_auth``, once per distinct table in this config (a hub's 10 000 connections have
    the same ``local``): a pure function of its arguments unless it names files."""
    if not _FILE_KEYS.isdisjoint(t.data):
        return _auth(t, default_id, side)
    key = ("auth", repr(t.data), default_id, side)
    if (found := shared.get(key)) is None:
        found = shared[key] = _auth(t, default_id, side)
    return cast(AuthConfig, found)


def _child_once(
    shared: dict[object, object],
    t: Table,
    local_addr: str | None,
    remote_addr: str | None,
    defaults: DefaultProposals,
    if_ids: tuple[int, int],
) -> ChildConfig:
    """``_child``, once per distinct table and name in this config (a pure function)."""
    key = ("child", t.path[-1], repr(t.data), local_addr, remote_addr, if_ids)
    if (found := shared.get(key)) is None:
        found = shared[key] = _child(t, local_addr, remote_addr, defaults, if_ids)
    return cast(ChildConfig, found)


def _connection(
    t: Table, defaults: DefaultProposals, shared: dict[object, object]
) -> ConnectionConfig:
    version = t.typed("version", int, 2)
    if version not in (1, 2):
        raise t.error("version", f"{version} is not 1 (IKEv1) or 2 (IKEv2)")
    local_addrs = _local_addrs(t)
    remote_addrs = _remote_addrs(t)
    local_host, remote_host = _host_or_none(local_addrs), _host_or_none(remote_addrs)
    named = remote_host is not None and is_name(remote_host)
    proposals = _proposals(t, "proposals", "ike", defaults.ike)
    local = _shared(shared, _auth_once(shared, t.table("local"), local_host, "local"))
    remote_id = None if named else remote_host
    remote = _shared(shared, _auth_once(shared, t.table("remote"), remote_id, "remote"))
    if named and remote.auth == "psk" and remote.id is None:
        raise t.table("remote").error(
            "id", f"missing: with a DNS name in remote_addrs ({remote_host}) set the peer's id"
        )
    # swanctl's connection-level if_id_in/if_id_out: the default of every child
    if_ids = (t.integer("if_id_in", 0, 0, 0xFFFFFFFF), t.integer("if_id_out", 0, 0, 0xFFFFFFFF))
    child_tables = list(t.tables("children"))
    children = tuple(
        _shared(shared, _child_once(shared, c, local_host, remote_host, defaults, if_ids))
        for c in child_tables
    )
    if version == 1:
        # RFC 9370 additional exchanges and ML-KEM exist only in IKEv2: never drop them silently
        _ikev2_only_ke(t, "proposals", proposals)
        for ct, child in zip(child_tables, children, strict=True):
            _ikev2_only_ke(ct, "esp_proposals", child.esp_proposals)
    aggressive = t.typed("aggressive", bool, False)
    if aggressive and version != 1:
        raise t.error("aggressive", "Aggressive Mode exists only in IKEv1 (version = 1)")
    dpd_timeout = t.convert("dpd_timeout", _seconds, 0)
    if dpd_timeout and version != 1:
        raise t.error("dpd_timeout", "IKEv1 only (IKEv2 gives up after its retransmissions)")
    reauth = t.convert("reauth_time", _seconds, 0)
    ppk_id = t.typed("ppk_id", str, None)
    ppk_required = t.typed("ppk_required", bool, False)
    if (ppk_id is not None or ppk_required) and version != 2:
        raise t.error("ppk_id" if ppk_id is not None else "ppk_required", "IKEv2 only (RFC 8784)")
    if ppk_required and ppk_id is None:
        raise t.error("ppk_required", "needs ppk_id: the PPK this connection requires")
    if ppk_id == "":
        raise t.error("ppk_id", "empty")
    conn = ConnectionConfig(
        name=str(t.path[-1]),
        version=cast(Literal[1, 2], version),
        local_addrs=local_addrs,
        remote_addrs=remote_addrs,
        proposals=proposals,
        local=local,
        remote=remote,
        children=children,
        local_port=t.integer("local_port", 500, 1, 65535),
        remote_port=t.integer("remote_port", 500, 1, 65535),
        encap=t.typed("encap", bool, False),
        fragmentation=t.typed("fragmentation", bool, True),
        mobike=t.typed("mobike", bool, True),
        dpd_delay=t.convert("dpd_delay", _seconds, 0),
        dpd_timeout=dpd_timeout,
        dpd_action=_dpd_action(t, named),
        # A box nobody logs into keeps trying: 0 (unlimited) when a child starts at boot
        # (strongSwan's default is 1 everywhere).
        keyingtries=t.integer("keyingtries", 0 if _starts(children) else 1, 0, 1_000_000),
        # strongSwan's rule: with reauth_time, rekey_time defaults to 0 (no rekeys)
        rekey_time=t.convert("rekey_time", _seconds, 0 if reauth else 14400),
        reauth_time=reauth,
        aggressive=aggressive,
        ppk_id=ppk_id,
        ppk_required=ppk_required,
        source_line=t.src.header_line(t.path),
    )
    t.finish()
    return conn


def _ikev2_only_ke(t: Table, key: str, specs: tuple[ProposalSpec, ...]) -> None:
    for spec in specs:
        for alg in spec.transforms:
            if alg.type in ADDKE_TYPES or (alg.type == TransformType.KE and is_kem(alg.id)):
                raise t.error(
                    key,
                    f"{algorithm_name(alg)} is IKEv2 only (RFC 9370 / ML-KEM); "
                    "IKEv1 (version = 1) has one Diffie-Hellman group",
                )


def _dpd_action(t: Table, named: bool) -> DpdAction:
    action = t.choice("dpd_action", ("clear", "trap", "restart"), "clear")
    if action == "trap" and named:
        raise t.error("dpd_action", "trap needs an IP address in remote_addrs, not a name")
    return cast(DpdAction, action)


def _starts(children: tuple[ChildConfig, ...]) -> bool:
    return any(c.start_action == "start" for c in children)


def _check_ppk(src: Source, config: Config, conn: ConnectionConfig) -> None:
    """A connection with ppk_id must find its PPK now (RFC 8784)."""
    if conn.ppk_id is not None and config.ppk_for(conn.ppk_id) is None:
        raise src.error(
            ("connections", conn.name, "ppk_id"),
            f"no [secrets.ppk...] entry has id {conn.ppk_id!r}",
        )


def _check_psk(src: Source, config: Config, conn: ConnectionConfig) -> None:
    """A PSK connection must find its key now, not at the first handshake."""
    if "psk" not in (conn.local.auth, conn.remote.auth):
        return
    local = conn.local.id.text if conn.local.id else ANY
    remote = conn.remote.id.text if conn.remote.id else conn.remote_addrs[0]
    if config.psk_for(local, remote) is None:
        side = "local" if conn.local.auth == "psk" else "remote"
        raise src.error(
            ("connections", conn.name, side, "auth"),
            f"psk, but no [secrets] entry has id {local!r} or {remote!r}",
        )
