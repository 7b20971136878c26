"""An EST client (RFC 7030, with RFC 8951's clarifications) for ``pikectl keys enroll``.

Three operations: ``/cacerts`` (the CA certificates, §4.1), ``/simpleenroll`` (a first
certificate for a PKCS#10 request, §4.2.1) and ``/simplereenroll`` (renewal, §4.2.2). All
over HTTPS: the server is authenticated against an explicit trust anchor file (``--est-ca``,
§3.6.1), the client with HTTP basic auth (§3.2.3) and/or a TLS client certificate (§3.3.2;
its key must be a file: Python's TLS cannot sign with a token key). Requests and answers
are base64 DER: PKCS#10 in, a PKCS#7 certs-only message out.

Blocking (http.client): it runs in ``pikectl``, never in piked.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

WELL_KNOWN = "/.well-known/est"
MAX_ANSWER = 1024 * 1024


class EstError(Exception):
    """What went wrong with the EST server, in one line (never a password)."""


@dataclass(frozen=True)
class EstClient:
    url: str  # https://host[:port][/.well-known/est[/label]]
    trust: str  # PEM file of the CA(s) that issued the server's TLS certificate
    user: str | None = None
    password: str | None = None
    client_cert: str | None = None  # TLS client authentication (PEM files)
    client_key: str | None = None
    timeout: float = 30.0

    def _base(self) -> tuple[str, int, str]:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise EstError(f"{self.url}: EST needs an https:// URL")
        path = parts.path.rstrip("/")
        if not path.startswith(WELL_KNOWN):
            path = WELL_KNOWN + path  # https://host/label -> /.well-known/est/label
        return parts.hostname, parts.port or 443, path

    def _context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.trust)
            if self.client_cert:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise EstError(f"TLS setup: {exc}") from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 7030 §3.3.1: TLS 1.1 or later
        return ctx

    def _call(self, op: str, body: bytes | None) -> bytes:
        host, port, path = self._base()
        headers = {"Accept": "*/*"}
        if body is not None:
            headers["Content-Type"] = "application/pkcs10"
            headers["Content-Transfer-Encoding"] = "base64"
        if self.user is not None:
            token = f"{self.user}:{self.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        conn = http.client.HTTPSConnection(
            host, port, timeout=self.timeout, context=self._context()
        )
        try:
            conn.request("POST" if body is not None else "GET", f"{path}/{op}", body, headers)
            resp = conn.getresponse()
            data = resp.read(MAX_ANSWER + 1)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise EstError(f"{op}: {exc}") from None
        finally:
            conn.close()
        if resp.status == 202:  # §4.2.3: the CA holds the request (manual approval)
            after = resp.getheader("Retry-After", "?")
            raise EstError(f"{op}: request accepted but pending; ask again in {after} s")
        if resp.status == 401:
            raise EstError(f"{op}: the server wants authentication (401); give --est-user")
        if resp.status != 200:
            text = data[:200].decode("utf-8", "replace").strip()
            raise EstError(f"{op}: HTTP {resp.status} {resp.reason}: {text}")
        if len(data) > MAX_ANSWER:
            raise EstError(f"{op}: answer larger than {MAX_ANSWER} bytes")
        return data

    @staticmethod
    def _certs(op: str, data: bytes) -> list[x509.Certificate]:
        try:
            der = base64.b64decode(b"".join(data.split()), validate=True)
            certs = pkcs7.load_der_pkcs7_certificates(der)
        except (ValueError, binascii.Error) as exc:
            raise EstError(f"{op}: not a base64 PKCS#7 certs-only answer: {exc}") from None
        if not certs:
            raise EstError(f"{op}: the answer holds no certificate")
        return certs

    def cacerts(self) -> list[x509.Certificate]:
        return self._certs("cacerts", self._call("cacerts", None))

    def enroll(self, csr: x509.CertificateSigningRequest, renew: bool) -> x509.Certificate:
        """The certificate issued for ``csr`` (``renew``: simplereenroll)."""
        op = "simplereenroll" if renew else "simpleenroll"
        body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
        certs = self._certs(op, self._call(op, body))
        want = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for cert in certs:
            got = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if got == want:
                return cert
        raise EstError(f"{op}: no certificate in the answer is for our key")
