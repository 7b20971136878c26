"""``pikectl firmware status|install BUNDLE|mark-good``: a thin wrapper over RAUC's CLI.

    pikectl firmware status [--json]   running version, booted slot, the other slot's state
                                       and version, the boot counters
    pikectl firmware install BUNDLE    rauc install, its progress as it comes, one line why
                                       when it is refused
    pikectl firmware mark-good         rauc status mark-good booted

RAUC does the work (signature check, slot writing, boot selection); this only asks it
(``rauc status --detailed --output-format=json``, ``rauc install``, ``rauc status
mark-good booted``) and reads the boot counters of the A/B boot script with
``fw_printenv`` (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT: RAUC's uboot backend variables).
Both are found on PATH. The parsing and formatting below are plain functions of RAUC's
output, so tests run them against a fake ``rauc``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

# typing is not imported at run time: pikectl's calls should not pay 2 ms for it (issue #12)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# subprocess and shutil are imported where RAUC is run: every pikectl command builds this
# module's parser, and ``pikectl status`` should not pay for them (issue #12)
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
KEYRING = "/etc/rauc/keyring.pem"
_COUNTERS = ("BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT")
# What RAUC says when the bundle's signature does not chain to the keyring, or is absent.
_SIGNATURE = re.compile(r"signature|x509|certificate|verify error|keyring|cms", re.IGNORECASE)


def add_parser(sub: Any) -> None:
    fp = sub.add_parser("firmware", help="firmware update status, install, mark-good (RAUC)")
    fs = fp.add_subparsers(dest="firmware_cmd", required=True, parser_class=type(fp))
    st = fs.add_parser(
        "status", help="version, booted slot, the other slot's state and version, boot tries"
    )
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    ins = fs.add_parser(
        "install", help="install a signed bundle into the other slot (it boots next, once)"
    )
    ins.add_argument(
        "bundle", metavar="BUNDLE", help="the signed RAUC bundle (.raucb) on the gateway"
    )
    fs.add_parser("mark-good", help="mark the booted slot good (it keeps booting)")


def run(args: argparse.Namespace) -> int:
    if args.firmware_cmd == "status":
        return _status(args.json)
    if args.firmware_cmd == "install":
        return _install(args.bundle)
    return _mark_good()


def _tool(name: str) -> str | None:
    import shutil

    path = shutil.which(name)
    if path is None:
        print(
            f"pikectl: firmware: {name} not found (not the pike firmware image?)", file=sys.stderr
        )
    return path


# -- status -------------------------------------------------------------------------------


def parse_counters(text: str) -> dict[str, str]:
    """``fw_printenv`` lines ``NAME=value`` -> the boot counters found."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in _COUNTERS:
            out[name.strip()] = value.strip()
    return out


def summarize(
    rauc: dict[str, Any], counters: dict[str, str], running: str | None
) -> dict[str, Any]:
    """RAUC's ``status --detailed`` JSON (+ counters, the image's own version) -> what an
    operator wants: the booted slot and the other one."""
    booted_name = rauc.get("booted")
    primary = rauc.get("boot_primary")
    slots: list[dict[str, Any]] = []
    for entry in rauc.get("slots") or []:
        for name, s in entry.items():
            if not s.get("bootname"):
                continue
            st = s.get("slot_status") or {}
            bundle = st.get("bundle") or {}
            slots.append(
                {
                    "slot": s["bootname"],
                    "name": name,
                    "device": s.get("device"),
                    "booted": s.get("state") == "booted" or s["bootname"] == booted_name,
                    "primary": name == primary,
                    "boot_status": s.get("boot_status"),
                    "version": bundle.get("version"),
                    "installed": (st.get("installed") or {}).get("timestamp"),
                    "install_status": st.get("status"),
                    "tries_left": _tries(counters, s["bootname"]),
                }
            )
    slots.sort(key=lambda s: s["slot"])
    booted = next((s for s in slots if s["booted"]), None)
    if booted is not None and running:
        booted["version"] = running  # the image names itself; RAUC knows only what it installed
    return {
        "compatible": rauc.get("compatible"),
        "version": booted["version"] if booted else running,
        "booted": booted["slot"] if booted else booted_name,
        "next_boot": next((s["slot"] for s in slots if s["primary"]), None),
        "boot_order": counters.get("BOOT_ORDER"),
        "slots": slots,
    }


def _tries(counters: dict[str, str], bootname: str) -> int | None:
    value = counters.get(f"BOOT_{bootname}_LEFT", "")
    return int(value) if value.isdigit() else None


def format_status(s: dict[str, Any]) -> str:
    def slot_line(x: dict[str, Any]) -> str:
        parts = [x["boot_status"] or "?"]
        if x["version"]:
            parts.append(f"version {x['version']}")
        elif not x["booted"]:
            parts.append("nothing installed by RAUC")
        if x["installed"] and not x["booted"]:
            parts.append(f"installed {x['installed']}")
        if x["install_status"] not in (None, "ok"):
            parts.append(f"last install: {x['install_status']}")
        if x["tries_left"] is not None:
            parts.append(f"{x['tries_left']} boot tries left")
        return f"{x['slot']} ({x['device']}): " + ", ".join(parts)

    lines = [f"version:      {s['version'] or 'unknown'}"]
    lines.append(
        f"booted slot:  {s['booted'] or 'unknown (not booted through the A/B boot script)'}"
    )
    for x in s["slots"]:
        if x["booted"]:
            lines.append(f"  this slot   {slot_line(x)}")
    for x in s["slots"]:
        if not x["booted"]:
            lines.append(f"  other slot  {slot_line(x)}")
    nxt = s["next_boot"] or "unknown"
    order = f" (boot order {s['boot_order']})" if s["boot_order"] else ""
    lines.append(f"next boot:    {nxt}{order}")
    return "\n".join(lines)


def _status(as_json: bool) -> int:
    import shutil
    import subprocess

    rauc = _tool("rauc")
    if rauc is None:
        return EXIT_ERROR
    r = subprocess.run(
        [rauc, "status", "--detailed", "--output-format=json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        print(
            f"pikectl: firmware: rauc status failed: {_last(r.stderr or r.stdout)}", file=sys.stderr
        )
        return EXIT_ERROR
    try:
        status = json.loads(r.stdout)
    except ValueError as exc:
        print(f"pikectl: firmware: rauc status: not JSON ({exc})", file=sys.stderr)
        return EXIT_ERROR
    counters: dict[str, str] = {}
    fw = shutil.which("fw_printenv")
    if fw is not None:
        c = subprocess.run([fw, *_COUNTERS], capture_output=True, text=True, check=False)
        counters = parse_counters(c.stdout)  # a variable not set yet is left out, not fatal
    from pike.metrics import firmware as image

    running = image.read_firmware(image.VERSION_FILE, image.CMDLINE)
    summary = summarize(status, counters, running.version if running else None)
    print(json.dumps(summary, indent=2) if as_json else format_status(summary))
    return EXIT_OK


# -- install ------------------------------------------------------------------------------


def refusal(lines: Iterable[str], bundle: str) -> str:
    """The one line that says why ``rauc install`` failed (its ``LastError``)."""
    errors = [ln.split("LastError:", 1)[1].strip() for ln in lines if "LastError:" in ln]
    reason = errors[-1] if errors else ""
    if not reason:
        rest = [ln.strip() for ln in lines if ln.strip()]
        reason = rest[-1] if rest else "rauc install failed without a message"
    if _SIGNATURE.search(reason):
        return (
            f"pikectl: firmware: {bundle} refused: its signature does not verify against "
            f"this gateway's keyring ({KEYRING}); nothing was written: {reason}"
        )
    return f"pikectl: firmware: {bundle} not installed: {reason}"


def _install(bundle: str) -> int:
    import subprocess

    rauc = _tool("rauc")
    if rauc is None:
        return EXIT_ERROR
    seen: list[str] = []
    with subprocess.Popen(
        [rauc, "install", bundle],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            seen.append(line)
            # Progress passes through as it comes; the failure is said once, at the end.
            if "LastError:" not in line and not line.startswith("Installing `"):
                print(line, flush=True)
        code = proc.wait()
    if code != 0:
        print(refusal(seen, bundle), file=sys.stderr)
        return EXIT_ERROR
    print("installed: the other slot boots next, once; pike-mark-good keeps it when piked is up")
    return EXIT_OK


# -- mark-good ----------------------------------------------------------------------------


def _mark_good() -> int:
    import subprocess

    rauc = _tool("rauc")
    if rauc is None:
        return EXIT_ERROR
    r = subprocess.run(
        [rauc, "status", "mark-good", "booted"], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        print(
            f"pikectl: firmware: mark-good failed: {_last(r.stderr or r.stdout)}", file=sys.stderr
        )
        return EXIT_ERROR
    print(_last(r.stdout or r.stderr) or "marked the booted slot good")
    return EXIT_OK


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""
