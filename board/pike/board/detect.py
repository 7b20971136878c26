"""Which board is this, and what does pike choose for it (``pikectl board``).

Detection reads ``/proc/device-tree/model`` and ``compatible`` (Raspberry Pi firmware and
every device-tree board set them), ``/proc/cpuinfo`` and ``/sys/class/{watchdog,tpm,net}``
below an injectable root, so tests run against recorded snippets of each board.

The proposal order follows what the CPU *reports*, not what the profile assumes: a
profile that expects crypto extensions the CPU lacks (or the reverse) gets a warning and
the measured answer.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pike.board.cpuinfo import CpuInfo, parse_cpuinfo
from pike.board.profile import BoardProfile, Proposals, load_profiles
from pike.board.sysfs import list_dir, read_strings, read_text, uevent


@dataclass(frozen=True, slots=True)
class WatchdogInfo:
    device: str  # from the profile, e.g. /dev/watchdog
    present: bool  # /sys/class/watchdog has a device
    identity: str = ""  # e.g. "Broadcom BCM2835 Watchdog timer"
    timeout: int | None = None  # seconds currently set


@dataclass(frozen=True, slots=True)
class TpmInfo:
    expected: str  # none | optional | expected (from the profile)
    device: str
    present: bool
    version: str = ""  # "2" for TPM 2.0


@dataclass(frozen=True, slots=True)
class NicInfo:
    name: str
    driver: str


@dataclass(frozen=True, slots=True)
class BoardInfo:
    profile: BoardProfile
    matched_by: str
    model: str
    compatible: tuple[str, ...]
    cpu: CpuInfo
    accelerated: bool  # AES-GCM has hardware help: its proposals go first
    proposals: Proposals
    watchdog: WatchdogInfo
    tpm: TpmInfo
    interfaces: tuple[NicInfo, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``pikectl board --json`` prints."""
        p = self.profile
        return {
            "board": p.id,
            "name": p.name,
            "soc": p.soc,
            "cpu": p.cpu,
            "matched_by": self.matched_by,
            "model": self.model,
            "compatible": list(self.compatible),
            "arch": self.cpu.arch,
            "cpu_parts": list(self.cpu.parts),
            "cpu_model": self.cpu.model_name,
            "cores": self.cpu.cores,
            "crypto_features": self.cpu.interesting(),
            "crypto": "accelerated" if self.accelerated else "software",
            "proposals": {"ike": list(self.proposals.ike), "esp": list(self.proposals.esp)},
            "watchdog": asdict(self.watchdog),
            "tpm": asdict(self.tpm),
            "hsm": p.hsm,
            "interfaces": [asdict(n) for n in self.interfaces],
            "warnings": list(self.warnings),
        }


def _match(
    profiles: dict[str, BoardProfile], model: str, compatible: tuple[str, ...], arch: str
) -> tuple[BoardProfile, str]:
    for p in profiles.values():
        for prefix in p.model_prefixes:
            if model.startswith(prefix):
                return p, f"device-tree model {model!r}"
    for p in profiles.values():
        for comp in compatible:
            if comp in p.compatible:
                return p, f"device-tree compatible {comp!r}"
    for p in profiles.values():
        if p.fallback and p.arch == arch:
            return p, f"no specific profile matched; generic profile for {arch}"
    raise LookupError(f"no board profile for architecture {arch!r}")


def _watchdog(root: str, profile: BoardProfile) -> WatchdogInfo:
    names = [n for n in list_dir(root, "/sys/class/watchdog") if n.startswith("watchdog")]
    if not names:
        return WatchdogInfo(profile.watchdog_device, False)
    base = f"/sys/class/watchdog/{names[0]}"
    timeout = read_text(root, f"{base}/timeout")
    return WatchdogInfo(
        profile.watchdog_device,
        True,
        read_text(root, f"{base}/identity") or "",
        int(timeout) if timeout and timeout.isdigit() else None,
    )


def _tpm(root: str, profile: BoardProfile) -> TpmInfo:
    names = [n for n in list_dir(root, "/sys/class/tpm") if n.startswith("tpm")]
    if not names:
        return TpmInfo(profile.tpm, profile.tpm_device, False)
    version = read_text(root, f"/sys/class/tpm/{names[0]}/tpm_version_major") or ""
    return TpmInfo(profile.tpm, profile.tpm_device, True, version)


def _interfaces(root: str) -> tuple[NicInfo, ...]:
    out = []
    for name in list_dir(root, "/sys/class/net"):
        if name == "lo":
            continue
        driver = uevent(root, f"/sys/class/net/{name}/device/uevent").get("DRIVER", "")
        out.append(NicInfo(name, driver))
    return tuple(out)


def detect(root: str = "/", profiles: dict[str, BoardProfile] | None = None) -> BoardInfo:
    """Detect the board below ``root`` and choose its proposals."""
    profiles = load_profiles() if profiles is None else profiles
    model = read_text(root, "/proc/device-tree/model") or ""
    compatible = read_strings(root, "/proc/device-tree/compatible")
    cpu = parse_cpuinfo(read_text(root, "/proc/cpuinfo") or "")
    arch = cpu.arch or (os.uname().machine if root == "/" else "")
    if not cpu.arch:
        cpu = CpuInfo(arch, cpu.features, cpu.parts, cpu.model_name, cpu.cores)
    profile, matched_by = _match(profiles, model, compatible, arch)
    warnings: list[str] = []
    accelerated = cpu.aes_gcm_accelerated
    if profile.crypto_extensions is not None and profile.crypto_extensions != accelerated:
        said = "has" if profile.crypto_extensions else "lacks"
        seen = "reports" if accelerated else "does not report"
        warnings.append(
            f"profile {profile.id} says the CPU {said} AES/PMULL instructions but "
            f"/proc/cpuinfo {seen} them; following /proc/cpuinfo"
        )
    if profile.cpu_parts and cpu.parts and not set(cpu.parts) & set(profile.cpu_parts):
        warnings.append(
            f"CPU part {', '.join(cpu.parts)} is not the {profile.cpu} the profile expects "
            f"({', '.join(profile.cpu_parts)})"
        )
    tpm = _tpm(root, profile)
    if profile.tpm == "expected" and not tpm.present:
        warnings.append(f"profile {profile.id} expects a TPM but /sys/class/tpm is empty")
    return BoardInfo(
        profile=profile,
        matched_by=matched_by,
        model=model,
        compatible=compatible,
        cpu=cpu,
        accelerated=accelerated,
        proposals=profile.accelerated if accelerated else profile.software,
        watchdog=_watchdog(root, profile),
        tpm=tpm,
        interfaces=_interfaces(root),
        warnings=tuple(warnings),
    )


def describe(root: str = "/") -> dict[str, Any]:
    """``detect(root).to_dict()``: the answer of the control command ``board``."""
    return detect(root).to_dict()


def format_board(d: dict[str, Any]) -> str:
    """Human text for ``pikectl board``."""
    wd = d["watchdog"]
    tpm = d["tpm"]
    lines = [
        f"board:      {d['board']} ({d['name']})",
        f"matched by: {d['matched_by']}",
        f"SoC/CPU:    {d['soc'] or '?'} / {d['cpu'] or d['cpu_model'] or '?'}"
        f" ({d['arch']}, {d['cores']} cores)",
        f"crypto:     {d['crypto']} (features: {' '.join(d['crypto_features']) or 'none'})",
        f"IKE:        {', '.join(d['proposals']['ike'])}",
        f"ESP:        {', '.join(d['proposals']['esp'])}",
        f"watchdog:   {wd['device']} "
        + (f"present ({wd['identity'] or 'unknown'})" if wd["present"] else "not present"),
        f"TPM:        {tpm['expected']}, "
        + (f"present (TPM {tpm['version'] or '?'}.0)" if tpm["present"] else "not present"),
        "interfaces: "
        + (", ".join(f"{n['name']} ({n['driver'] or '?'})" for n in d["interfaces"]) or "none"),
    ]
    lines += [f"warning:    {w}" for w in d["warnings"]]
    return "\n".join(lines)
