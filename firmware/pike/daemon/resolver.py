"""DNS names in ``remote_addrs``, looked up off the event loop (the engine's
``ResolveRequest``; getaddrinfo runs in the loop's default executor)."""

from __future__ import annotations

import asyncio
import logging
import socket

log = logging.getLogger("pike.daemon")

RESOLVE_TIMEOUT = 10.0  # a lookup that takes longer counts as failed (the attempt retries)
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


async def resolve(host: str, family: int) -> tuple[str, ...]:
    """The addresses of ``host`` (IPv4 or IPv6 by ``family``, 0: either), in the
    resolver's order without repeats; () when the lookup fails."""
    loop = asyncio.get_running_loop()
    fam = _FAMILIES.get(family, socket.AF_UNSPEC)
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, family=fam, type=socket.SOCK_DGRAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        log.warning("cannot resolve %s: %s", host, exc or "timed out")
        return ()
    addrs = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    log.info("%s resolved to %s", host, ", ".join(addrs))
    return addrs
