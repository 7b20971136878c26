"""``piked --config PATH [--log-level LEVEL]``: the IKE daemon, in the foreground.

A bad config prints its ``FILE:LINE: KEY: ...`` line to stderr and exits 2 before
anything (socket, kernel state) is touched.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING

from pike.cli.logsetup import LEVELS, setup_logging
from pike.daemon.configfile import ConfigRefused, board_defaults, load_checked
from pike.daemon.runtime import Daemon, Engine, Random
from pike.kernel.interface import KernelError, KernelIpsec
from pike.policy.config import Config
from pike.policy.ipsec import KernelCaps
from pike.policy.paths import DEFAULT_CONFIG
from pike.sa.credentials import CredentialStore
from pike.sa.ports import SpiSource

if TYPE_CHECKING:
    import argparse

    from pike.keyd.client import KeyHelper

log = logging.getLogger("pike.piked")


def _engine(
    config: Config,
    caps: KernelCaps,
    spis: SpiSource,
    random: Random = os.urandom,
    credentials: CredentialStore | None = None,
) -> Engine:
    from pike.daemon.engines import Engines

    return Engines(config, random=random, kernel_caps=caps, spis=spis, credentials=credentials)


def _kernel() -> KernelIpsec:
    from pike.kernel.xfrm import XfrmKernel

    try:
        return XfrmKernel()
    except KernelError as exc:
        from pike.daemon.nokernel import NoKernel

        log.error("cannot use XFRM (%s): CHILD_SAs cannot be installed", exc)
        return NoKernel(str(exc))


EPILOG = f"""\
Signals: SIGHUP re-reads the config as pikectl reload does (on an error nothing changes);
SIGTERM and SIGINT delete the IKE SAs with their peers and stop.

Exit status: 0 after a clean stop, 2 when the config is refused (its FILE:LINE: KEY:
line on stderr, before anything is touched), 1 when it cannot start (the IKE ports or
the control socket cannot be opened).

Files: {DEFAULT_CONFIG} (pike.toml(5)); the control socket [daemon] control_socket
(default /run/pike/pike.sock); logs go to stderr (the journal under systemd).

Processes: private keys, token sessions and peers' certificate checks are in pike-keyd,
a child piked starts when the first key or certificate is loaded (no capabilities, not
dumpable; [daemon] key_helper). If it ends, certificate authentication fails closed
until piked restarts."""


def parser() -> argparse.ArgumentParser:
    """piked's command line: ``--help``, its errors and piked(8) all come from here."""
    import argparse

    from pike.cli.terminal import help_width

    class Formatter(argparse.RawDescriptionHelpFormatter):
        """argparse's, with the terminal's width found without ``shutil`` (0.5 MiB)."""

        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=help_width())

    p = argparse.ArgumentParser(
        prog="piked",
        description="pike IKE daemon (IKEv2 and IKEv1), in the foreground: negotiates the"
        " connections of the config with their peers and installs their IPsec SAs in the"
        " kernel (XFRM); pikectl talks to it over its control socket.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})"
    )
    p.add_argument(
        "--log-level", choices=LEVELS, metavar="LEVEL", help="overrides [daemon] log_level"
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


class Args:
    """piked's options, as ``parser()`` defines them."""

    __slots__ = ("config", "log_level", "version")

    def __init__(self) -> None:
        self.config = DEFAULT_CONFIG
        self.log_level: str | None = None
        self.version = False


def parse_args(argv: list[str] | None) -> Args:
    """The command lines a unit file or a shell writes (``--config PATH``,
    ``--config=PATH``, ``--log-level LEVEL``, ``--version``) are read here; anything else
    (``--help``, an abbreviation, an unknown option, a missing or bad value) goes to
    ``parser()``, so help and errors are argparse's. argparse with ``gettext`` is 0.4 MiB
    of the daemon's idle RSS (docs/performance.md)."""
    words = sys.argv[1:] if argv is None else argv
    args = Args()
    i = 0
    while i < len(words):
        name, eq, value = words[i].partition("=")
        if name == "--version" and not eq:
            args.version = True
            i += 1
            continue
        if name not in ("--config", "--log-level"):
            return _argparse(words)
        if not eq:  # the value is the next word, as long as it is not an option
            if i + 1 == len(words) or words[i + 1].startswith("-"):
                return _argparse(words)
            value = words[i + 1]
            i += 1
        i += 1
        if name == "--config":
            args.config = value
        elif value in LEVELS:
            args.log_level = value
        else:
            return _argparse(words)
    return args


def _argparse(words: list[str]) -> Args:
    """What ``parse_args`` does not read: argparse prints the help or the error and
    exits, or reads what it accepts (an abbreviation: ``--conf=PATH``)."""
    ns = parser().parse_args(words)
    args = Args()
    args.config, args.log_level, args.version = ns.config, ns.log_level, ns.version
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        from pike.version import version

        print(f"piked {version()}")
        return 0
    # Unreadable certificates or keys stop us here rather than at the first IKE_AUTH.
    # Tokens are looked at later, in the signing threads: a slow one must not hold READY.
    # With pike-keyd the keys (and token sessions, PINs) are in that process only.
    # The daemon's credentials, behind pike-keyd as ``[daemon] key_helper`` says: made
    # once the config is valid (from the config cache: no second parse to read that key).
    helper: KeyHelper | None = None
    credentials = CredentialStore()

    def store_for(config: Config) -> CredentialStore:
        nonlocal helper, credentials
        helper = _key_helper(config.daemon.key_helper)
        if helper is not None:
            credentials = CredentialStore(helper.signer)
        return credentials

    try:
        config = load_checked(args.config, probe=False, store_for=store_for)
    except ConfigRefused as exc:
        print(exc, file=sys.stderr)
        if helper is not None:
            helper.close()
        return 2
    try:
        return _run(args, config, credentials, helper)
    finally:
        if helper is not None:
            helper.close()


def _key_helper(setting: str) -> KeyHelper | None:
    """pike-keyd as ``[daemon] key_helper`` says: started, reached, or none ("off")."""
    from pike.keyd.client import HelperGone, KeyHelper

    if setting == "off":
        return None
    if setting == "spawn":
        return KeyHelper.spawn()  # started at the first key or certificate loaded
    try:
        return KeyHelper.connect(setting)
    except HelperGone as exc:
        raise ConfigRefused([str(exc)]) from None


def _run(
    args: Args,
    config: Config,
    credentials: CredentialStore,
    helper: KeyHelper | None,
) -> int:
    setup_logging(args.log_level or config.daemon.log_level)
    log.info("%s", board_defaults()[1])
    from pike.daemon import privileges
    from pike.daemon.secret_files import exposed

    for warning in exposed(config):
        log.warning("%s", warning)
    privileges.ENABLED = True  # this process is piked: drop what binding needed, once bound
    # A handshake allocates a few thousand objects and leaves no reference cycles; with
    # the default threshold (700) the collector ran several times per handshake and its
    # scans of the SAs held cost 20-30 % of a handshake's CPU at 1000 SAs. Cycles (a
    # deleted SA and its tasks) are still collected, later.
    gc.set_threshold(10_000)
    daemon = Daemon(
        config,
        _kernel(),
        _engine,
        credentials=credentials,
        key_helper=helper,
        on_ready=_freeze_startup,
    )
    try:
        rc = asyncio.run(daemon.run())
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
    if daemon.stuck:
        # A thread is inside a token call that does not return: the interpreter's own
        # teardown (the PKCS#11 library's C_Finalize) could wait for it. Leave now.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def _freeze_startup() -> None:
    """What piked holds once it is ready (modules, the config, the loop and its sockets;
    ~32 000 objects with one connection) lives as long as piked: out of every later
    collection's scan (the middle and full ones walked it each time). Reference counting
    still frees these objects; only a cycle among them would stay. Nothing is collected
    first: at that point a full collection finds a few dozen objects (docs/performance.md)."""
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
