"""Files that hold a secret and are readable by others: piked warns at start.

A PSK inline in the config, a ``secret_file``, a PEM private key, a token PIN file
(``pin-source=file:``): each of them readable by "others" gives the tunnel's keys to
every local user. The image installs ``pike.toml`` 0640 root:pike; this catches what an
operator copied in later.
"""

from __future__ import annotations

import os
import stat

from pike.policy.config import Config


def secret_paths(config: Config) -> list[str]:
    """The files the config makes hold secrets (the config itself when it has a PSK)."""
    paths = [s.file for s in config.secrets if s.file]
    for conn in config.connections.values():
        key = conn.local.key
        if key is None:
            continue
        if not key.startswith("pkcs11:"):
            paths.append(key)
            continue
        from pike.hsm.uri import UriError, parse

        try:
            pin = parse(key).pin_source
        except UriError:
            continue
        if pin is not None and pin.startswith("file:"):
            paths.append(pin.removeprefix("file:"))
    return list(dict.fromkeys(paths))


def exposed(config: Config) -> list[str]:
    """One warning per secret-holding file that others may read."""
    out = []
    for path in secret_paths(config):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            out.append(
                f"{path} holds a secret and is readable by others "
                f"(mode {stat.S_IMODE(mode):04o}): chmod o-rwx {path}"
            )
    return out
