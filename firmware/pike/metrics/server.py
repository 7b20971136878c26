"""The ``/metrics`` HTTP endpoint, served on the daemon's event loop.

prometheus-client's own server runs in a thread; the collector reads the engine and the
kernel's netlink socket, which belong to the event loop, so this small asyncio server
calls it on the loop instead (a scrape takes about a millisecond per SA).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("pike.metrics")

MAX_REQUEST = 8192
READ_TIMEOUT = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9447"``, ``"[::1]:9447"``, ``":9447"`` (all addresses) -> host, port."""
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") else host
    return host or "", int(port)


class MetricsServer:
    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        self.registry = registry
        self.listen = listen
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        self._server = await asyncio.start_server(self._serve, host or None, port)
        log.info("Prometheus metrics on http://%s/metrics", self.listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, path = _request_line(head)
            if method not in ("GET", "HEAD"):
                await _reply(writer, 405, b"method not allowed\n", "text/plain", method)
            elif path.split("?", 1)[0] not in ("/metrics", "/"):
                await _reply(writer, 404, b"try /metrics\n", "text/plain", method)
            else:
                try:
                    body = generate_latest(self.registry)
                except Exception:
                    log.exception("collecting metrics failed")
                    await _reply(writer, 500, b"collector failed\n", "text/plain", method)
                else:
                    await _reply(writer, 200, body, CONTENT_TYPE_LATEST, method)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except (ValueError, ConnectionError):
            with contextlib.suppress(Exception):
                await _reply(writer, 400, b"bad request\n", "text/plain", "GET")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _request_line(head: bytes) -> tuple[str, str]:
    if len(head) > MAX_REQUEST:
        raise ValueError("request too long")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("bad request line")
    return parts[0], parts[1]


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


async def _reply(
    writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, method: str
) -> None:
    reason = _REASONS.get(status, "Internal Server Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
    await writer.drain()
