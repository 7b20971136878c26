"""Everything the tiers run comes from a Debian package the project installs.

A machine that ran pike before may hold packages somebody installed by hand, or that apt
pulled in as Recommends; CI's `--no-install-recommends` on a fresh machine has neither
(qemu's iPXE ROMs in ipxe-qemu were one such miss). So this checks, on whatever machine
runs it, that each tool the tests and scripts name, and each file qemu opens for the image
boot, is owned by a package in the hard-dependency closure (Depends, Pre-Depends) of what
tests/lib/setup.sh and image/build.sh install, or of the Essential/required base that every
Debian system has. A file outside that closure fails the test with its package named, so
the fix is one line in APT_PACKAGES (or a command line that no longer needs the file).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

Require = Callable[[bool, str], None]
REPO = Path(__file__).resolve().parents[2]
DPKG_STATUS = Path("/var/lib/dpkg/status")

# Where tools are named: the tests, the test and lab scripts, the image scripts.
SOURCES = ("tests", "image")
SCRIPT_SUFFIXES = {".py", ".sh", ""}
# Commands the project brings itself (the venv, pike's own entry points) or that are not files.
OWN_TOOLS = {"piked", "pikectl", "pytest", "ruff", "mypy", "python", "python3"}

WHICH = re.compile(r"""which\(\s*["']([\w.+-]+)["']\s*\)""")
COMMAND_V = re.compile(r"command -v ([\w.+-]+)")
SHELL_FOR_TOOL = re.compile(r"for tool in ([\w.+ -]+); do")
PY_FOR_TOOL = re.compile(r"for tool in \(([^)]*)\)")
ABS_PATH = re.compile(r"""(?<![\w.~$/-])(/(?:usr/)?(?:s?bin|lib|libexec|share)/[\w.+/-]*[\w+])""")
# Not the host's: the project's own files, and what the image scripts name inside the arm64
# root file system they build.
NOT_PACKAGED = ("/usr/local/", "/usr/lib/python3/dist-packages/pike")
TARGET_SIDE = ("image/rootfs/", "image/hooks/", "image/build.sh")
# Opened when present and skipped when not (glibc's locale alias and message catalogues).
OPTIONAL = ("/usr/share/locale/", "/usr/lib/locale/")


@dataclass
class Status:
    """The installed packages of /var/lib/dpkg/status, enough to follow dependencies."""

    depends: dict[str, list[list[str]]] = field(default_factory=dict)
    providers: dict[str, list[str]] = field(default_factory=dict)
    base: set[str] = field(default_factory=set)

    def installed(self, name: str) -> bool:
        return name in self.depends

    def resolve(self, alternatives: list[str]) -> str | None:
        """The package apt would have used for `a | b | virtual`: the first one present."""
        for name in alternatives:
            if self.installed(name):
                return name
            for provider in self.providers.get(name, []):
                return provider
        return None


def _relation(text: str) -> list[list[str]]:
    groups = []
    for group in text.split(","):
        names = [re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        groups.append([n for n in names if n])
    return [g for g in groups if g]


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package"):
            yield fields


@cache
def dpkg_status() -> Status:
    status = Status()
    for f in _stanzas(DPKG_STATUS.read_text(errors="replace")):
        if not f.get("Status", "").endswith(" installed"):
            continue
        name = f["Package"]
        status.depends[name] = _relation(f.get("Pre-Depends", "")) + _relation(f.get("Depends", ""))
        for group in _relation(f.get("Provides", "")):
            status.providers.setdefault(group[0], []).append(name)
        if f.get("Essential") == "yes" or f.get("Priority") == "required":
            status.base.add(name)
    return status


def project_packages() -> list[str]:
    """APT_PACKAGES of tests/lib/setup.sh and HOST_PACKAGES of image/build.sh."""
    out = subprocess.run(
        [
            "bash",
            "-c",
            f'ROOT="{REPO}"; . "$ROOT/tests/lib/setup.sh"; printf "%s\\n" "${{APT_PACKAGES[@]}}"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    build = (REPO / "image" / "build.sh").read_text()
    host = re.search(r"^HOST_PACKAGES=\(([^)]*)\)", build, re.M)
    assert host, "image/build.sh has no HOST_PACKAGES=(...) line"
    return out + host.group(1).split()


def closure(status: Status, roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if status.installed(r)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for group in status.depends.get(name, []):
            dep = status.resolve(group)
            if dep is not None and dep not in seen:
                todo.append(dep)
    return seen


@cache
def allowed() -> frozenset[str]:
    status = dpkg_status()
    return frozenset(closure(status, [*project_packages(), *status.base]))


def owners(paths: Iterable[str]) -> dict[str, set[str]]:
    """Path -> the packages dpkg says own it (merged /usr: tried with and without /usr)."""
    variants: dict[str, str] = {}
    for path in paths:
        for v in {path, os.path.realpath(path)}:
            variants[v] = path
            alt = v.removeprefix("/usr") if v.startswith("/usr/") else "/usr" + v
            variants[alt] = path
    found: dict[str, set[str]] = {p: set() for p in set(variants.values())}
    out = subprocess.run(
        ["dpkg-query", "-S", *sorted(variants)], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        pkgs, _, path = line.partition(": ")
        if path in variants:
            found[variants[path]] |= {p.strip().split(":")[0] for p in pkgs.split(",")}
    return found


def source_files() -> Iterator[Path]:
    """The tracked scripts (git ls-files: no build output, no venv)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", *SOURCES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in listed.split("\0"):
        path = REPO / name
        if name and path.suffix in SCRIPT_SUFFIXES and path != Path(__file__) and path.is_file():
            yield path


def named_tools() -> dict[str, set[str]]:
    """Tool name -> the files that name it."""
    tools: dict[str, set[str]] = {}
    for path in source_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        names = set(WHICH.findall(text)) | set(COMMAND_V.findall(text))
        for group in SHELL_FOR_TOOL.findall(text):
            names |= set(group.split())
        for group in PY_FOR_TOOL.findall(text):
            names |= set(re.findall(r"""["']([\w.+-]+)["']""", group))
        for name in names - OWN_TOOLS:
            tools.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return tools


def named_paths() -> dict[str, set[str]]:
    """Absolute system paths (/usr/bin/..., /usr/lib/...) the sources name, that exist here."""
    paths: dict[str, set[str]] = {}
    for path in source_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if str(path.relative_to(REPO)).startswith(TARGET_SIDE):
            continue
        for p in ABS_PATH.findall(text):
            if os.path.exists(p) and not p.startswith(NOT_PACKAGED + OPTIONAL):
                paths.setdefault(p, set()).add(str(path.relative_to(REPO)))
    return paths


def outside(files: dict[str, set[str]]) -> list[str]:
    """One line per file that no allowed package owns."""
    ok = allowed()
    problems = []
    for path, pkgs in sorted(owners(files).items()):
        if not pkgs & ok:
            where = ", ".join(sorted(files[path]))
            what = ", ".join(sorted(pkgs)) or "no package (installed by hand?)"
            problems.append(f"{path} ({where}): from {what}, which the project does not install")
    return problems


@pytest.fixture(autouse=True)
def _debian(require: Require) -> None:
    require(DPKG_STATUS.exists(), "not a Debian system (no /var/lib/dpkg/status)")


def test_closure_follows_hard_dependencies_only(require: Require) -> None:
    """qemu-system-arm only recommends ipxe-qemu: the closure must not take Recommends."""
    status = dpkg_status()
    require(status.installed("qemu-system-arm"), "qemu-system-arm not installed (tests/run does)")
    reach = closure(status, ["qemu-system-arm"])
    assert "qemu-system-data" in reach  # a Depends
    assert "ipxe-qemu" not in reach  # a Recommends
    assert "libc6" in reach  # through the libraries


def test_every_project_package_is_installed() -> None:
    status = dpkg_status()
    missing = [p for p in project_packages() if not status.installed(p)]
    assert not missing, f"not installed (tests/run installs them): {missing}"


def test_tools_the_tests_name_come_from_project_packages() -> None:
    tools = named_tools()
    assert {"qemu-system-aarch64", "tshark", "swtpm", "ip"} <= set(tools), sorted(tools)
    files: dict[str, set[str]] = {}
    missing = []
    for name, where in tools.items():
        found = shutil.which(name)
        if found is None:
            missing.append(f"{name} ({', '.join(sorted(where))})")
        else:
            files.setdefault(found, set()).update(where)
    assert not missing, f"named by the tests but not on PATH: {missing}"
    files.update(named_paths())
    problems = outside(files)
    assert not problems, "\n".join(problems)


def test_image_boot_opens_only_project_files(tmp_path: Path, require: Require) -> None:
    """Start the boot test's qemu machine (paused) under strace: every file it opens
    (ROMs, firmware, keymaps, libraries) belongs to a package the project installs."""
    for tool in ("strace", "qemu-system-aarch64", "qemu-img"):
        require(shutil.which(tool) is not None, f"{tool} missing (tests/run installs it)")
    trace = tmp_path / "trace"
    strace = ["strace", "-f", "-qq", "-e", "trace=open,openat,execve", "-o", str(trace)]
    proc = subprocess.run(
        [*strace, "bash", "--", str(REPO / "image" / "boot-test.sh"), "--probe"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    opened: dict[str, set[str]] = {}
    for m in re.finditer(
        r'(?:open|openat|execve)\([^"]*"([^"]+)"[^)]*\)\s*=\s*(\d+)', trace.read_text()
    ):
        path = m.group(1)
        if path.startswith(OPTIONAL):
            continue
        if path.startswith(("/usr/", "/lib", "/etc/qemu", "/bin/", "/sbin/")) and os.path.isfile(
            path
        ):
            opened.setdefault(path, set()).add("image/boot-test.sh --probe")
    assert any("qemu-system-aarch64" in p for p in opened), sorted(opened)[:20]
    problems = outside(opened)
    assert not problems, "\n".join(problems)
