"""pike-keyd's side: answer piked's requests with the tokens' keys and the chain checks.

The helper holds the only ``CredentialStore`` that makes signers (so the only PKCS#11 and
TPM sessions, and the only reader of PIN sources) and checks peers' certificate chains.
Each connection has a reader; each request runs in the worker of its queue (one per
PKCS#11 module, one for file keys, one for chain checks), so a hung token delays neither
the other tokens nor the chain checks; answers go back in completion order under a lock.
A malformed request gets an ERROR answer; broken framing ends the connection.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import socket
import threading
from datetime import UTC, datetime

from pike.hsm.signer import SignatureScheme, SignerError, token_signer
from pike.keyd.protocol import Frame, Op, ProtocolError, Status, encode, read_frame
from pike.sa.certs import CertError, check_chain
from pike.sa.credentials import CredentialError, CredentialStore

log = logging.getLogger("pike.keyd")

Answer = tuple[Status, list[bytes]]


def _text(field: bytes) -> str:
    return field.decode("utf-8")


def _spki(store: CredentialStore, key: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return (
        store.signer(key)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


class KeyService:
    """The operations, without sockets (tests call ``answer`` directly)."""

    def __init__(self, store: CredentialStore | None = None) -> None:
        self.store = store or CredentialStore()

    def answer(self, req: Frame) -> Answer:
        try:
            return Status.OK, self._do(req)
        except SignerError as exc:
            state = getattr(getattr(exc, "state", None), "value", None)
            kind = f"token:{state}" if isinstance(state, str) else "signer"
            return Status.ERROR, [kind.encode(), str(exc).encode()]
        except CredentialError as exc:
            return Status.ERROR, [b"signer", str(exc).encode()]
        except CertError as exc:
            return Status.ERROR, [b"cert", str(exc).encode()]
        except (ValueError, IndexError, UnicodeDecodeError, KeyError) as exc:
            return Status.ERROR, [b"request", f"malformed request: {type(exc).__name__}".encode()]

    def _do(self, req: Frame) -> list[bytes]:
        f = req.fields
        op = Op(req.code)
        if op is Op.SIGN:
            key, spki, scheme, data = _text(f[0]), f[1], SignatureScheme[_text(f[2])], f[3]
            return [self.store.sign(key, spki, data, scheme)]
        if op is Op.PUBLIC:
            return [_spki(self.store, _text(f[0]))]
        if op in (Op.PROBE, Op.REPROBE):
            return self._probe(_text(f[0]), again=op is Op.REPROBE)
        when = datetime.fromtimestamp(float(_text(f[0])), UTC)
        count = int(_text(f[1]))
        certs, anchors = f[2 : 2 + count], f[2 + count :]
        if len(certs) != count:
            raise ValueError("fewer certificates than announced")
        path = check_chain(certs, anchors, when)
        return [",".join(map(str, path)).encode()]

    def _probe(self, key: str, again: bool) -> list[bytes]:
        signer = self.store.signer(key)
        token = token_signer(signer)
        if token is None:  # a file key: there, or a CredentialError/SignerError
            return [b"ready", _spki(self.store, key)]
        state = token.reprobe() if again else token.probe()
        spki = _spki(self.store, key) if token.public_known else b""
        return [state.value.encode(), spki]


def _queue(req: Frame) -> str:
    """Which worker runs a request: chain checks apart, keys by PKCS#11 module."""
    if req.code == Op.CHECK or not req.fields:
        return "check"
    key = req.fields[0].decode("utf-8", "replace")
    if key[:7].lower() == "pkcs11:":
        from pike.hsm.uri import UriError, parse

        try:
            return parse(key).module()
        except UriError:
            return "?"
    return "file"


class Connection:
    """One client (piked): its reader and the workers its requests run in."""

    def __init__(self, sock: socket.socket, service: KeyService) -> None:
        self.sock = sock
        self.service = service
        self._send = threading.Lock()
        self._workers: dict[str, concurrent.futures.ThreadPoolExecutor] = {}

    def serve(self) -> None:
        """Until piked closes the connection (or breaks the framing)."""
        try:
            while (req := read_frame(self.sock)) is not None:
                name = _queue(req)
                worker = self._workers.get(name)
                if worker is None:
                    worker = self._workers[name] = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix=f"keyd {name}"
                    )
                worker.submit(self._run, req)
        except (ProtocolError, OSError) as exc:
            log.error("closing the connection from piked: %s", exc)
        finally:
            for worker in self._workers.values():
                worker.shutdown(wait=False, cancel_futures=True)
            self.sock.close()

    def _run(self, req: Frame) -> None:
        try:
            status, fields = self.service.answer(req)
        except Exception as exc:  # a backend bug: answered, and the trace logged
            log.exception("request %d failed", req.id)
            status, fields = Status.ERROR, [b"signer", type(exc).__name__.encode()]
        data = encode(status, req.id, fields)
        # piked went away (OSError): the reader ends the connection
        with self._send, contextlib.suppress(OSError):
            self.sock.sendall(data)
