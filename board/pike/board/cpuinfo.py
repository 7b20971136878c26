"""``/proc/cpuinfo`` -> the CPU facts that decide the proposal order.

arm64 lists ``Features`` (``aes pmull sha1 sha2`` are the ARMv8 Cryptography Extensions)
and ``CPU part`` per core; x86 lists ``flags`` (``aes`` is AES-NI, ``pclmulqdq`` the
carry-less multiply GCM's GHASH needs, ``avx``/``avx2`` speed up ChaCha20).
"""

from __future__ import annotations

from dataclasses import dataclass

# What makes AES-GCM fast: AES rounds in hardware and a carry-less multiply for GHASH.
GCM_FEATURES = {"aarch64": ("aes", "pmull"), "x86_64": ("aes", "pclmulqdq")}
# Reported for information (pikectl board), not used to decide.
INTERESTING = ("aes", "pmull", "sha1", "sha2", "sha512", "pclmulqdq", "avx", "avx2", "sha_ni")


@dataclass(frozen=True, slots=True)
class CpuInfo:
    arch: str  # "aarch64", "x86_64" or "" when the format is unknown
    features: frozenset[str]  # present on every core (a feature one core lacks is absent)
    parts: tuple[str, ...]  # arm64 "CPU part" values, e.g. 0xd08 (Cortex-A72)
    model_name: str  # x86 "model name", or "" on arm64
    cores: int

    @property
    def aes_gcm_accelerated(self) -> bool:
        needed = GCM_FEATURES.get(self.arch)
        return needed is not None and all(f in self.features for f in needed)

    def interesting(self) -> list[str]:
        return [f for f in INTERESTING if f in self.features]


def parse_cpuinfo(text: str) -> CpuInfo:
    per_core: list[set[str]] = []
    parts: list[str] = []
    model_name = ""
    arch = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in ("features", "flags"):
            # arm64 names them Features, x86 flags; the key tells the architecture.
            arch = arch or ("aarch64" if key == "features" else "x86_64")
            per_core.append(set(value.split()))
        elif key == "cpu part" and value not in parts:
            parts.append(value)
        elif key == "model name" and not model_name:
            model_name = value
    features = frozenset(set.intersection(*per_core)) if per_core else frozenset()
    return CpuInfo(arch, features, tuple(parts), model_name, len(per_core))
