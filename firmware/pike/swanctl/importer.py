"""``pikectl import-swanctl``: read swanctl.conf (and a secrets file), write pike.toml.

The I/O half: files, include globs, and finding the private key that belongs to a
certificate in /etc/swanctl/{private,rsa,ecdsa,pkcs8} (charon loads every key there and
picks by the certificate; pike names the key file). The translation is
``pike.swanctl.convert``, the check ``pike.swanctl.render``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from pike.policy.loader import NO_DEFAULTS, DefaultProposals
from pike.swanctl.convert import Files, Note, convert
from pike.swanctl.render import render, settle
from pike.swanctl.settings import Section, Where, parse_file

KEY_DIRS = ("private", "rsa", "ecdsa", "pkcs8")


@dataclass(frozen=True, slots=True)
class Imported:
    text: str  # pike.toml
    notes: list[Note]  # what was not carried over, in file and line order
    connections: list[str]
    carried: set[Where]  # the lines whose meaning is in ``text``
    accounted: set[Where]  # carried, named by a note, or pike's default anyway


def import_swanctl(
    conf: str,
    secrets: str | None = None,
    swanctl_dir: str | None = None,
    defaults: DefaultProposals = NO_DEFAULTS,
) -> Imported:
    """Raises ``SettingsError`` (``FILE:LINE: ...``) for a file that cannot be parsed."""
    root = Section("", Where(conf, 0))
    order: list[str] = []  # the files in the order read: notes follow it

    def read(path: str) -> str:
        order.append(path)
        return _read(path)

    parse_file(conf, read, _expand, root)
    if secrets is not None:
        parse_file(secrets, read, _expand, root)
    base = swanctl_dir or os.path.dirname(os.path.abspath(conf))
    files = Files(base, _listdir, lambda cert: key_for(cert, base))
    draft = convert(root, files)
    settle(draft, os.path.join(base, "pike.toml"), defaults)
    rank = {f: i for i, f in reversed(list(enumerate(order)))}
    notes = sorted(draft.notes, key=lambda n: (rank.get(n.where.file, -1), n.where.line))
    header = [f"pike.toml imported from {conf} by pikectl import-swanctl."]
    if secrets is not None:
        header.append(f"Secrets from {secrets}.")
    if notes:
        header += ["", f"Not carried over ({len(notes)}):"] + [f"  {n}" for n in notes]
    conns = [t.header.split(".")[1] for t in draft.tables if t.header.count(".") == 1
             and t.header.startswith("connections.")]  # fmt: skip
    carried = {i.where for t in draft.tables for i in t.items}
    carried |= {w for t in draft.tables for i in t.items if isinstance(i.value, list)
                for _, w in i.value}  # fmt: skip
    accounted = carried | draft.absorbed | {n.where for n in notes}
    return Imported(render(draft.tables, header), notes, conns, carried, accounted)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def _expand(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def _listdir(path: str) -> list[str]:
    try:
        return [n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))]
    except OSError:
        return []


def key_for(cert_path: str, swanctl_dir: str) -> str | None:
    """The unencrypted key file under ``swanctl_dir`` whose public key is the one in
    ``cert_path``; None when there is none (or the certificate cannot be read)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        with open(cert_path, "rb") as f:
            data = f.read()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except (OSError, ValueError):
        return None
    want = _spki(cert.public_key())
    for sub in KEY_DIRS:
        d = os.path.join(swanctl_dir, sub)
        for name in sorted(_listdir(d)):
            path = os.path.join(d, name)
            try:
                with open(path, "rb") as f:
                    raw = f.read()
                key = (
                    serialization.load_pem_private_key(raw, None)
                    if b"-----BEGIN" in raw
                    else serialization.load_der_private_key(raw, None)
                )
            except (OSError, ValueError, TypeError):
                continue  # encrypted, not a key, unreadable: not this one
            if _spki(key.public_key()) == want:
                return path
    return None


def _spki(public_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
