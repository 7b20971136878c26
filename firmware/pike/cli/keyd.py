"""``pike-keyd``: the key and certificate helper (privilege separation, as OpenBSD iked).

piked faces the network and holds CAP_NET_ADMIN; this process holds the token sessions
(and reads the PIN source) and checks peers' certificate chains, with no capability at
all. Two ways to run it:

- ``--fd N``: piked started it (``[daemon] key_helper = "spawn"``) and passed one end of a
  socketpair; it serves that connection and exits when piked closes it.
- ``--socket PATH`` (or systemd socket activation: ``LISTEN_FDS=1``, fd 3): its own unit
  with its own user; piked connects (``key_helper = "/run/pike-keyd/keyd.sock"``). With
  ``--peer-user NAME`` only that user (and root) may connect (``SO_PEERCRED``).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import pwd
import socket
import struct
import sys
import threading

from pike.keyd.server import Connection, KeyService

log = logging.getLogger("pike.keyd")

_PR_SET_DUMPABLE = 4
_LAST_CAP = 40  # CAP_CHECKPOINT_RESTORE; higher numbers are ignored by the kernel
_LISTEN_FDS_START = 3


def contain() -> None:
    """No capability in any set (piked's ambient CAP_NET_ADMIN survives its execve), and
    not dumpable: a process of the same user (piked, when it started us) can neither
    ptrace us nor read our memory through /proc."""
    from pike.daemon import privileges

    try:
        privileges.drop(tuple(range(_LAST_CAP + 1)))
    except OSError as exc:
        log.warning("could not drop capabilities: %s", exc)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("could not make the key helper undumpable")


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _listener(path: str | None, open_to_all: bool) -> socket.socket:
    """The listening socket: systemd's, or bound at ``path``: 0660 (owner and group), or
    0666 when ``--peer-user`` decides who may ask (by SO_PEERCRED, whatever the mode)."""
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return socket.socket(fileno=_LISTEN_FDS_START)
    if path is None:
        raise SystemExit("pike-keyd: give --fd, --socket or run socket-activated")
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o111 if open_to_all else 0o117)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(4)
    return sock


def serve_socket(listener: socket.socket, service: KeyService, peer_uid: int | None) -> None:
    while True:
        conn, _ = listener.accept()
        uid = _peer_uid(conn)
        if peer_uid is not None and uid not in (0, peer_uid):
            log.error("refused a connection from uid %d (only %d may ask)", uid, peer_uid)
            conn.close()
            continue
        threading.Thread(
            target=Connection(conn, service).serve, name="keyd conn", daemon=True
        ).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pike-keyd", description="pike key and certificate helper")
    p.add_argument("--fd", type=int, help="serve this connected socket (started by piked)")
    p.add_argument("--socket", help="listen on this Unix socket path")
    p.add_argument("--peer-user", help="only this user (and root) may connect")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="pike-keyd[%(process)d]: %(message)s"
    )
    contain()
    service = KeyService()
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        log.info("serving piked (pid %d) as uid %d", os.getppid(), os.getuid())
        Connection(sock, service).serve()
        # piked is gone: leave now, even with a token call that never returns (the
        # interpreter's exit would wait for that worker thread)
        logging.shutdown()
        os._exit(0)
    peer = pwd.getpwnam(args.peer_user).pw_uid if args.peer_user else None
    listener = _listener(args.socket, peer is not None)
    log.info("listening for piked as uid %d", os.getuid())
    try:
        serve_socket(listener, service, peer)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
