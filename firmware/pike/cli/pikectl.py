"""``pikectl``: talk to piked over its control socket.

    pikectl status [--json]
    pikectl list-sas [--json] [CONN]
    pikectl initiate [--timeout S] [--peer ADDR] CONN[.CHILD]...
    pikectl terminate [--force] CONN[.CHILD]
    pikectl rekey CONN[.CHILD]...
    pikectl reload
    pikectl list-conns [--json]
    pikectl certs [--json]                 (certificates, CRLs, revocation status)
    pikectl check-config [FILE]            (default: --config)
    pikectl keys generate|csr|self-signed|import-cert|list|init-token ...  (pike.cli.keys)
    pikectl board [--json] [--local]
    pikectl firmware status [--json]|install BUNDLE|mark-good   (pike.cli.firmware, RAUC)
    pikectl log [--level LEVEL] [--json]   (follows piked's log until Ctrl-C)
    pikectl import-swanctl SWANCTL_CONF [SECRETS] [-o pike.toml] [--swanctl-dir DIR]
    pikectl --version

``--socket PATH`` and ``--config FILE`` go before or after the command. Without
``--socket`` the socket is ``[daemon] control_socket`` of the config (default
/etc/pike/pike.toml), else /run/pike/pike.sock.

Exit status: 0 ok, 1 the daemon answered with an error (or the config is invalid),
2 usage error or the daemon cannot be reached.

Each call pays for what it imports, and an operator (or a monitoring script) runs many:
the module imports only argparse, json and the control client at the top; each command
imports what it needs (cryptography, the config loader, board detection) itself.
"""

from __future__ import annotations

import argparse
import json
import sys

from pike.cli import firmware, keys
from pike.cli.terminal import help_width
from pike.daemon.control_client import follow, request
from pike.policy.paths import DEFAULT_CONFIG, DEFAULT_SOCKET

# typing is not imported at run time: pikectl's calls should not pay 2 ms for it (issue #12)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pike.keyd.client import KeyHelper
    from pike.policy.config import Config
    from pike.sa.credentials import CredentialStore

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
_JSON = "print JSON instead of text"


class _Parser(argparse.ArgumentParser):
    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse's own, given the terminal's width: it would import shutil (with bz2,
        # lzma) to find it for every parser built, i.e. on every pikectl call
        return self.formatter_class(prog=self.prog, width=help_width())  # type: ignore[call-arg]

    def error(self, message: str) -> Any:  # argparse exits 2 too; keep its wording
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _where(p: argparse.ArgumentParser, default: Any) -> None:
    """``--socket``/``--config``: on the top parser (``default`` None) and again on each
    command (SUPPRESS: not given there leaves the top's value alone)."""
    p.add_argument(
        "--socket",
        default=default,
        help=f"control socket (default: the config's [daemon] control_socket, {DEFAULT_SOCKET})",
    )
    p.add_argument("--config", default=default, help=f"config file (default {DEFAULT_CONFIG})")


EPILOG = f"""\
--socket and --config go before or after the command. Without --socket the socket is the
config's [daemon] control_socket (default config {DEFAULT_CONFIG}), else {DEFAULT_SOCKET}.

Exit status: 0 ok, 1 the daemon answered with an error (or the config is invalid, or the
initiate failed), 2 usage error or the daemon cannot be reached.

Files: {DEFAULT_CONFIG} (pike.toml(5)), {DEFAULT_SOCKET}."""


def parser() -> argparse.ArgumentParser:
    """pikectl's command line: ``--help`` and pikectl(8) both come from here."""
    p = _Parser(
        prog="pikectl",
        description="control the pike IKE daemon",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _where(p, None)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser, metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        _where(c, argparse.SUPPRESS)
        return c

    st = cmd("status", "daemon status")
    st.add_argument("--json", action="store_true", help=_JSON)
    ls = cmd("list-sas", "IKE and CHILD SAs")
    ls.add_argument("--json", action="store_true", help=_JSON)
    ls.add_argument("conn", nargs="?", help="only this connection")
    ini = cmd("initiate", "bring connections (or one child) up, and wait for the outcome")
    ini.add_argument("targets", nargs="+", metavar="CONN[.CHILD]", help="what to bring up")
    ini.add_argument(
        "--peer",
        metavar="ADDR",
        help="the hub to go to: one of the connection's remote_addrs (redundant hubs)",
    )
    ini.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for each (default 30; 0: do not wait, only ask)",
    )
    term = cmd("terminate", "delete a connection's IKE SAs, or CONN.CHILD's CHILD_SA")
    term.add_argument("conn", metavar="CONN[.CHILD]", help="a connection, or one child of it")
    term.add_argument(
        "--force", action="store_true", help="remove the IKE SAs at once, without waiting"
    )
    rk = cmd("rekey", "rekey a connection's IKE SA (or CONN.CHILD's CHILD_SA)")
    rk.add_argument("targets", nargs="+", metavar="CONN[.CHILD]", help="what to rekey")
    cmd("reload", "re-read the config file; unchanged tunnels stay up")
    lc = cmd("list-conns", "configured connections")
    lc.add_argument("--json", action="store_true", help=_JSON)
    ce = cmd("certs", "certificates in use, CRLs and the revocation status of peers")
    ce.add_argument("--json", action="store_true", help=_JSON)
    chk = cmd("check-config", "validate a config file (no daemon needed)")
    chk.add_argument("file", nargs="?", help="default: --config, else " + DEFAULT_CONFIG)
    keys.add_parser(sub)
    firmware.add_parser(sub)
    lg = cmd("log", "follow piked's log live (as swanctl --log)")
    lg.add_argument(
        "--level",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="lines at this level and above (piked's own log_level still applies)",
    )
    lg.add_argument("--json", action="store_true", help="one JSON object a line")
    imp = cmd(
        "import-swanctl",
        "write a pike.toml from swanctl.conf, listing (FILE:LINE) what cannot be carried over",
    )
    imp.add_argument("swanctl_conf", metavar="SWANCTL_CONF", help="swanctl.conf to read")
    imp.add_argument(
        "secrets", nargs="?", metavar="SECRETS", help="a further file with a secrets section"
    )
    imp.add_argument(
        "-o", "--output", help="write pike.toml here (mode 0600) and check it; default stdout"
    )
    imp.add_argument(
        "--swanctl-dir",
        help="where x509/, x509ca/ and private/ are (default: SWANCTL_CONF's directory)",
    )
    bd = cmd("board", "detected board and the defaults chosen for it")
    bd.add_argument("--json", action="store_true", help=_JSON)
    bd.add_argument("--local", action="store_true", help="detect here, without the daemon")
    return p


def _socket(args: argparse.Namespace) -> str:
    """``--socket``, else the config's ``[daemon] control_socket``, else the default.

    Only that one key is read (tomllib, not the config loader): a call must stay cheap,
    and a config that fails its checks still names the socket of the running daemon."""
    if args.socket:
        return str(args.socket)
    path = args.config or DEFAULT_CONFIG
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if args.config:
            raise _NoSocket(f"--config {path}: no such file") from None
        return DEFAULT_SOCKET  # no config here: piked's own default
    except OSError as exc:  # e.g. not in the group that may read it
        raise _NoSocket(f"{path}: {exc.strerror or exc} (give --socket)") from None
    import tomllib

    try:
        sock = tomllib.loads(raw.decode("utf-8", "replace")).get("daemon", {})
        sock = sock.get("control_socket", DEFAULT_SOCKET) if isinstance(sock, dict) else None
    except tomllib.TOMLDecodeError as exc:
        raise _NoSocket(f"{path}: {exc} (give --socket)") from None
    if not isinstance(sock, str) or not sock:
        raise _NoSocket(f"{path}: [daemon] control_socket is not a path (give --socket)")
    return sock


class _NoSocket(Exception):
    """No socket to talk to: the config that should name it cannot be read."""


def _call(sock: str, cmd: str, args: dict[str, Any]) -> tuple[int, Any]:
    try:
        resp = request(sock, cmd, args)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"pikectl: cannot reach piked at {sock}: {reason}", file=sys.stderr)
        return EXIT_USAGE, None
    except ValueError as exc:
        print(f"pikectl: bad answer from piked at {sock}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    if not resp.get("ok"):
        print(f"pikectl: {cmd}: {resp.get('error', 'failed')}", file=sys.stderr)
        return EXIT_ERROR, None
    return EXIT_OK, resp.get("result")


def _check_config(path: str) -> int:
    from pike.daemon.configfile import ConfigRefused, load_checked

    helper: KeyHelper | None = None

    def store_for(cfg: Config) -> CredentialStore | None:
        """The keys are the helper's: looked at there, as piked will."""
        nonlocal helper
        helper = _own_unit_helper(cfg.daemon.key_helper)
        if helper is None:
            return None
        from pike.sa.credentials import CredentialStore

        return CredentialStore(helper.signer)

    try:
        cfg = load_checked(path, probe=True, store_for=store_for)  # as piked, tokens too
    except ConfigRefused as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    finally:
        if helper is not None:
            helper.close()
    from pike.daemon.secret_files import exposed

    for warning in exposed(cfg):  # valid, but a secret others can read: said, not refused
        print(f"warning: {warning}", file=sys.stderr)
    names = ", ".join(cfg.connections) or "none"
    print(f"{path}: OK, {len(cfg.connections)} connection(s): {names}")
    return EXIT_OK


def _own_unit_helper(setting: str) -> KeyHelper | None:
    """The pike-keyd of its own unit (``key_helper`` a socket path), where the keys are
    readable; not reachable: the keys are looked at here (said on stderr)."""
    if not setting.startswith("/"):
        return None
    from pike.keyd.client import HelperGone, KeyHelper

    try:
        return KeyHelper.connect(setting)
    except HelperGone as exc:
        print(f"warning: {exc}: keys looked at by pikectl instead", file=sys.stderr)
        return None


def _import_swanctl(args: argparse.Namespace) -> int:
    """Translate; the notes go to stderr, pike.toml to stdout or ``-o`` (then checked as
    ``check-config`` would: certificate and key files too)."""
    import os

    from pike.daemon.configfile import ConfigRefused, board_defaults, load_checked
    from pike.swanctl.importer import import_swanctl
    from pike.swanctl.settings import SettingsError

    try:
        got = import_swanctl(args.swanctl_conf, args.secrets, args.swanctl_dir, board_defaults()[0])
    except SettingsError as exc:
        print(f"pikectl: import-swanctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for note in got.notes:
        print(note, file=sys.stderr)
    names = ", ".join(got.connections) or "none"
    print(
        f"imported {len(got.connections)} connection(s): {names};"
        f" {len(got.notes)} item(s) not carried over (listed above)",
        file=sys.stderr,
    )
    if not args.output:
        sys.stdout.write(got.text)
        return EXIT_OK
    try:  # it may hold PSKs: never readable by others, not even for a moment
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(got.text)
    except OSError as exc:
        print(f"pikectl: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        load_checked(args.output, probe=False)
    except ConfigRefused as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.output}: written, check-config OK", file=sys.stderr)
    return EXIT_OK


def _target_request(target: str, peer: str | None = None) -> dict[str, Any]:
    """The request for one CONN[.CHILD] target: ``conn``, and ``child`` (``peer``) when
    given."""
    conn, _, child = target.partition(".")
    req: dict[str, Any] = {"conn": conn}
    if child:
        req["child"] = child
    if peer:
        req["peer"] = peer
    return req


def _per_target(sock: str, cmd: str, targets: list[str], peer: str | None = None) -> int:
    """``initiate``/``rekey`` each CONN[.CHILD]; the worst exit status wins, and an
    unreachable daemon stops at once."""
    verb = {"initiate": "initiating", "rekey": "rekeying"}[cmd]
    worst = EXIT_OK
    for target in targets:
        req = _target_request(target, peer)
        code, _result = _call(sock, cmd, req)
        if code == EXIT_USAGE:
            return code
        if code == EXIT_OK:
            print(f"{verb} {target}")
        worst = max(worst, code)
    return worst


def _initiate(sock: str, targets: list[str], timeout: float, peer: str | None = None) -> int:
    """``initiate`` each CONN[.CHILD] and wait for it (as ``swanctl --initiate``): the log
    lines about it as they come, then 0 when it is up, 1 when it failed or did not come
    up within ``timeout`` seconds (piked may keep trying: keyingtries)."""
    import time

    worst = EXIT_OK
    for target in targets:
        req = _target_request(target, peer)
        code = EXIT_ERROR
        try:
            for event in follow(sock, "initiate-wait", req, time.monotonic() + timeout):
                if event.get("ok") is False and "done" not in event:
                    print(f"pikectl: initiate: {event.get('error', 'failed')}", file=sys.stderr)
                    break
                if "message" in event:
                    print(event["message"], flush=True)
                if event.get("done"):
                    if event.get("ok"):
                        print(f"initiate {target}: {event.get('reason', 'established')}")
                        code = EXIT_OK
                    else:
                        why = event.get("reason", "failed")
                        print(f"pikectl: initiate {target} failed: {why}", file=sys.stderr)
                    break
        except TimeoutError:
            print(f"pikectl: initiate {target}: not up within {timeout:g}s", file=sys.stderr)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            print(f"pikectl: cannot reach piked at {sock}: {reason}", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as exc:
            print(f"pikectl: bad answer from piked at {sock}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        worst = max(worst, code)
    return worst


def _log(sock: str, level: str, as_json: bool) -> int:
    """Print piked's log lines as they come; 0 when piked stops or on Ctrl-C."""
    import time

    try:
        for event in follow(sock, "log", {"level": level}):
            if event.get("ok") is False:
                print(f"pikectl: log: {event.get('error', 'failed')}", file=sys.stderr)
                return EXIT_ERROR
            if as_json:
                print(json.dumps(event), flush=True)
            elif "dropped" in event:
                print(f"... {event['dropped']} lines dropped (reading too slowly)", flush=True)
            else:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time"]))
                print(f"{when} {event['level']:<7} {event['message']}", flush=True)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        print(f"pikectl: cannot reach piked at {sock}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"pikectl: bad answer from piked at {sock}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _ops(args: argparse.Namespace) -> int:
    from pike.cli.conn_text import format_list_conns, format_reload

    code, result = _call(_socket(args), args.cmd, {})
    if code == EXIT_OK:
        if getattr(args, "json", False):
            print(json.dumps(result, indent=2))
        elif args.cmd == "reload":
            print(format_reload(result))
        elif result:
            print(format_list_conns(result))
    return code


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.version:
        from pike.version import version

        print(f"pikectl {version()}")
        return EXIT_OK
    if args.cmd is None:
        cli.error("a command is required")
    try:
        return _run(args)
    except _NoSocket as exc:
        print(f"pikectl: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "check-config":
        return _check_config(args.file or args.config or DEFAULT_CONFIG)
    if args.cmd == "keys":
        return keys.run(args)
    if args.cmd == "firmware":
        return firmware.run(args)
    if args.cmd == "import-swanctl":
        return _import_swanctl(args)
    if args.cmd == "board":
        from pike.board.detect import describe, format_board

        if args.local:
            code, result = EXIT_OK, describe()
        else:
            code, result = _call(_socket(args), "board", {})
        if code == EXIT_OK:
            print(json.dumps(result, indent=2) if args.json else format_board(result))
        return code
    if args.cmd == "status":
        from pike.cli.sa_text import format_status

        code, result = _call(_socket(args), "status", {})
        if code == EXIT_OK:
            print(json.dumps(result, indent=2) if args.json else format_status(result))
        return code
    if args.cmd == "list-sas":
        from pike.cli.sa_text import format_list_sas

        req = {"conn": args.conn} if args.conn else {}
        code, result = _call(_socket(args), "list-sas", req)
        if code == EXIT_OK:
            if args.json:
                print(json.dumps(result, indent=2))
            elif result:
                print(format_list_sas(result))
        return code
    if args.cmd in ("reload", "list-conns"):
        return _ops(args)
    if args.cmd == "certs":
        from pike.cli.cert_text import format_certs

        code, result = _call(_socket(args), "certs", {})
        if code == EXIT_OK:
            print(json.dumps(result, indent=2) if args.json else format_certs(result))
        return code
    if args.cmd == "log":
        return _log(_socket(args), args.level, args.json)
    if args.cmd == "initiate" and args.timeout > 0:
        return _initiate(_socket(args), args.targets, args.timeout, args.peer)
    if args.cmd in ("initiate", "rekey"):
        return _per_target(_socket(args), args.cmd, args.targets, getattr(args, "peer", None))
    conn, _, child = args.conn.partition(".")  # names have no dots: CONN.CHILD
    term: dict[str, Any] = {"conn": conn}
    if child:
        term["child"] = child
    if args.force:
        term["force"] = True
    code, _result = _call(_socket(args), "terminate", term)
    if code == EXIT_OK:
        print(f"terminating {args.conn}")
    return code


if __name__ == "__main__":
    sys.exit(main())
