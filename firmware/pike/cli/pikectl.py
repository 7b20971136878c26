"""``pikectl``: talk to piked over its control socket.

    pikectl [--socket PATH] status [--json]
    pikectl [--socket PATH] list-sas [--json] [CONN]
    pikectl [--socket PATH] initiate CONN[.CHILD]...
    pikectl [--socket PATH] terminate CONN
    pikectl [--socket PATH] rekey CONN[.CHILD]...
    pikectl [--socket PATH] reload
    pikectl [--socket PATH] list-conns [--json]
    pikectl check-config FILE
    pikectl keys generate|csr|self-signed|import-cert|list|init-token ...  (pike.cli.keys)
    pikectl [--socket PATH] board [--json] [--local]

Exit status: 0 ok, 1 the daemon answered with an error (or the config is invalid),
2 usage error or the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pike.cli import keys
from pike.cli.sa_text import format_list_sas, format_status
from pike.daemon.control import request

DEFAULT_SOCKET = "/run/pike/pike.sock"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 too; keep its wording
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pikectl", description="control the pike IKE daemon")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"default {DEFAULT_SOCKET}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    st = sub.add_parser("status", help="daemon status")
    st.add_argument("--json", action="store_true")
    ls = sub.add_parser("list-sas", help="IKE and CHILD SAs")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("conn", nargs="?", help="only this connection")
    ini = sub.add_parser("initiate", help="bring connections (or one child) up")
    ini.add_argument("targets", nargs="+", metavar="CONN[.CHILD]")
    term = sub.add_parser("terminate", help="delete a connection's IKE SAs")
    term.add_argument("conn")
    rk = sub.add_parser("rekey", help="rekey a connection's IKE SA (or CONN.CHILD's CHILD_SA)")
    rk.add_argument("targets", nargs="+", metavar="CONN[.CHILD]")
    sub.add_parser("reload", help="re-read the config file; unchanged tunnels stay up")
    lc = sub.add_parser("list-conns", help="configured connections")
    lc.add_argument("--json", action="store_true")
    chk = sub.add_parser("check-config", help="validate a config file (no daemon needed)")
    chk.add_argument("file")
    keys.add_parser(sub)
    bd = sub.add_parser("board", help="detected board and the defaults chosen for it")
    bd.add_argument("--json", action="store_true")
    bd.add_argument("--local", action="store_true", help="detect here, without the daemon")
    return p


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

    try:
        cfg = load_checked(path, probe=True)  # as piked loads it, tokens looked at too
    except ConfigRefused as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    names = ", ".join(cfg.connections) or "none"
    print(f"{path}: OK, {len(cfg.connections)} connection(s): {names}")
    return EXIT_OK


def _per_target(sock: str, cmd: str, targets: list[str]) -> int:
    """``initiate``/``rekey`` each CONN[.CHILD]; the worst exit status wins, and an
    unreachable daemon stops at once."""
    verb = {"initiate": "initiating", "rekey": "rekeying"}[cmd]
    worst = EXIT_OK
    for target in targets:
        conn, _, child = target.partition(".")
        req: dict[str, Any] = {"conn": conn}
        if child:
            req["child"] = child
        code, _result = _call(sock, cmd, req)
        if code == EXIT_USAGE:
            return code
        if code == EXIT_OK:
            print(f"{verb} {target}")
        worst = max(worst, code)
    return worst


def _ops(args: argparse.Namespace) -> int:
    from pike.cli.conn_text import format_list_conns, format_reload

    code, result = _call(args.socket, args.cmd, {})
    if code == EXIT_OK:
        if getattr(args, "json", False):
            print(json.dumps(result, indent=2))
        elif args.cmd == "reload":
            print(format_reload(result))
        elif result:
            print(format_list_conns(result))
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "check-config":
        return _check_config(args.file)
    if args.cmd == "keys":
        return keys.run(args)
    if args.cmd == "board":
        from pike.board.detect import describe, format_board

        if args.local:
            code, result = EXIT_OK, describe()
        else:
            code, result = _call(args.socket, "board", {})
        if code == EXIT_OK:
            print(json.dumps(result, indent=2) if args.json else format_board(result))
        return code
    if args.cmd == "status":
        code, result = _call(args.socket, "status", {})
        if code == EXIT_OK:
            print(json.dumps(result, indent=2) if args.json else format_status(result))
        return code
    if args.cmd == "list-sas":
        code, result = _call(args.socket, "list-sas", {"conn": args.conn} if args.conn else {})
        if code == EXIT_OK:
            if args.json:
                print(json.dumps(result, indent=2))
            elif result:
                print(format_list_sas(result))
        return code
    if args.cmd in ("reload", "list-conns"):
        return _ops(args)
    if args.cmd in ("initiate", "rekey"):
        return _per_target(args.socket, args.cmd, args.targets)
    code, _result = _call(args.socket, "terminate", {"conn": args.conn})
    if code == EXIT_OK:
        print(f"terminating {args.conn}")
    return code


if __name__ == "__main__":
    sys.exit(main())
