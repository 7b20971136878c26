"""The ``piked`` command: ``pike.cli.piked.main`` with asyncio loaded without ``ssl``.

piked speaks no TLS: CRL and OCSP fetches are plain HTTP (``pike.daemon.revocation``),
EST enrollment runs in pikectl. asyncio imports ``ssl`` when it can, for TLS transports
piked never opens (with ``_ssl`` and its enum tables, 1.2 MiB of idle RSS,
docs/performance.md). So ``ssl`` is marked absent while asyncio loads (its modules then
hold ``ssl = None``, as on a Python without it) and the mark is taken away again: a
later import that needs ``ssl`` (``prometheus_client`` with ``metrics_listen``) gets it.
Only here, not in ``pike.cli.piked``: a test process importing that module is untouched.
"""

from __future__ import annotations

import sys

if "ssl" not in sys.modules:
    sys.modules["ssl"] = None  # type: ignore[assignment]  # "absent", for the import system
    try:
        import asyncio  # noqa: F401  (its modules take ssl = None)
    finally:
        del sys.modules["ssl"]

from pike.cli.piked import main  # after asyncio: it imports asyncio too

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
