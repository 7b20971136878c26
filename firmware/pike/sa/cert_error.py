"""``CertError``, apart from ``pike.sa.certs`` so that code which only catches it does not
import ``cryptography.x509`` (idle RSS, docs/performance.md)."""

from __future__ import annotations


class CertError(Exception):
    """A certificate problem; the text names the certificate and what failed."""
