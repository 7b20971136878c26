"""Board profiles: one TOML file per board under ``profiles/``, loaded into typed values.

Profiles are data so that adding a board is adding a file. Each one says what the board
is (SoC, CPU, whether it has AES instructions), how to recognise it, which IKE/ESP
proposals to prefer with and without AES acceleration, its watchdog device and what key
custody hardware to expect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from pike.policy import toml_fast

Expectation = Literal["none", "optional", "expected"]
_EXPECTATIONS = ("none", "optional", "expected")


class ProfileError(ValueError):
    """A profile file is malformed (a packaging bug, never a user error)."""


@dataclass(frozen=True, slots=True)
class Proposals:
    ike: tuple[str, ...]
    esp: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BoardProfile:
    id: str
    name: str
    arch: str  # machine as os.uname() reports it: aarch64, x86_64
    soc: str
    cpu: str
    # True/False: what the board's documentation says; None: unknown (generic profiles).
    crypto_extensions: bool | None
    model_prefixes: tuple[str, ...]
    compatible: tuple[str, ...]
    cpu_parts: tuple[str, ...]
    fallback: bool  # chosen for its arch when no specific profile matches
    accelerated: Proposals  # CPU has AES + carry-less multiply (GHASH)
    software: Proposals  # it has not
    watchdog_device: str
    watchdog_driver: str
    watchdog_max_timeout: int | None
    tpm: Expectation
    tpm_device: str
    hsm: str
    interfaces: tuple[str, ...]
    nic_driver: str


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ProfileError(f"{where}: {key} must be a string")
    return value


def parse_profile(data: dict[str, Any], where: str) -> BoardProfile:
    match = data.get("match", {})
    props = data.get("proposals", {})
    wd = data.get("watchdog", {})
    keys = data.get("keys", {})
    nic = data.get("nic", {})
    for name, table in (("match", match), ("proposals", props), ("watchdog", wd)):
        if not isinstance(table, dict):
            raise ProfileError(f"{where}: [{name}] must be a table")
    ce = data.get("crypto_extensions")
    if ce is not None and not isinstance(ce, bool):
        raise ProfileError(f"{where}: crypto_extensions must be true or false")
    tpm = _str(keys, "tpm", where, "optional")
    if tpm not in _EXPECTATIONS:
        raise ProfileError(f"{where}: keys.tpm must be one of {', '.join(_EXPECTATIONS)}")
    max_timeout = wd.get("max_timeout")
    if max_timeout is not None and not isinstance(max_timeout, int):
        raise ProfileError(f"{where}: watchdog.max_timeout must be an integer")
    profile = BoardProfile(
        id=_str(data, "id", where),
        name=_str(data, "name", where),
        arch=_str(data, "arch", where),
        soc=_str(data, "soc", where, ""),
        cpu=_str(data, "cpu", where, ""),
        crypto_extensions=ce,
        model_prefixes=_strings(match, "model_prefixes", where),
        compatible=_strings(match, "compatible", where),
        cpu_parts=_strings(match, "cpu_parts", where),
        fallback=bool(match.get("fallback", False)),
        accelerated=Proposals(
            _strings(props, "accelerated_ike", where), _strings(props, "accelerated_esp", where)
        ),
        software=Proposals(
            _strings(props, "software_ike", where), _strings(props, "software_esp", where)
        ),
        watchdog_device=_str(wd, "device", where, "/dev/watchdog"),
        watchdog_driver=_str(wd, "driver", where, ""),
        watchdog_max_timeout=max_timeout,
        tpm=tpm,  # type: ignore[arg-type]  # checked against _EXPECTATIONS above
        tpm_device=_str(keys, "tpm_device", where, "/dev/tpmrm0"),
        hsm=_str(keys, "hsm", where, ""),
        interfaces=_strings(nic, "interfaces", where),
        nic_driver=_str(nic, "driver", where, ""),
    )
    for label, p in (("accelerated", profile.accelerated), ("software", profile.software)):
        if not p.ike or not p.esp:
            raise ProfileError(f"{where}: proposals.{label}_ike/_esp must not be empty")
    if not profile.fallback and not (profile.model_prefixes or profile.compatible):
        raise ProfileError(f"{where}: [match] needs model_prefixes/compatible or fallback")
    return profile


def load_profiles() -> dict[str, BoardProfile]:
    """Every profile shipped in the package, by id (sorted for stable output)."""
    out: dict[str, BoardProfile] = {}
    # the package's own directory (installed as files, never zipped): importlib.resources
    # would import zipfile and its readers at every start for the same listing, pathlib
    # 0.3 MiB (idle RSS)
    with os.scandir(os.path.join(os.path.dirname(__file__), "profiles")) as it:
        entries = sorted((e.name, e.path) for e in it if e.name.endswith(".toml"))
    for name, file in entries:
        where = f"profiles/{name}"
        try:
            # the profiles are in toml_fast's subset: tomllib (0.4 MiB) stays out of piked
            with open(file, encoding="utf-8") as f:
                data = toml_fast.loads(f.read())
        except ValueError as exc:  # tomllib.TOMLDecodeError
            raise ProfileError(f"{where}: {exc}") from None
        profile = parse_profile(data, where)
        if profile.id in out:
            raise ProfileError(f"{where}: duplicate profile id {profile.id!r}")
        out[profile.id] = profile
    return out
