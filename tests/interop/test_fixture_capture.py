"""tests/wire/fixtures/capture.py still regenerates the committed strongSwan fixtures."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import Require
from .strongswan import charon_available

FIXTURES = Path(__file__).resolve().parents[1] / "wire" / "fixtures"


def _capture_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pike_fixture_capture", FIXTURES / "capture.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _shape(manifest: dict[str, object]) -> list[tuple[str, int, int]]:
    """Exchange, I/R flags and message ID of each message (IKEv1 IDs are random: != 0)."""
    msgs = manifest["messages"]
    assert isinstance(msgs, list)
    v1 = manifest["ike_version"] == 1
    return [
        (m["exchange"], m["flags"] & 0x28, int(m["message_id"] != 0) if v1 else m["message_id"])
        for m in msgs
    ]


@pytest.mark.interop
@pytest.mark.parametrize("scenario", ["ikev2-psk", "ikev1-psk"])
def test_capture_regenerates_fixture_shapes(
    tmp_path: Path, require: Require, scenario: str
) -> None:
    require(charon_available(), "strongSwan charon/swanctl not installed")
    require(shutil.which("tshark") is not None, "tshark not installed")
    capture = _capture_module()
    assert capture.main(["--scenario", scenario, "--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / f"strongswan-{scenario}.json").read_text())
    committed = json.loads((FIXTURES / f"strongswan-{scenario}.json").read_text())
    assert _shape(fresh) == _shape(committed)
    for m in fresh["messages"]:
        data = (tmp_path / m["file"]).read_bytes()
        assert len(data) == m["length"] == int.from_bytes(data[24:28], "big")
        assert data[:8].hex() == m["initiator_spi"]
    assert fresh["initiator_keys"], "no keys parsed from charon's log"
