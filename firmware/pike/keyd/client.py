"""piked's side of pike-keyd: requests out, answers matched back by id.

``KeyHelper`` is one connection to the helper (a socketpair to a child piked started, or
the helper unit's Unix socket). ``call`` blocks (piked's signing threads use it: the
signature already is an asynchronous request to the event loop); ``submit`` returns a
future (chain checks, awaited on the loop). A reader thread matches answers to requests.

Fail closed: when the helper goes (exit, crash, closed socket) every pending and later
request fails with ``HelperGone``, one error line says so, and nothing is retried or
restarted by piked (a restarted helper would present the PIN again: a TPM locks after
three wrong ones). ``RemoteSigner`` is what piked's ``CredentialStore`` holds instead of a
token or file signer: it never opens a token session and never reads a PIN source.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pike.hsm.signer import (
    KeyType,
    SignatureScheme,
    SignerError,
    TokenState,
    key_type_of,
)
from pike.keyd.protocol import Frame, Op, ProtocolError, Status, encode, read_frame
from pike.sa.cert_error import CertError

if TYPE_CHECKING:
    from datetime import datetime  # annotations only (idle RSS)

    from pike.hsm.signer import PublicKey  # annotations only: it loads the key types
    from pike.hsm.uri import Pkcs11Uri

log = logging.getLogger("pike.daemon")

CALL_TIMEOUT = 30.0  # longer than SIGN_TIMEOUT: the engine gives up first


class HelperGone(SignerError):
    """pike-keyd is not there: signatures and certificate checks fail closed."""


class HelperRefused(SignerError):
    """The helper answered with an error; ``state`` is the token's when it said so."""

    def __init__(self, message: str, state: TokenState | None) -> None:
        super().__init__(message)
        self.state = state


Opener = Callable[[], "tuple[socket.socket, subprocess.Popen[bytes] | None]"]


class KeyHelper:
    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._sock: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None  # when piked started it
        self._ids = itertools.count(1)
        # Frames go out from a writer thread: a helper busy with a flood of chain checks
        # must not make the event loop block in sendall.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending: dict[int, concurrent.futures.Future[tuple[bytes, ...]]] = {}
        self._lock = threading.Lock()
        self.gone: str | None = None  # why, once the helper is gone
        self._closing = False  # close() was called: its end is not an error

    def _open(self) -> socket.socket | None:
        """The connection, made at the first request (under ``_lock``): a config without
        certificates never starts the helper, nor does a config piked refuses."""
        if self.gone is not None:
            return None
        if self._sock is None:
            try:
                self._sock, self.process = self._opener()
            except OSError as exc:
                self.gone = f"cannot start it: {exc}"
                log.error("key helper pike-keyd: %s: signatures fail closed", self.gone)
                return None
            for name, run in (("reader", self._read), ("writer", self._write)):
                threading.Thread(target=run, name=f"pike-keyd {name}", daemon=True).start()
        return self._sock

    @classmethod
    def spawn(cls, argv: list[str] | None = None, stderr: int | None = None) -> KeyHelper:
        """pike-keyd as our child over a socketpair (``key_helper = "spawn"``), started at
        the first request; its log lines go to our stderr (the journal) unless ``stderr``
        says otherwise."""

        def start() -> tuple[socket.socket, subprocess.Popen[bytes]]:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            cmd = argv or [sys.executable, "-m", "pike.cli.keyd"]
            try:
                proc = subprocess.Popen(
                    [*cmd, "--fd", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stderr=stderr,
                    close_fds=True,
                )
            except OSError:
                ours.close()
                raise
            finally:
                theirs.close()
            log.info("started key helper pike-keyd (pid %d)", proc.pid)
            return ours, proc

        return cls(start)

    @classmethod
    def connect(cls, path: str) -> KeyHelper:
        """Connect now to a helper run by its own unit (``key_helper = "/run/..."``)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise HelperGone(f"cannot reach key helper at {path}: {exc.strerror or exc}") from None
        log.info("connected to key helper at %s", path)
        helper = cls(lambda: (sock, None))
        with helper._lock:
            helper._open()
        return helper

    # -- requests ------------------------------------------------------------------------
    def submit(self, op: Op, fields: list[bytes]) -> concurrent.futures.Future[tuple[bytes, ...]]:
        fut: concurrent.futures.Future[tuple[bytes, ...]] = concurrent.futures.Future()
        with self._lock:
            if self._open() is None:
                fut.set_exception(HelperGone(f"key helper gone ({self.gone})"))
                return fut
            rid = next(self._ids)
            try:
                frame = encode(op, rid, fields)
            except ProtocolError as exc:
                fut.set_exception(HelperRefused(str(exc), None))
                return fut
            self._pending[rid] = fut
        self._outbox.put(frame)
        return fut

    def _write(self) -> None:
        assert self._sock is not None  # started by _open
        while (frame := self._outbox.get()) is not None:
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                self._went(f"cannot write to it: {exc}")
                return

    def call(self, op: Op, fields: list[bytes], timeout: float = CALL_TIMEOUT) -> tuple[bytes, ...]:
        """Blocking: the answer's fields; raises HelperGone or HelperRefused/CertError."""
        try:
            return self.submit(op, fields).result(timeout)
        except concurrent.futures.TimeoutError:
            raise HelperGone(f"key helper did not answer within {timeout:.0f} s") from None

    def _read(self) -> None:
        assert self._sock is not None  # started by _open
        why = "closed its socket"
        try:
            while (frame := read_frame(self._sock)) is not None:
                self._answer(frame)
        except (OSError, ProtocolError) as exc:
            why = str(exc)
        self._went(why)

    def _answer(self, frame: Frame) -> None:
        with self._lock:
            fut = self._pending.pop(frame.id, None)
        if fut is None:
            return
        if frame.code == Status.OK:
            fut.set_result(frame.fields)
            return
        kind = frame.fields[0].decode("utf-8", "replace") if frame.fields else "?"
        text = frame.fields[1].decode("utf-8", "replace") if len(frame.fields) > 1 else ""
        if kind == "cert":
            fut.set_exception(CertError(text))
            return
        state = None
        if kind.startswith("token:"):
            try:
                state = TokenState(kind[6:])
            except ValueError:
                state = TokenState.FAILED
        fut.set_exception(HelperRefused(text, state))

    def _went(self, why: str) -> None:
        if self.process is not None:
            try:
                code = self.process.wait(timeout=1.0)
                why = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            if self.gone is None and not self._closing:
                log.error(
                    "key helper pike-keyd gone (%s): signatures and certificate checks "
                    "fail closed until piked restarts",
                    why,
                )
            self.gone = self.gone or why
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.set_exception(HelperGone(f"key helper gone ({why})"))

    def close(self) -> None:
        """piked stops: the helper sees the end of its stream and exits."""
        with self._lock:
            self._closing = True
            sock, self.gone = self._sock, self.gone or "closed"
        if sock is None:
            return  # never started
        self._outbox.put(None)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- what piked asks ------------------------------------------------------------------
    def signer(self, key: str) -> RemoteSigner:
        """The signer factory piked's CredentialStore uses: every key lives in the helper."""
        if key[:7].lower() == "pkcs11:":
            from pike.hsm.uri import UriError, parse

            try:
                return RemoteTokenSigner(self, key, parse(key))
            except UriError as exc:
                raise SignerError(f"bad PKCS#11 URI: {exc}") from None
        signer = RemoteSigner(self, key)
        signer.public_key()  # as a file key does: an unusable file is refused at once
        return signer

    def check_chain(
        self, certs: tuple[bytes, ...], anchors: tuple[bytes, ...], when: datetime
    ) -> concurrent.futures.Future[tuple[bytes, ...]]:
        fields = [repr(when.timestamp()).encode(), str(len(certs)).encode(), *certs, *anchors]
        return self.submit(Op.CHECK, fields)


def path_of(fields: tuple[bytes, ...]) -> tuple[int, ...]:
    """A CHECK answer: the path's indices into certificates + anchors."""
    text = fields[0].decode("ascii") if fields else ""
    return tuple(int(i) for i in text.split(",") if i)


class RemoteSigner:
    """A key pike-keyd holds (a file key here; tokens: ``RemoteTokenSigner``)."""

    in_token: ClassVar[bool] = False

    def __init__(self, helper: KeyHelper, key: str) -> None:
        self.helper = helper
        self.key = key
        self._public: PublicKey | None = None

    def _learn(self, spki: bytes) -> None:
        # cryptography's serialization (0.9 MiB with ssh, dsa, ...): with a key only
        from cryptography.hazmat.primitives import serialization

        if spki:
            key = serialization.load_der_public_key(spki)
            if key_type_of(key) is None:
                raise SignerError(f"{self.key}: unsupported key type")
            self._public = key  # type: ignore[assignment]

    def public_key(self) -> PublicKey:
        if self._public is None:
            self._learn(self.helper.call(Op.PUBLIC, [self.key.encode()])[0])
        assert self._public is not None
        return self._public

    @property
    def key_type(self) -> KeyType:
        kind = key_type_of(self.public_key())
        assert kind is not None  # _learn refused others
        return kind

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        from cryptography.hazmat.primitives import serialization  # as in _learn

        spki = self.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self.helper.call(Op.SIGN, [self.key.encode(), spki, scheme.name.encode(), data])[0]


class RemoteTokenSigner(RemoteSigner):
    """A token key in pike-keyd: its state as the helper last reported it."""

    in_token: ClassVar[bool] = True

    def __init__(self, helper: KeyHelper, key: str, uri: Pkcs11Uri) -> None:
        super().__init__(helper, key)
        self.uri = uri
        self.probed = False
        self._state = TokenState.UNKNOWN

    @property
    def state(self) -> TokenState:
        return TokenState.FAILED if self.helper.gone is not None else self._state

    @property
    def public_known(self) -> bool:
        return self._public is not None

    def _look(self, op: Op) -> TokenState:
        try:
            state, spki = self.helper.call(op, [self.key.encode()])
            self._state = TokenState(state.decode("ascii"))
            self._learn(spki)
        except HelperRefused as exc:
            self._state = exc.state or TokenState.FAILED
        except HelperGone:
            self._state = TokenState.FAILED
        self.probed = True
        return self._state

    def probe(self) -> TokenState:
        return self._look(Op.PROBE)

    def reprobe(self) -> TokenState:
        return self._look(Op.REPROBE)

    def public_key(self) -> PublicKey:
        if self.helper.gone is not None:
            raise HelperGone(f"key helper gone ({self.helper.gone})")
        if self._public is None and self._state is TokenState.UNKNOWN:
            self.probe()
        if self._public is None:
            raise HelperRefused(f"token key {self.key} {self._state.value}", self._state)
        return self._public

    def sign(self, data: bytes, scheme: SignatureScheme) -> bytes:
        try:
            signature = super().sign(data, scheme)
        except HelperRefused as exc:
            if exc.state is not None:
                self._state = exc.state  # as the helper's token says
            raise
        self._state = TokenState.READY  # it signed: the token is back (if it was away)
        return signature
