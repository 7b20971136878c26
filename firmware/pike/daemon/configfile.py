"""The one way a config file becomes a running ``Config``: piked's start, its reload
(``pikectl reload`` and SIGHUP) and ``pikectl check-config`` all call ``load_checked``, so
they apply the same defaults (the board's proposals) and refuse the same files.

Beyond the loader's checks, the credentials are read here, and each problem names file,
line and key: certificates that do not parse (without the library's text), a CA file
that holds a leaf, a local ``id`` that our certificate does not carry, a key that does
not belong to the certificate.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from pike.policy.config import Config, ConnectionConfig
from pike.policy.config_cache import cache_dir, load_cached
from pike.policy.loader import (
    ConfigError,
    DefaultProposals,
    load_config_reusing,
    read_config_text,
    secret_of_file,
)
from pike.policy.toml_lines import KeyPath
from pike.policy.toml_table import Source

if TYPE_CHECKING:
    from pike.sa.credentials import CredentialStore

__all__ = ["ConfigRefused", "board_defaults", "load_checked"]


class ConfigRefused(Exception):
    """The config cannot be used; ``lines`` are its problems (``FILE:LINE: KEY: ...``),
    never a secret."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@functools.cache
def board_defaults() -> tuple[DefaultProposals, str]:
    """The board's proposals and the log line saying so, detected once per process: a
    reload must fill in what the start did."""
    from pike.board.defaults import board_proposals

    ike, esp, line = board_proposals()
    return DefaultProposals(ike, esp), line


def load_checked(
    path: str,
    *,
    probe: bool,
    store: CredentialStore | None = None,
    store_for: Callable[[Config], CredentialStore | None] | None = None,
) -> Config:
    """Read, validate and load the credentials of ``path`` as piked runs it.

    ``probe``: look at token keys now (check-config); piked passes False and leaves
    tokens to its signing threads, where a slow token cannot hold up the event loop.
    ``store``: the daemon's credentials, preloaded here (certificates read, signers
    made), so that IKE_AUTH reads no file; without it a store for this check only.
    ``store_for``: instead, the store for the validated config (its ``key_helper`` decides
    where keys live), or None for a store for this check only; it may raise
    ConfigRefused."""
    try:
        text = read_config_text(path)
        defaults = board_defaults()[0]
        config = load_cached(
            text,
            path,
            defaults,
            lambda reuse: load_config_reusing(text, path, defaults, reuse),
            secret_of_file,
            cache_dir(),
        )
    except ConfigError as exc:
        raise ConfigRefused([str(exc)]) from None
    src = Source(path, text)
    problems = [p for conn in config.connections.values() for p in _credentials(src, conn)]
    if problems:
        raise ConfigRefused(problems)
    if store is None and store_for is not None:
        store = store_for(config)
    if store is None:
        from pike.sa.credentials import CredentialStore  # cryptography: only when needed

        store = CredentialStore()
    for name, problem in store.load_authorities(config):
        problems.append(str(src.error(("authorities", name, "cacert"), problem)))
    for conn in config.connections.values():
        if conn.local.auth != "pubkey" and conn.remote.auth != "pubkey":
            continue  # nothing to load (a hub's thousands of PSK branches)
        # One connection at a time, so that a key problem names that connection's key.
        only = dataclasses.replace(config, connections={conn.name: conn})
        for problem in store.preload(only, probe=probe):
            at: KeyPath = ("connections", conn.name, "local", "key")
            while problem.startswith(f"{conn.name}: "):  # the store names it, once or twice
                problem = problem.removeprefix(f"{conn.name}: ")
            for i, file in enumerate(conn.remote.crls):
                if problem.startswith(f"CRL {file}: "):
                    at = ("connections", conn.name, "remote", "crls", i)
            problems.append(str(src.error(at, problem)))
    if problems:
        raise ConfigRefused(problems)
    store.revocation.forget(f for c in config.connections.values() for f in c.remote.crls)
    return config


def _credentials(src: Source, conn: ConnectionConfig) -> list[str]:
    """The certificate problems of ``conn``, each at its key's line."""
    if conn.local.auth != "pubkey" and conn.remote.auth != "pubkey":
        return []
    from cryptography import x509

    from pike.sa.certs import CertError, id_in_cert, load_certificates, subject_identity

    base: KeyPath = ("connections", conn.name)
    out: list[str] = []

    def certs(side: str, key: str, i: int, file: str) -> list[x509.Certificate]:
        try:
            return load_certificates(file)
        except CertError:
            # The library's text (ASN.1 offsets) helps nobody: say what the file must be.
            out.append(
                str(src.error((*base, side, key, i), f"{file}: not a PEM or DER certificate"))
            )
            return []

    if conn.local.auth == "pubkey":
        chain = [c for i, f in enumerate(conn.local.certs) for c in certs("local", "certs", i, f)]
        ident = conn.local.id
        if chain and ident is not None and not id_in_cert(ident, chain[0]):
            out.append(
                str(
                    src.error(
                        (*base, "local", "id"),
                        f"'{ident}' is neither the subject nor a subjectAltName of "
                        f"{conn.local.certs[0]} (the peer would refuse it)",
                    )
                )
            )
    if conn.remote.auth == "pubkey":
        for i, file in enumerate(conn.remote.cacerts):
            for cert in certs("remote", "cacerts", i, file):
                try:
                    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
                    is_ca = bc.ca
                except (x509.ExtensionNotFound, ValueError):
                    is_ca = False
                if not is_ca:
                    subject = subject_identity(cert)  # strongSwan's DN notation
                    out.append(
                        str(
                            src.error(
                                (*base, "remote", "cacerts", i),
                                f"{file}: '{subject}' is not a CA certificate "
                                "(basicConstraints cA is not set): give the CA that issued "
                                "the peer's certificate",
                            )
                        )
                    )
    return out
