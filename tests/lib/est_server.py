"""A small EST server (RFC 7030 with RFC 8951) for the enrolment tests, in Python.

No EST server is packaged in Debian (libest, the reference one, is not), so this one
stands in: HTTPS (``ssl``), ``/cacerts``, ``/simpleenroll`` (HTTP basic auth) and
``/simplereenroll`` (TLS client authentication with a certificate of its CA, or HTTP basic
auth with a request signed by the key of a certificate issued here, as for a token key
TLS cannot sign with; the request's subject identical to that certificate's, §4.2.2),
answers as base64 PKCS#7 certs-only. A CSR whose signature does not verify is refused (400).

with EstServer(ca, tls, users={"gw1": "secret"}) as est:
    est.url   # https://127.0.0.1:PORT
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ssl
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs7

from ikev2.x509gen import Issued, write

PREFIX = "/.well-known/est"


def _b64_certs(certs: Sequence[x509.Certificate]) -> bytes:
    der = pkcs7.serialize_certificates(list(certs), serialization.Encoding.DER)
    return base64.encodebytes(der)


class EstServer:
    def __init__(
        self,
        ca: Issued,
        tls: Issued,
        users: dict[str, str] | None = None,
        *,
        lifetime: dt.timedelta = dt.timedelta(days=90),
        extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> None:
        self.ca = ca
        self.users = users or {}
        self.lifetime = lifetime
        self.extensions = list(extensions)
        self.issued: list[tuple[str, x509.Certificate]] = []  # (operation, certificate)
        self.client_subjects: list[str] = []  # TLS client certificates seen
        self._dir = tempfile.TemporaryDirectory(prefix="pike-est-")
        cert, key = write(Path(self._dir.name), "tls", tls, ca)
        ca_file, _ = write(Path(self._dir.name), "ca", ca)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
        ctx.load_cert_chain(str(cert), str(key))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # basic auth or a client certificate
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EstServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._dir.cleanup()

    # -- the CA ----------------------------------------------------------------------------
    def issue(self, req: x509.CertificateSigningRequest) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        b = (
            x509.CertificateBuilder()
            .subject_name(req.subject)
            .issuer_name(self.ca.cert.subject)
            .public_key(req.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        )
        try:
            san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            b = b.add_extension(san.value, False)
        except x509.ExtensionNotFound:
            pass
        for ext, critical in self.extensions:
            b = b.add_extension(ext, critical)
        key = self.ca.key
        algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return b.sign(key, algo)

    def issued_for(self, req: x509.CertificateSigningRequest) -> x509.Certificate | None:
        """The newest certificate issued here for the request's public key."""
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        want = req.public_key().public_bytes(serialization.Encoding.DER, spki)
        for _, cert in reversed(self.issued):
            if cert.public_key().public_bytes(serialization.Encoding.DER, spki) == want:
                return cert
        return None

    # -- HTTP ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if ctype.startswith("application/pkcs7"):
                    self.send_header("Content-Transfer-Encoding", "base64")
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="pike est"')
                self.end_headers()
                self.wfile.write(body)

            def _certs(self, certs: Sequence[x509.Certificate]) -> None:
                self._send(200, _b64_certs(certs), "application/pkcs7-mime; smime-type=certs-only")

            def _client_cert(self) -> x509.Certificate | None:
                der = self.connection.getpeercert(binary_form=True)
                return x509.load_der_x509_certificate(der) if der else None

            def _basic_ok(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Basic "):
                    return False
                try:
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    return False
                return server.users.get(user) == pw

            def do_GET(self) -> None:
                if self.path == f"{PREFIX}/cacerts":
                    self._certs([server.ca.cert])
                else:
                    self._send(404, b"no such EST operation")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                op = self.path.removeprefix(PREFIX + "/")
                if op not in ("simpleenroll", "simplereenroll"):
                    self._send(404, b"no such EST operation")
                    return
                if self.headers.get("Content-Type", "").split(";")[0] != "application/pkcs10":
                    self._send(415, b"expected application/pkcs10")
                    return
                try:
                    req = x509.load_der_x509_csr(base64.b64decode(b"".join(body.split())))
                except (ValueError, binascii.Error):
                    self._send(400, b"not a base64 PKCS#10 request")
                    return
                if not req.is_signature_valid:
                    self._send(400, b"the request's signature does not verify")
                    return
                client = self._client_cert()
                if client is not None:
                    server.client_subjects.append(client.subject.rfc4514_string())
                if op == "simpleenroll" and not self._basic_ok():
                    self._send(401, b"authentication required")
                    return
                if op == "simplereenroll":
                    # the certificate renewed: the TLS client's, or (basic auth, a token
                    # key TLS cannot sign with) one issued here for the request's key, whose
                    # signature proves possession of it
                    current = client if client is not None else server.issued_for(req)
                    if current is None or (client is None and not self._basic_ok()):
                        self._send(401, b"renewal needs the current certificate (TLS)"
                                   b" or basic auth and a request by its key")  # fmt: skip
                        return
                    if req.subject != current.subject:
                        self._send(400, b"subject differs from the certificate renewed")
                        return
                cert = server.issue(req)
                server.issued.append((op, cert))
                self._certs([cert])

        return Handler
