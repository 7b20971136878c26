"""pike.daemon.revocation: the HTTP fetches are bounded in time and size and never raise
anything but FetchError; the Fetcher turns the cache's wishes into fetches, a CRL that
revokes a live peer into ``drop_revoked``. Loopback servers only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ikev2.revgen import cdp, crl_der, make_crl
from ikev2.x509gen import Issued, issue, make_ca
from pike.daemon.revocation import Fetcher, FetchError, http_fetch
from pike.sa.credentials import CredentialStore
from pike.sa.revocation import Fetch, RevokedCheck, Sources
from pike.sa.revocation_status import Status

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/ca.crl"


def _answer(body: bytes, status: str = "200 OK", length: bool = True) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.0 {status}\r\n" + (f"Content-Length: {len(body)}\r\n" if length else "")
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        writer.close()

    return handle


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def test_http_fetch_bounds() -> None:
    async def main() -> None:
        server, uri = await _serve(_answer(b"x" * 5000))
        async with server:
            assert await http_fetch(uri, limit=5000) == b"x" * 5000
            with pytest.raises(FetchError, match="answer of 5000 bytes, at most 100 taken"):
                await http_fetch(uri, limit=100)
        server, uri = await _serve(_answer(b"y" * 5000, length=False))
        async with server:
            with pytest.raises(FetchError, match="answer larger than 100 bytes"):
                await http_fetch(uri, limit=100)
        server, uri = await _serve(_answer(b"gone", "404 Not Found"))
        async with server:
            with pytest.raises(FetchError, match="HTTP 404 Not Found"):
                await http_fetch(uri, limit=100)
        server, uri = await _serve(_hang)
        async with server:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(FetchError, match=r"no answer within 0\.3 s"):
                await http_fetch(uri, limit=100, timeout=0.3)
            assert loop.time() - t0 < 1.0
        with pytest.raises(FetchError):
            await http_fetch("http://127.0.0.1:1/x", limit=100)  # refused

    asyncio.run(main())


class _Engine:
    def __init__(self, paths: list[tuple[Any, ...]]) -> None:
        self.paths = paths
        self.dropped: list[tuple[Any, ...]] = []

    def drop_revoked(self, revoked: RevokedCheck, now: float) -> list[str]:
        out = []
        for path in self.paths:
            why = revoked(path)
            if why is not None:
                self.dropped.append(path)
                out.append(why)
        return out


def test_fetcher_fills_the_cache_and_drops_revoked_peers() -> None:
    ca = make_ca()

    async def main() -> None:
        crl = {"data": crl_der(make_crl(ca))}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = crl["data"]
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            writer.close()

        server, uri = await _serve(handle)
        gw: Issued = issue(ca, "ecdsa-p256", "gw.example.net", extra=[cdp(uri)])
        store = CredentialStore()
        engine = _Engine([(gw.cert, ca.cert)])
        loop = asyncio.get_running_loop()
        pumped: list[int] = []
        fetcher = Fetcher(lambda: store, lambda: engine, loop.time, lambda: pumped.append(1))
        cache = store.revocation
        async with server:
            now = store.wall(0.0)
            assert cache.status(gw.cert, ca.cert, Sources(), now).status is Status.PENDING
            fetcher.drain()
            for _ in range(50):
                await asyncio.sleep(0.02)
                if uri in cache.crls:
                    break
            assert cache.status(gw.cert, ca.cert, Sources(), now).status is Status.GOOD
            assert engine.dropped == [] and fetcher.counts == {("crl", "ok"): 1}
            # the CA revokes gw; the next fetch of that CRL ends gw's SA
            crl["data"] = crl_der(make_crl(ca, [gw.cert.serial_number], number=2))
            cache.wanted.append(Fetch("crl", uri))
            fetcher.drain()
            for _ in range(50):
                await asyncio.sleep(0.02)
                if engine.dropped:
                    break
            assert engine.dropped == [(gw.cert, ca.cert)] and pumped
        # a source that is gone: a failure held for the retransmission to see
        cache.wanted.append(Fetch("crl", "http://127.0.0.1:1/ca.crl"))
        fetcher.drain()
        await asyncio.sleep(0.2)
        assert "http://127.0.0.1:1/ca.crl" in cache.failures
        await fetcher.stop()

    asyncio.run(main())


async def _fetched_at_start(
    server: asyncio.Server, uri: str, store: CredentialStore, config: Any
) -> bool:
    """A Fetcher started on ``config`` while ``server`` answers: whether ``uri``'s CRL
    reached ``store`` within a second."""
    loop = asyncio.get_running_loop()
    fetcher = Fetcher(lambda: store, lambda: None, loop.time, lambda: None)
    async with server:
        fetcher.start(config)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if uri in store.revocation.crls:
                break
        fetched = uri in store.revocation.crls
    await fetcher.stop()
    return fetched


def test_configured_crl_uris_are_fetched_at_start() -> None:
    from types import SimpleNamespace

    ca = make_ca()

    async def main() -> None:
        server, uri = await _serve(_answer(crl_der(make_crl(ca))))
        store = CredentialStore()
        remote = SimpleNamespace(crl_uris=(uri,))
        config: Any = SimpleNamespace(
            connections={"hq": SimpleNamespace(remote=remote)}, authorities=()
        )
        assert await _fetched_at_start(server, uri, store, config)

    asyncio.run(main())


def test_authority_crl_is_fetched_at_start_and_revokes_what_its_ca_issued(
    tmp_path: Path,
) -> None:
    """[authorities.NAME] crl_uris: fetched at start like a connection's, and used for
    every certificate that CA issued (this one has no CRL distribution point)."""
    from types import SimpleNamespace

    from ikev2.x509gen import write
    from pike.policy.loader import load_config_text

    ca = make_ca()
    gw = issue(ca, "ecdsa-p256", "gw.example.net")
    ca_file, _ = write(tmp_path, "ca", ca)

    async def main() -> None:
        server, uri = await _serve(_answer(crl_der(make_crl(ca, [gw.cert.serial_number]))))
        text = f'[authorities.corp]\ncacert = "{ca_file}"\ncrl_uris = ["{uri}"]\n'
        config = load_config_text(text, str(tmp_path / "pike.toml"))
        store = CredentialStore()
        assert store.load_authorities(config) == []
        await _fetched_at_start(server, uri, store, config)
        remote = SimpleNamespace(crls=(), crl_uris=(), ocsp_uris=())
        sources = store.revocation_sources(SimpleNamespace(remote=remote))  # type: ignore[arg-type]
        v = store.revocation.status(gw.cert, ca.cert, sources, store.wall(0.0))
        assert v.status is Status.REVOKED and v.source == f"crl {uri}"

    asyncio.run(main())


def test_a_replaced_crl_file_is_read_again_and_ends_the_revoked_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA drops its new CRL over the file ``crls`` names: no reload needed."""
    from types import SimpleNamespace

    import pike.daemon.revocation as revocation

    monkeypatch.setattr(revocation, "FILE_POLL", 0.05)
    ca = make_ca()
    gw = issue(ca, "ecdsa-p256", "gw.example.net")
    path = tmp_path / "ca.crl"
    path.write_bytes(crl_der(make_crl(ca)))
    remote = SimpleNamespace(crls=(str(path),), crl_uris=())
    config: Any = SimpleNamespace(
        connections={"hq": SimpleNamespace(remote=remote)}, authorities=()
    )
    store = CredentialStore()
    assert store.load_crl_files(config) == []

    async def main() -> None:
        engine = _Engine([(gw.cert, ca.cert)])
        loop = asyncio.get_running_loop()
        fetcher = Fetcher(lambda: store, lambda: engine, loop.time, lambda: None)
        fetcher.start(config)
        await asyncio.sleep(0.2)
        assert engine.dropped == []  # polled, unchanged
        path.write_bytes(crl_der(make_crl(ca, [gw.cert.serial_number], number=2)))
        for _ in range(50):
            await asyncio.sleep(0.02)
            if engine.dropped:
                break
        assert engine.dropped == [(gw.cert, ca.cert)]
        await fetcher.stop()

    asyncio.run(main())


def test_check_config_names_a_bad_authority_certificate(tmp_path: Path) -> None:
    from ikev2.x509gen import write
    from pike.daemon.configfile import ConfigRefused, load_checked

    (tmp_path / "ca.pem").write_text("not a certificate\n")
    path = tmp_path / "pike.toml"
    path.write_text('[authorities.corp]\ncacert = "ca.pem"\ncrl_uris = "http://pki/ca.crl"\n')
    store = CredentialStore()
    with pytest.raises(ConfigRefused) as err:
        load_checked(str(path), probe=True, store=store)
    (problem,) = err.value.lines
    assert problem.startswith(f"{path}:2: authorities.corp.cacert: "), problem
    # a good one, then a refused reload: the running config's authorities stay
    ca = make_ca()
    write(tmp_path, "ca", ca)
    load_checked(str(path), probe=True, store=store)
    running = store.authorities
    assert [a.crl_uris for a in running] == [("http://pki/ca.crl",)]
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    (tmp_path / "ca.pem").touch()
    path.write_text(path.read_text().replace("http://pki/ca.crl", "http://pki/new.crl"))
    with pytest.raises(ConfigRefused):
        load_checked(str(path), probe=True, store=store)
    assert store.authorities == running


def test_stop_ends_the_refresher_even_as_it_is_woken() -> None:
    """A reload (or a fetch done) wakes the refresher just as piked stops: ``stop`` must
    still end it. ``asyncio.wait_for`` in Python 3.11 returns the wait's result when the
    cancellation meets a wait already done, and the refresher went on forever (piked's
    shutdown and this file's tests hung now and then)."""
    from types import SimpleNamespace

    async def main() -> None:
        store = CredentialStore()
        config: Any = SimpleNamespace(connections={}, authorities=())
        loop = asyncio.get_running_loop()
        fetcher = Fetcher(lambda: store, lambda: None, loop.time, lambda: None)
        fetcher.start(config)
        await asyncio.sleep(0.05)  # the refresher waits for its next due time
        fetcher.reloaded(config)  # wakes it; the cancellation comes before it runs
        await asyncio.wait_for(fetcher.stop(), 2)

    asyncio.run(main())
