"""The ``piked`` command: ``pike.cli.piked.main`` with asyncio loaded without ``ssl`` and
``hashlib``/``hmac`` without ``_hashlib``.

piked speaks no TLS: CRL and OCSP fetches are plain HTTP (``pike.daemon.revocation``),
EST enrollment runs in pikectl. asyncio imports ``ssl`` when it can, for TLS transports
piked never opens (with ``_ssl`` and its enum tables, 1.2 MiB of idle RSS,
docs/performance.md). So ``ssl`` is marked absent while asyncio loads (its modules then
hold ``ssl = None``, as on a Python without it) and the mark is taken away again: a
later import that needs ``ssl`` (``prometheus_client`` with ``metrics_listen``) gets it.

``_hashlib`` is the stdlib's binding of the system's OpenSSL (``libcrypto.so.3``, 3.4 MiB
of idle RSS). piked's ciphers, key exchanges and signatures are ``cryptography``'s, which
carries its own OpenSSL; the stdlib's is there only for ``hashlib``/``hmac`` (the PRF's
HMAC, NAT-D's SHA-1, cookies, the config cache's key). Loaded without it, they use
CPython's built-in SHA-1/SHA-2 and HMAC: a responder's IKE_SA_INIT + IKE_AUTH costs the
same CPU (tests/bench/bench_hub_engine.py, docs/performance.md). Nothing piked runs needs
what only OpenSSL's hashlib has (``pbkdf2_hmac``, ``scrypt``, MD4, RIPEMD-160).

Only here, not in ``pike.cli.piked``: a test process importing that module is untouched.
"""

from __future__ import annotations

import sys

_marked = [name for name in ("ssl", "_hashlib") if name not in sys.modules]
for _name in _marked:
    sys.modules[_name] = None  # type: ignore[assignment]  # "absent", for the import system
try:
    import asyncio  # noqa: F401  (its modules take ssl = None)
    import hashlib  # noqa: F401  (built-in SHA-1/SHA-2, for every later importer)
    import hmac  # noqa: F401  (HMAC over those)
finally:
    for _name in _marked:
        del sys.modules[_name]

from pike.cli.piked import main  # noqa: E402  (after asyncio: it imports asyncio too)

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
