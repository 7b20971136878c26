"""The fetching side of revocation: CRLs over HTTP and OCSP requests, off the engines.

The engines read the store's ``RevocationCache`` only (pike.sa.revocation). After each
engine call the runtime calls ``Fetcher.drain``: every ``Fetch`` the cache asked for
becomes an asyncio task here, bounded in time (``FETCH_TIMEOUT`` for connect, request and
answer together) and size (``MAX_CRL``, ``MAX_OCSP``), whose result goes back into the
cache. A responder that hangs costs one task and ends as a failure the policy judges.

``refresh`` runs in the background: each HTTP CRL is fetched again when its nextUpdate
passes (at least ``MIN_REFRESH`` apart), and after a CRL came in, the IKE SAs whose peer it
now revokes are deleted (``engine.drop_revoked``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pike.policy.config import Config
from pike.sa.credentials import CredentialStore
from pike.sa.revocation import Fetch, RevokedCheck, revoked_check
from pike.sa.revocation_status import RevocationError

if TYPE_CHECKING:
    from datetime import datetime  # imported where a time is made (idle RSS)

log = logging.getLogger("pike.revocation")

FETCH_TIMEOUT = 3.0  # below strongSwan's first retransmission (4 s): the retry finds it
MAX_CRL = 4 * 1024 * 1024
MAX_OCSP = 64 * 1024
MAX_HEADER = 16 * 1024
MIN_REFRESH = 2.0  # seconds between two fetches of one CRL, whatever its nextUpdate says
MAX_REFRESH = 3600.0  # a CRL without nextUpdate (or a far one) is fetched this often
RETRY_FAILED = 30.0  # a CRL whose fetch failed is tried again this soon
FILE_POLL = 30.0  # CRL files (``crls``) replaced meanwhile are read again this often


class FetchError(Exception):
    pass


class _Engine(Protocol):
    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]: ...


async def http_fetch(
    uri: str,
    *,
    body: bytes | None = None,
    content_type: str = "",
    limit: int,
    timeout: float = FETCH_TIMEOUT,
) -> bytes:
    """GET (or POST ``body``) an http:// URI with HTTP/1.0: the whole body, at most
    ``limit`` bytes, within ``timeout`` seconds. FetchError says what went wrong."""
    try:
        return await asyncio.wait_for(_http(uri, body, content_type, limit), timeout)
    except TimeoutError:
        raise FetchError(f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise FetchError(exc.strerror or str(exc)) from None


async def _http(uri: str, body: bytes | None, content_type: str, limit: int) -> bytes:
    from urllib.parse import urlsplit  # with the first fetch (idle RSS)

    parts = urlsplit(uri)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise FetchError(f"not an http:// URI: {uri}")
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    lines = [f"{'POST' if body is not None else 'GET'} {target} HTTP/1.0", f"Host: {host}"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")
    reader, writer = await asyncio.open_connection(parts.hostname, port, limit=MAX_HEADER)
    try:
        writer.write(request)
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise FetchError("malformed HTTP answer header") from None
        status_line, *headers = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/"):
            raise FetchError("malformed HTTP status line")
        if fields[1] != "200":
            raise FetchError(f"HTTP {' '.join(fields[1:])}")
        length = None
        for h in headers:
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        if length is not None and length > limit:
            raise FetchError(f"answer of {length} bytes, at most {limit} taken")
        if length is not None:  # a server may keep the connection open after it
            try:
                return await reader.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                raise FetchError(
                    f"answer cut short ({len(exc.partial)} of {length} bytes)"
                ) from None
        data = bytearray()
        while len(data) <= limit:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
        if len(data) > limit:
            raise FetchError(f"answer larger than {limit} bytes")
        return bytes(data)
    finally:
        writer.close()


class Fetcher:
    """Fetches for one daemon's ``CredentialStore``; ``engine`` for SA teardown."""

    def __init__(
        self,
        store: Callable[[], CredentialStore],
        engine: Callable[[], _Engine | None],
        now: Callable[[], float],
        pump: Callable[[], None],
        *,
        wall: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._store = store
        self._engine = engine
        self._now = now
        self._pump = pump
        self._wall = wall
        self._random = random
        self._tasks: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._due: dict[str, float] = {}  # CRL URI -> monotonic time of its next fetch
        self._config: Config | None = None  # the CRL files to watch
        self._file_poll = 0.0  # monotonic time of the next look at the CRL files
        self._file_problems: list[str] = []
        self._wake = asyncio.Event()
        self.counts: dict[tuple[str, str], int] = {}  # (kind, result) -> fetches

    def _wall_dt(self) -> datetime:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self._wall(), UTC)

    def start(self, config: Config) -> None:
        self._config = config
        self._file_poll = self._now() + FILE_POLL
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())
        self._prefetch(config)

    def _prefetch(self, config: Config) -> None:
        """The CRL URIs the config names (connections and authorities) are fetched now,
        before any peer needs them."""
        for conn in config.connections.values():
            for uri in conn.remote.crl_uris:
                self._due.setdefault(uri, 0.0)
        for authority in config.authorities:
            for uri in authority.crl_uris:
                self._due.setdefault(uri, 0.0)
        self._wake.set()

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._refresher] if self._refresher else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def drain(self) -> None:
        """Start the fetches the cache asked for (called after each engine call)."""
        wanted = self._store().revocation.wanted
        while wanted:
            fetch = wanted.popleft()
            task = asyncio.get_running_loop().create_task(self._run(fetch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def reloaded(self, config: Config) -> None:
        """A reload: every HTTP CRL held and configured is fetched again now, and the CRL
        files just read may revoke a live peer."""
        self._config = config
        for uri in self._store().revocation.crls:
            if uri.lower().startswith("http://"):
                self._due[uri] = 0.0
        self._prefetch(config)
        self._drop_revoked()

    async def _run(self, fetch: Fetch) -> None:
        cache = self._store().revocation
        try:
            if fetch.kind == "crl":
                data = await http_fetch(fetch.uri, limit=MAX_CRL)
                # a large CRL takes tens of ms to parse: not on the event loop
                loop = asyncio.get_running_loop()
                from pike.sa.crl import parse_crl  # deferred: a CRL was fetched

                entry = await loop.run_in_executor(None, parse_crl, data, fetch.uri)
                fresh = cache.add_crl(entry, self._wall_dt())
                self._schedule(fetch.uri, entry.next_update)
                log.info(
                    "CRL %s: %d revoked, nextUpdate %s",
                    fetch.uri,
                    len(entry.revoked),
                    entry.next_update,
                )
                if fresh:
                    self._drop_revoked()
            else:
                assert fetch.cert is not None and fetch.issuer is not None
                # deferred: cryptography.x509.ocsp loads with the first OCSP fetch
                from pike.sa.ocsp import NONCE_SIZE, check_ocsp_response, ocsp_request

                nonce = self._random(NONCE_SIZE)
                request = ocsp_request(fetch.cert, fetch.issuer, nonce)
                data = await http_fetch(
                    fetch.uri,
                    body=request,
                    content_type="application/ocsp-request",
                    limit=MAX_OCSP,
                )
                ocsp = check_ocsp_response(
                    data, fetch.cert, fetch.issuer, nonce, self._wall_dt(), fetch.uri
                )
                cache.add_ocsp(fetch, ocsp, self._wall_dt())
                log.info(
                    "OCSP %s: serial %x is %s (nextUpdate %s)",
                    fetch.uri,
                    fetch.cert.serial_number,
                    ocsp.status.value,
                    ocsp.next_update,
                )
                if ocsp.status.value == "revoked":
                    self._drop_revoked()
            self.counts[(fetch.kind, "ok")] = self.counts.get((fetch.kind, "ok"), 0) + 1
        except (FetchError, RevocationError) as exc:
            log.warning("%s fetch from %s failed: %s", fetch.kind.upper(), fetch.uri, exc)
            cache.failed(fetch, str(exc), self._wall_dt())
            self.counts[(fetch.kind, "failed")] = self.counts.get((fetch.kind, "failed"), 0) + 1
            if fetch.kind == "crl" and fetch.uri in cache.crls:
                self._due[fetch.uri] = self._now() + RETRY_FAILED
        except Exception:  # never let a fetch take the daemon down
            log.exception("%s fetch from %s failed", fetch.kind.upper(), fetch.uri)
            cache.failed(fetch, "internal error", self._wall_dt())

    def _schedule(self, uri: str, next_update: datetime | None) -> None:
        wait = MAX_REFRESH
        if next_update is not None:
            wait = (next_update - self._wall_dt()).total_seconds()
        self._due[uri] = self._now() + min(MAX_REFRESH, max(MIN_REFRESH, wait))
        self._wake.set()

    def _drop_revoked(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        check = revoked_check(self._store().revocation, self._wall_dt())
        for line in engine.drop_revoked(check, self._now()):
            log.warning("deleting IKE SA of a revoked peer: %s", line)
        self._pump()

    def _poll_files(self) -> None:
        """CRL files replaced since they were read (a CA drops its new CRL in place):
        read again, and a peer they now revoke loses its SA, without a reload."""
        if self._config is None:
            return
        problems, changed = self._store().reread_crl_files(self._config)
        for line in problems:
            if line not in self._file_problems:  # once per problem, not every poll
                log.warning("%s", line)
        self._file_problems = problems
        if changed:
            log.info("CRL files re-read")
            self._drop_revoked()

    async def _refresh(self) -> None:
        while True:
            now = self._now()
            due = [u for u, t in self._due.items() if t <= now]
            cache = self._store().revocation
            for uri in due:
                del self._due[uri]
                fetch = Fetch("crl", uri)
                if fetch.key not in cache.inflight:
                    cache.inflight.add(fetch.key)
                    cache.wanted.append(fetch)
            self.drain()
            if now >= self._file_poll:
                self._file_poll = now + FILE_POLL
                self._poll_files()
            wait = min([*self._due.values(), self._file_poll]) - now
            self._wake.clear()
            # not wait_for: in 3.11 it drops a cancellation that meets a wake-up (stop()
            # would wait forever); asyncio.timeout lets it through
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, wait)):
                    await self._wake.wait()
