"""``pikectl keys ...``: provision the key in a PKCS#11 token (HSM or TPM 2.0).

    pikectl keys generate    --uri URI
                             [--type ecdsa-p256|ecdsa-p384|ecdsa-p521|rsa2048|rsa3072|ed25519]
    pikectl keys csr         --uri URI --subject DN [--san NAME]... [--out FILE]
    pikectl keys self-signed --uri URI --subject DN [--san NAME]... [--days N] [--out FILE]
    pikectl keys import-cert --uri URI FILE
    pikectl keys list        --uri URI
    pikectl keys init-token  --uri URI --so-pin-file F
    pikectl keys enroll      (--uri URI | --key FILE) --est URL --est-ca FILE --out FILE
                             [--subject DN] [--san NAME]... [--est-user NAME
                             --est-password-file F] [--renew --cert FILE [--within DAYS]]
                             [--cacerts-out F] [--import]
    pikectl keys renew       [--configured]

``renew`` is ``enroll --renew --within DAYS`` with the settings of pike.toml's
``[enroll]`` section (what pike-renew.timer runs daily); after a renewal it asks piked to
reload, so the new certificate is used. ``--configured`` only tells (exit 0) whether
``[enroll]`` is there (exit 1 if not: the timer's condition).

``enroll`` asks an EST server (RFC 7030) for the certificate of the key: a first one
(simpleenroll, authenticated with HTTP basic auth) or, with ``--renew``, a renewal
(simplereenroll; the subject and subjectAltNames come from the current ``--cert``, and
with a file key the TLS connection authenticates with it). The certificate goes to
``--out`` (the file the config's ``local.certs`` names; ``pikectl reload`` then uses it)
and, with ``--import``, to the token beside the key.

URI is RFC 7512 (``pkcs11:token=gw;object=ike;id=%01?module-path=/usr/lib/...``). The user
PIN comes from ``--pin-file``, the URI's ``pin-source`` or ``PIKE_PIN``: never from argv.
A refused PIN is reported, never retried (a TPM locks after a few). ``init-token``
initializes a fresh token (the URI's ``token=`` is its label) with the SO PIN from
``--so-pin-file`` and sets the user PIN; a token with that label is left alone.
"""

from __future__ import annotations

import argparse
import sys

# typing is not imported at run time: pikectl's calls should not pay 2 ms for it (issue #12)
TYPE_CHECKING = False
if TYPE_CHECKING:  # cryptography is imported when a keys command runs, not for pikectl's parser
    from typing import Any

    from cryptography import x509

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    kp = sub.add_parser("keys", help="provision the key in a PKCS#11 token / TPM")
    ks = kp.add_subparsers(dest="keys_cmd", required=True, parser_class=type(kp))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--uri", required=True, help="RFC 7512 pkcs11: URI of the key/token")
        p.add_argument("--pin-file", help="file holding the user PIN (else PIKE_PIN)")

    g = ks.add_parser("generate", help="generate a key pair on the token")
    common(g)
    g.add_argument("--type", default="ecdsa-p256", help="ecdsa-p256 (default), ecdsa-p384, "
                   "ecdsa-p521, rsa2048, rsa3072, ed25519")  # fmt: skip
    for name, helptext in (
        ("csr", "PKCS#10 request signed by the token key"),
        ("self-signed", "self-signed certificate of the token key"),
    ):
        c = ks.add_parser(name, help=helptext)
        common(c)
        c.add_argument("--subject", required=True, help='e.g. "C=CH, O=Example, CN=gw1"')
        c.add_argument("--san", action="append", default=[], help="DNS name, IP or e-mail")
        c.add_argument("--out", help="PEM output file (default stdout)")
        if name == "self-signed":
            c.add_argument("--days", type=int, default=365)
    i = ks.add_parser("import-cert", help="store a certificate next to the key")
    common(i)
    i.add_argument("file", help="PEM or DER certificate")
    ls = ks.add_parser("list", help="keys and certificates on the token")
    common(ls)
    it = ks.add_parser("init-token", help="initialize a fresh token and set its user PIN")
    common(it)
    it.add_argument("--so-pin-file", required=True, help="file holding the SO PIN")
    en = ks.add_parser("enroll", help="get the key's certificate from an EST server (RFC 7030)")
    which = en.add_mutually_exclusive_group(required=True)
    which.add_argument("--uri", help="RFC 7512 pkcs11: URI of the key")
    which.add_argument("--key", help="PEM private key file (development)")
    en.add_argument("--pin-file", help="file holding the user PIN (else PIKE_PIN)")
    en.add_argument("--est", required=True, help="https://server[:port][/label] of the EST CA")
    en.add_argument("--est-ca", required=True, help="PEM file: the CA of the server's TLS cert")
    en.add_argument("--est-user", help="HTTP basic auth user")
    en.add_argument(
        "--est-password-file", help="file holding its password (else PIKE_EST_PASSWORD)"
    )
    en.add_argument("--subject", help='e.g. "C=CH, O=Example, CN=gw1" (default: --cert\'s)')
    en.add_argument("--san", action="append", default=[], help="DNS name, IP or e-mail")
    en.add_argument("--renew", action="store_true", help="simplereenroll with --cert")
    en.add_argument("--cert", help="the current certificate (renewal, TLS client auth)")
    en.add_argument(
        "--within",
        type=float,
        metavar="DAYS",
        help="with --renew: only when --cert ends within DAYS",
    )
    en.add_argument("--out", required=True, help="where the certificate goes (PEM)")
    en.add_argument("--cacerts-out", help="write the EST server's CA certificates here")
    en.add_argument("--import", dest="import_", action="store_true",
                    help="also store the certificate on the token (with --uri)")  # fmt: skip
    rn = ks.add_parser("renew", help="renew the certificate as pike.toml's [enroll] says")
    # like every pikectl command: --config/--socket after it too (SUPPRESS keeps the top's)
    rn.add_argument("--config", default=argparse.SUPPRESS, help="config file (pike.toml)")
    rn.add_argument("--socket", default=argparse.SUPPRESS, help="piked's control socket")
    rn.add_argument(
        "--configured", action="store_true", help="exit 0 if [enroll] is configured, else 1"
    )


def _san(text: str) -> x509.GeneralName:
    import ipaddress

    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if "@" in text:
        return x509.RFC822Name(text)
    return x509.DNSName(text)


def _subject(text: str) -> x509.Name:
    from cryptography import x509

    # Config order (C=.., O=.., CN=..) is DER order; RFC 4514 text lists it reversed.
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return x509.Name.from_rfc4514_string(",".join(reversed(parts)))


def _uri(args: argparse.Namespace, need_key: bool) -> Any:
    import dataclasses

    from pike.hsm.uri import parse

    uri = parse(args.uri, need_key=need_key)
    if args.pin_file:
        uri = dataclasses.replace(uri, pin_source=f"file:{args.pin_file}")
    return uri


def _session(uri: Any) -> Any:
    """A read/write session, logged in once (a refused PIN is not retried)."""
    from pike.hsm.pkcs11 import find_token, module
    from pike.hsm.uri import read_pin

    pin = read_pin(uri)
    lib = module(uri.module(), uri.tcti).load()
    return find_token(lib, uri).open(rw=True, user_pin=pin)


def _write(pem: bytes, out: str | None) -> None:
    if out:
        with open(out, "wb") as f:
            f.write(pem)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(pem.decode())


def _init_token(uri: Any, so_pin_file: str) -> int:
    import dataclasses

    from pike.hsm.pkcs11 import module
    from pike.hsm.token_init import init_token
    from pike.hsm.uri import read_pin

    if not uri.token:
        print("pikectl keys init-token: the URI needs token=LABEL", file=sys.stderr)
        return EXIT_ERROR
    so_pin = read_pin(dataclasses.replace(uri, pin_source=f"file:{so_pin_file}"))
    user_pin = read_pin(uri)
    path = uri.module()
    slot = init_token(module(path, uri.tcti).load(), path, uri.token, so_pin, user_pin)
    print(f"initialized token {uri.token} in slot {slot}; user PIN set")
    return EXIT_OK


def _password(args: argparse.Namespace) -> str | None:
    import os

    if args.est_password_file:
        with open(args.est_password_file, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get("PIKE_EST_PASSWORD")


def _atomic_write(path: str, data: bytes) -> None:
    """A new file beside ``path`` moved over it: piked never reads half a certificate."""
    import os

    tmp = f"{path}.new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _enroll(args: argparse.Namespace) -> int:
    return _enroll_cert(args)[0]


def _renew(args: argparse.Namespace) -> int:
    """``keys renew``: [enroll] of the config, then a reload of piked when renewed."""
    from pike.policy.loader import load_config
    from pike.policy.paths import DEFAULT_CONFIG
    from pike.policy.toml_table import ConfigError

    path = args.config or DEFAULT_CONFIG
    try:
        enroll = load_config(path).enroll
    except ConfigError as exc:
        print(f"pikectl keys renew: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.configured:
        return EXIT_OK if enroll is not None else EXIT_ERROR
    if enroll is None:
        print(f"pikectl keys renew: {path} has no [enroll] section; nothing to renew")
        return EXIT_OK
    import os

    if not os.path.isfile(enroll.cert):
        print(f"pikectl keys renew: no certificate {enroll.cert} to renew yet; the first one "
              "comes from pikectl keys enroll", file=sys.stderr)  # fmt: skip
        return EXIT_ERROR
    token = enroll.key.lower().startswith("pkcs11:")
    en = argparse.Namespace(
        uri=enroll.key if token else None,
        key=None if token else enroll.key,
        pin_file=None,
        est=enroll.url,
        est_ca=enroll.ca,
        est_user=enroll.user,
        est_password_file=enroll.password_file,
        subject=None,
        san=[],
        renew=True,
        cert=enroll.cert,
        within=enroll.within_days,
        out=enroll.cert,
        cacerts_out=None,
        import_=enroll.import_cert,
    )
    code, renewed = _enroll_cert(en)
    if code != EXIT_OK or not renewed:
        return code
    from pike.cli.pikectl import _call, _socket

    code, _ = _call(_socket(args), "reload", {})
    if code == EXIT_OK:
        print("piked reloaded: it uses the new certificate")
    elif code == EXIT_USAGE:  # piked not running: it reads the new file when it starts
        print("piked not reached; it uses the new certificate when it starts")
        return EXIT_OK
    return code


def _enroll_cert(args: argparse.Namespace) -> tuple[int, bool]:
    """``keys enroll``: its exit code, and whether a certificate was written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from pike.cli.est import EstClient, EstError
    from pike.hsm import provision
    from pike.hsm.filekey import FileKeySigner
    from pike.hsm.signer import Signer

    current = None
    if args.cert:
        with open(args.cert, "rb") as f:
            current = x509.load_pem_x509_certificates(f.read())[0]
    if args.renew and current is None:
        print("pikectl keys enroll: --renew needs --cert (the certificate to renew)",
              file=sys.stderr)  # fmt: skip
        return EXIT_ERROR, False
    if current is not None and args.renew and args.within is not None:
        import datetime as dt

        left = current.not_valid_after_utc - dt.datetime.now(dt.UTC)
        if left > dt.timedelta(days=args.within):
            print(f"pikectl keys enroll: {args.cert} is valid {left.days} more days; not renewed")
            return EXIT_OK, False
    if args.subject:
        subject = _subject(args.subject)
    elif current is not None:
        subject = current.subject
    else:
        print("pikectl keys enroll: give --subject (or --cert to renew)", file=sys.stderr)
        return EXIT_ERROR, False
    sans = [_san(s) for s in args.san]
    if not sans and current is not None:
        try:
            ext = current.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = list(ext.value)
        except x509.ExtensionNotFound:
            pass
    signer: Signer
    if args.uri:
        from pike.hsm.pkcs11 import Pkcs11Signer

        uri = _uri(args, need_key=True)
        signer = Pkcs11Signer(uri)
    else:
        signer = FileKeySigner(args.key)
    if args.renew and args.uri and not args.est_user:
        # Python's TLS signs the handshake only with a key file, never a token's.
        print("pikectl keys enroll: renewing a token key needs --est-user (HTTP basic auth;"
              " TLS client auth cannot sign with a token key)", file=sys.stderr)  # fmt: skip
        return EXIT_ERROR, False
    req = provision.csr(signer, subject, sans)
    # TLS client auth with the current certificate needs its key as a file
    tls_cert = args.cert if args.cert and args.key else None
    client = EstClient(
        args.est,
        args.est_ca,
        user=args.est_user,
        password=_password(args) if args.est_user else None,
        client_cert=tls_cert,
        client_key=args.key if tls_cert else None,
    )
    try:
        cas = client.cacerts() if args.cacerts_out else []
        cert = client.enroll(req, renew=args.renew)
    except EstError as exc:
        print(f"pikectl keys enroll: {exc}", file=sys.stderr)
        return EXIT_ERROR, False
    pem = serialization.Encoding.PEM
    _atomic_write(args.out, cert.public_bytes(pem))
    if args.cacerts_out:
        _atomic_write(args.cacerts_out, b"".join(c.public_bytes(pem) for c in cas))
    if args.import_ and args.uri:
        from pike.hsm.pkcs11 import module

        # The signer's login holds the token: start the module afresh for a rw session.
        module(uri.module(), uri.tcti).needs_reinit = True
        key_id = uri.id if uri.id is not None else (uri.object or "").encode()
        with _session(uri) as s:
            if args.renew:  # the token keeps the key's newest certificate only
                provision.replace_cert(s, cert, uri.object or "", key_id)
            else:
                provision.import_cert(s, cert, uri.object or "", key_id)
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"enrolled {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}), "
          f"valid until {until}: {args.out}")  # fmt: skip
    return EXIT_OK, True


def _run(args: argparse.Namespace) -> int:
    if args.keys_cmd == "enroll":
        return _enroll(args)
    if args.keys_cmd == "renew":
        return _renew(args)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from pkcs11.constants import ObjectClass

    from pike.hsm import provision
    from pike.hsm.pkcs11 import Pkcs11Signer

    cmd = args.keys_cmd
    uri = _uri(args, need_key=cmd in ("generate", "csr", "self-signed", "import-cert"))
    if cmd == "init-token":
        return _init_token(uri, args.so_pin_file)
    key_id = uri.id if uri.id is not None else (uri.object or "").encode()
    if cmd == "generate":
        with _session(uri) as s:
            provision.generate(s, args.type, uri.object or "", key_id)
        signer = Pkcs11Signer(uri)
        print(f"generated {args.type} key {uri.describe()} on the token")
        print(provision.public_pem(signer).decode(), end="")
        return EXIT_OK
    if cmd in ("csr", "self-signed"):
        signer = Pkcs11Signer(uri)
        sans = [_san(s) for s in args.san]
        if cmd == "csr":
            req = provision.csr(signer, _subject(args.subject), sans)
            _write(req.public_bytes(serialization.Encoding.PEM), args.out)
        else:
            cert = provision.self_signed(signer, _subject(args.subject), sans, args.days)
            _write(cert.public_bytes(serialization.Encoding.PEM), args.out)
        return EXIT_OK
    if cmd == "import-cert":
        with open(args.file, "rb") as f:
            data = f.read()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
        from pike.hsm.pkcs11 import public_key_of

        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        with _session(uri) as s:  # one login: a second one would be UserAlreadyLoggedIn
            lookup = {"label": uri.object} if uri.id is None else {"id": uri.id}
            pub = public_key_of(s.get_key(object_class=ObjectClass.PUBLIC_KEY, **lookup))
            if cert.public_key().public_bytes(*fmt) != pub.public_bytes(*fmt):
                print(f"pikectl keys: {args.file} is not the certificate of {uri}", file=sys.stderr)
                return EXIT_ERROR
            if getattr(
                args, "renew", False
            ):  # keys enroll --renew: the token keeps the key's newest certificate only
                provision.replace_cert(s, cert, uri.object or "", key_id)
            else:
                provision.import_cert(s, cert, uri.object or "", key_id)
        print(f"imported {cert.subject.rfc4514_string()} as {uri.describe()}")
        return EXIT_OK
    with _session(uri) as s:
        for cls, label, kid, detail in provision.list_objects(s):
            print(f"{cls:8} {label:20} id={kid:10} {detail}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run ``pikectl keys``; errors are one line on stderr (never a PIN)."""
    import pkcs11.exceptions as p11e

    from pike.hsm.signer import SignerError
    from pike.hsm.uri import UriError

    try:
        return _run(args)
    except (UriError, SignerError, ValueError, OSError) as exc:
        print(f"pikectl keys {args.keys_cmd}: {exc}", file=sys.stderr)
    except p11e.PinIncorrect:
        print(f"pikectl keys {args.keys_cmd}: the token refused the PIN (not retried)",
              file=sys.stderr)  # fmt: skip
    except p11e.PinLocked:
        print(f"pikectl keys {args.keys_cmd}: the token is locked (PinLocked)", file=sys.stderr)
    except p11e.PKCS11Error as exc:
        print(f"pikectl keys {args.keys_cmd}: token error {type(exc).__name__} {exc}",
              file=sys.stderr)  # fmt: skip
    except Exception as exc:  # the token's _Fail and the like: one line, no traceback
        print(f"pikectl keys {args.keys_cmd}: {exc}", file=sys.stderr)
    return EXIT_ERROR
