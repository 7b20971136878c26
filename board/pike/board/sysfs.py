"""Small readers for ``/proc`` and ``/sys`` under an injectable root (tests use fixtures)."""

from __future__ import annotations

import os


def read_text(root: str, path: str) -> str | None:
    """The file's text (device-tree strings lose their trailing NULs), or None if absent."""
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data.decode("utf-8", "replace").rstrip("\0").strip()


def read_strings(root: str, path: str) -> tuple[str, ...]:
    """A NUL-separated device-tree string list (``compatible``)."""
    text = read_text(root, path)
    return tuple(s for s in text.split("\0") if s) if text else ()


def list_dir(root: str, path: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(root, path.lstrip("/"))))
    except OSError:
        return []


def uevent(root: str, path: str) -> dict[str, str]:
    """KEY=VALUE lines of a sysfs ``uevent`` file."""
    text = read_text(root, path) or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
