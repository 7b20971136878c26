"""A validated config kept for the next start or reload of the same file.

A hub's ``pike.toml`` with 10 000 connections takes seconds to parse and validate
(``tomllib`` alone is half of it) and a fraction of a second to read back as the
``Config`` it gave. An entry is used only when everything the loader's result depends
on is what it was:

- the file's bytes, its path (relative files resolve against it), the board's default
  proposals, and the code that reads them (every module of ``pike`` by size and mtime,
  and the Python version), all in one SHA-256 key;
- every ``secret_file`` still gives the same secret (read again, compared), and every
  certificate or key file named is still a readable file (the loader's own checks).

Anything else (no entry, another key, a changed secret file, a damaged entry) is a miss:
the loader runs and its result replaces the entry. So a cached load equals a fresh one.

An entry holds the secrets of the config, and loading it runs ``pickle``: it is written
0600 in a directory 0700 owned by this user, and read only while both still are (a file
someone else could write would let them run code as piked). One entry per config path,
overwritten, so edits do not pile up files.

Where: ``$PIKE_CONFIG_CACHE`` if set (empty: off), else ``$STATE_DIRECTORY/config-cache``
(systemd's ``StateDirectory=pike``: ``/var/lib/pike``), else no cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
import sys
from collections.abc import Callable, Iterator, Mapping

from pike.policy.config import Config, ConnectionConfig

__all__ = ["cache_dir", "load_cached"]

log = logging.getLogger(__name__)

_FORMAT = b"pike-config-cache 2\n"
# the package whose code reads the config (os.path: pathlib is 0.3 MiB of idle RSS)
_PIKE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def cache_dir() -> str | None:
    """The cache directory from the environment, or None (no cache)."""
    explicit = os.environ.get("PIKE_CONFIG_CACHE")
    if explicit is not None:
        return explicit or None
    state = os.environ.get("STATE_DIRECTORY")  # systemd; may list several, ':'-separated
    return os.path.join(state.split(":")[0], "config-cache") if state else None


# What a load makes of a text, given what may be reused: the Config and the digest of
# each connection's TOML (``pike.policy.loader.load_config_reusing``).
Load = Callable[[Mapping[bytes, ConnectionConfig]], tuple[Config, dict[str, bytes]]]


def load_cached(
    text: str,
    path: str,
    defaults: object,
    load: Load,
    secret_of_file: Callable[[bytes], bytes],
    directory: str | None,
) -> Config:
    """``load()``'s result for ``text`` read from ``path``, from the cache in ``directory``
    when it holds a valid entry, else loaded and stored. ``secret_of_file``: how the
    loader turns a secret file's bytes into the secret (to check the entry's secrets).

    An entry for another text of the same path, defaults and code (the file was edited)
    still gives its connections: ``load`` reuses those whose TOML is unchanged."""
    if directory is None:
        return load({})[0]
    base = _base_key(path, defaults)
    key = _key(base, text)
    entry = os.path.join(directory, hashlib.sha256(os.path.abspath(path).encode()).hexdigest())
    previous = _previous(entry, base, key, path, secret_of_file)
    if isinstance(previous, Config):
        return previous
    # raises ConfigError for a bad file: nothing is stored then
    config, digests = load(previous)
    data = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    _write(directory, entry, base, key, data + pickle.dumps(digests, pickle.HIGHEST_PROTOCOL))
    # The parser's garbage (the TOML tables, 100 MiB with 10 000 connections) is freed
    # by now; the Config read back from the entry's bytes is allocated afresh, so
    # Python's arenas are not held by a few survivors among that garbage (152 -> 53 MiB).
    del config, digests, previous  # and the old entry's connections with them
    config = pickle.loads(data)
    assert isinstance(config, Config)
    return config


def _previous(
    entry: str, base: bytes, key: bytes, path: str, secret_of_file: Callable[[bytes], bytes]
) -> Config | dict[bytes, ConnectionConfig]:
    """The entry's Config when it is for this text and still valid, else what an entry
    for another text (an edit) gives to reuse, by digest of each connection's TOML."""
    found = _read(entry, base, key)
    if found is None:
        return {}
    config, digests = found
    if digests is None:  # the same text: used unless a file it read changed
        return config if _still_valid(config, path, secret_of_file) else {}
    return {digests[n]: c for n, c in config.connections.items() if n in digests}


def _base_key(path: str, defaults: object) -> bytes:
    """What a connection's validated form depends on besides its own TOML."""
    h = hashlib.sha256(_FORMAT)
    h.update(sys.version.encode() + b"\0" + _code_stamp() + b"\0")
    h.update(os.path.abspath(path).encode() + b"\0" + repr(defaults).encode() + b"\0")
    return h.hexdigest().encode()


def _key(base: bytes, text: str) -> bytes:
    return hashlib.sha256(base + b"\0" + text.encode("utf-8")).hexdigest().encode()


def _code_stamp() -> bytes:
    """Every module of the package by name, size and mtime: a changed loader or config
    class (an upgrade, a developer's edit) never reads an old entry."""
    h = hashlib.sha256()
    for name, st in sorted(_modules(_PIKE)):
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest().encode()


def _modules(top: str) -> Iterator[tuple[str, os.stat_result]]:
    with os.scandir(top) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False) and e.name != "__pycache__":
                yield from _modules(e.path)
            elif e.name.endswith(".py"):
                yield e.path, e.stat()


def _private(st: os.stat_result) -> bool:
    """Ours, and nobody else may read or write it."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _read(entry: str, base: bytes, key: bytes) -> tuple[Config, dict[str, bytes] | None] | None:
    """The entry's Config when it was made for the same path, defaults and code
    (``base``), with None when it was also made for the same text (``key``), else with
    the digests of its connections' TOML (only then read: a hit keeps no more in memory)."""
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        directory = os.stat(os.path.dirname(entry))
        if not (stat.S_ISREG(st.st_mode) and _private(st) and _private(directory)):
            log.warning("config cache %s: not private to this user, not used", entry)
            return None
        if f.readline() != _FORMAT or f.readline() != base + b"\n":
            return None
        same = f.readline() == key + b"\n"
        try:
            config = pickle.load(f)
            digests = None if same else pickle.load(f)
        except Exception:  # a damaged or truncated entry: a miss, rewritten below
            return None
    if not isinstance(config, Config) or not (same or isinstance(digests, dict)):
        return None
    return config, digests


def _still_valid(config: Config, path: str, secret_of_file: Callable[[bytes], bytes]) -> bool:
    """The files the loader read or checked say what they said when the entry was made."""
    for s in config.secrets:
        if s.file and s.file != path:  # a secret_file (inline ones are in the key)
            try:
                with open(s.file, "rb") as f:
                    if secret_of_file(f.read()) != s.secret:
                        return False
            except OSError:
                return False
    auths = {id(a): a for c in config.connections.values() for a in (c.local, c.remote)}
    for a in auths.values():
        files = [*a.certs, *a.cacerts]
        if a.key is not None and a.key[:7].lower() != "pkcs11:":
            files.append(a.key)
        if not all(os.path.isfile(f) and os.access(f, os.R_OK) for f in files):
            return False
    return True


def _write(directory: str, entry: str, base: bytes, key: bytes, data: bytes) -> None:
    """Best effort: a cache that cannot be written costs the next start time only."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private(os.stat(directory)):
            log.warning("config cache %s: not private to this user, not written", directory)
            return
        # tempfile.mkstemp's way without tempfile (it loads shutil, bz2, lzma: 0.6 MiB
        # of idle RSS after a start that wrote the entry); a name taken is an OSError
        tmp = os.path.join(directory, f".entry-{os.urandom(8).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_FORMAT + base + b"\n" + key + b"\n" + data)
            os.replace(tmp, entry)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.info("config cache %s: not written: %s", directory, exc.strerror or exc)
