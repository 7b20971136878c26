"""pike_firmware_info: the image build and the A/B slot it booted (issue 18)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from pike.metrics.collector import PikeCollector, Sources
from pike.metrics.firmware import Firmware, read_firmware
from pike.metrics.recorder import Recorder
from pike.policy.loader import load_config_text


def scrape(firmware: Firmware | None) -> str:
    config = load_config_text("[daemon]\n", "/etc/pike/pike.toml")
    reg = CollectorRegistry(auto_describe=False)
    src = Sources(
        config=lambda: config,
        sas=lambda: [],
        counters=lambda: None,
        now=lambda: 1.0,
        wall=lambda: 1_700_000_000.0,
        esp=lambda: False,
        recorder=Recorder(lambda spec: None, wall=lambda: 1_700_000_000.0),
        version="0.1.0",
        started_wall=1_700_000_000.0,
        firmware=firmware,
    )
    reg.register(PikeCollector(src))
    return generate_latest(reg).decode()


def test_version_and_slot_from_the_image(tmp_path: Path) -> None:
    (tmp_path / "version").write_text("0.1.0+gabc1234\n")
    (tmp_path / "cmdline").write_text("console=ttyAMA0 root=PARTUUID=70696b65-03 ro rauc.slot=B\n")
    fw = read_firmware(tmp_path / "version", tmp_path / "cmdline")
    assert fw == Firmware("0.1.0+gabc1234", "B")
    assert 'pike_firmware_info{slot="B",version="0.1.0+gabc1234"} 1.0' in scrape(fw)


def test_no_slot_without_the_ab_boot_script(tmp_path: Path) -> None:
    (tmp_path / "version").write_text("0.1.0+gabc1234\n")
    (tmp_path / "cmdline").write_text("root=/dev/sda2 rauc.slot=$(reboot)\n")
    assert read_firmware(tmp_path / "version", tmp_path / "cmdline") == Firmware(
        "0.1.0+gabc1234", ""
    )


def test_absent_outside_the_image(tmp_path: Path) -> None:
    assert read_firmware(tmp_path / "missing", tmp_path / "cmdline") is None
    assert "pike_firmware_info" not in scrape(None)
