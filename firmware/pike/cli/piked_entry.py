"""The ``piked`` command: ``pike.cli.piked.main`` in a process that keeps ``ssl`` out.

piked speaks no TLS: CRL and OCSP fetches are plain HTTP (``pike.daemon.revocation``),
EST enrollment runs in pikectl. asyncio imports ``ssl`` when it can, for TLS transports
piked never opens (with ``_ssl`` and its enum tables, about 1 MiB of idle RSS,
docs/performance.md). Marked absent before asyncio loads, asyncio runs without it (as
on a Python built without OpenSSL); TLS asked of this process fails with ImportError.
Only here, not in ``pike.cli.piked``: a test process importing that module keeps ``ssl``.
"""

from __future__ import annotations

import sys

if "ssl" not in sys.modules:
    sys.modules["ssl"] = None  # type: ignore[assignment]  # "absent", for the import system

from pike.cli.piked import main  # after the mark: it imports asyncio

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
