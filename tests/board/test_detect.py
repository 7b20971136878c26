"""Board detection against recorded /proc and /sys snippets of each board (fixtures/),
and on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pike.board.cpuinfo import parse_cpuinfo
from pike.board.detect import describe, detect, format_board

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(board: str) -> str:
    return str(FIXTURES / board)


def test_rpi4_software_crypto_chacha_first() -> None:
    info = detect(fixture("rpi4"))
    assert info.profile.id == "rpi4"
    assert info.matched_by == "device-tree model 'Raspberry Pi 4 Model B Rev 1.5'"
    assert info.cpu.arch == "aarch64"
    assert info.cpu.parts == ("0xd08",)
    assert info.cpu.cores == 4
    assert not info.accelerated
    assert info.proposals.esp[0] == "chacha20poly1305"
    assert info.proposals.ike[0] == "chacha20poly1305-prfsha256-x25519"
    assert info.watchdog.present
    assert info.watchdog.identity == "Broadcom BCM2835 Watchdog timer"
    assert info.watchdog.timeout == 15
    assert not info.tpm.present
    assert [(n.name, n.driver) for n in info.interfaces] == [
        ("eth0", "bcmgenet"),
        ("wlan0", "brcmfmac"),
    ]
    assert info.warnings == ()


def test_rpi5_crypto_extensions_aes_gcm_first() -> None:
    info = detect(fixture("rpi5"))
    assert info.profile.id == "rpi5"
    assert info.accelerated
    assert info.cpu.interesting() == ["aes", "pmull", "sha1", "sha2"]
    assert info.proposals.esp[0] == "aes256gcm16"
    assert info.proposals.ike[0] == "aes256gcm16-prfsha384-x25519"
    assert info.profile.soc == "BCM2712"
    assert info.warnings == ()


def test_cm4_with_tpm() -> None:
    info = detect(fixture("cm4"))
    assert info.profile.id == "cm4"
    assert info.profile.soc == "BCM2711"
    assert not info.accelerated
    assert info.tpm.present and info.tpm.version == "2"
    assert info.tpm.device == "/dev/tpmrm0"


def test_qemu_virt_falls_back_to_generic_arm64_with_ce() -> None:
    info = detect(fixture("generic-arm64"))
    assert info.profile.id == "generic-arm64"
    assert info.matched_by.startswith("no specific profile matched")
    assert info.accelerated
    assert info.proposals.esp[0] == "aes256gcm16"
    assert not info.watchdog.present


def test_x86_64_aes_ni() -> None:
    info = detect(fixture("x86_64"))
    assert info.profile.id == "x86_64"
    assert info.cpu.model_name.startswith("Intel(R) Xeon(R)")
    assert info.accelerated
    assert {"aes", "pclmulqdq", "avx", "avx2"} <= set(info.cpu.interesting())


def test_profile_expectation_mismatch_warns_and_follows_cpuinfo() -> None:
    info = detect(fixture("rpi5-no-ce"))
    assert info.profile.id == "rpi5"
    assert not info.accelerated
    assert info.proposals.esp[0] == "chacha20poly1305"
    assert len(info.warnings) == 1
    assert "says the CPU has AES/PMULL" in info.warnings[0]


def test_compatible_matches_when_model_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Some vendor carrier board\0")
    (tmp_path / "proc/device-tree/compatible").write_bytes(
        b"acme,carrier\0raspberrypi,4-compute-module\0brcm,bcm2711\0"
    )
    (tmp_path / "proc/cpuinfo").write_text((FIXTURES / "cm4/proc/cpuinfo").read_text())
    info = detect(str(tmp_path))
    assert info.profile.id == "cm4"
    assert info.matched_by == "device-tree compatible 'raspberrypi,4-compute-module'"


def test_mixed_cores_use_the_common_features() -> None:
    text = "processor: 0\nFeatures: fp aes pmull\n\nprocessor: 1\nFeatures: fp aes\n"
    cpu = parse_cpuinfo(text)
    assert cpu.features == {"fp", "aes"}
    assert not cpu.aes_gcm_accelerated


def test_empty_root_without_arch_has_no_profile(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no board profile"):
        detect(str(tmp_path))


@pytest.mark.parametrize("board", ["rpi4", "rpi5", "cm4", "generic-arm64", "x86_64"])
def test_describe_is_json_and_text(board: str) -> None:
    d = describe(fixture(board))
    assert json.loads(json.dumps(d)) == d
    text = format_board(d)
    assert text.startswith(f"board:      {board} (")
    assert "ESP:" in text


def test_this_machine() -> None:
    info = detect("/")
    assert info.cpu.arch == os.uname().machine
    assert info.profile.arch == os.uname().machine
    expected = "aes" in info.cpu.features and (
        "pmull" in info.cpu.features or "pclmulqdq" in info.cpu.features
    )
    assert info.accelerated == expected


def test_board_proposals_for_the_loader() -> None:
    from pike.board.defaults import board_proposals

    ike, esp, line = board_proposals(fixture("rpi4"))
    assert ike[0].startswith("chacha20poly1305") and esp[0] == "chacha20poly1305"
    assert line.startswith("board rpi4 (device-tree model")
    assert board_proposals("/nonexistent-root") == (
        (),
        (),
        "board detection failed (no board profile for architecture ''): "
        "connections must name proposals",
    )
