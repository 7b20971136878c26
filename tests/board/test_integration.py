"""How the daemon uses pike.board: board default proposals in the config loader, the
``board`` control command and ``pikectl board``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pike.board.detect import detect
from pike.cli import pikectl
from pike.policy import loader

FIXTURES = Path(__file__).parent / "fixtures"

CONFIG = """
[connections.branch]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
{ike}
[connections.branch.local]
auth = "psk"
[connections.branch.remote]
auth = "psk"
[connections.branch.children.lan]
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
{esp}
[secrets.s]
id = ["192.0.2.1", "192.0.2.2"]
secret = "0sc2VjcmV0c2VjcmV0"
"""


def defaults_of(board: str) -> loader.DefaultProposals:
    info = detect(str(FIXTURES / board))
    return loader.DefaultProposals(info.proposals.ike, info.proposals.esp)


@pytest.mark.parametrize(("board", "encr"), [("rpi4", "CHACHA20_POLY1305"), ("rpi5", "AES_GCM_16")])
def test_connection_without_proposals_gets_the_boards(board: str, encr: str) -> None:
    cfg = loader.load_config_text(CONFIG.format(ike="", esp=""), "p.toml", defaults_of(board))
    conn = cfg.connections["branch"]
    first_ike = conn.proposals[0].transforms[0]
    first_esp = conn.children[0].esp_proposals[0].transforms[0]
    assert first_ike.type.name == "ENCR" and first_esp.type.name == "ENCR"
    from pike.crypto.ids import EncrId

    assert EncrId(first_ike.id).name == encr
    assert EncrId(first_esp.id).name == encr
    assert len(conn.proposals) == 3


def test_configured_proposals_win_over_the_boards() -> None:
    text = CONFIG.format(
        ike='proposals = ["aes128-sha256-modp2048"]', esp='esp_proposals = ["aes128-sha256"]'
    )
    cfg = loader.load_config_text(text, "p.toml", defaults_of("rpi4"))
    conn = cfg.connections["branch"]
    assert len(conn.proposals) == 1 and len(conn.children[0].esp_proposals) == 1


def test_without_board_defaults_proposals_stay_required() -> None:
    with pytest.raises(loader.ConfigError, match="proposals"):
        loader.load_config_text(CONFIG.format(ike="", esp=""), "p.toml")


def test_pikectl_board_local(capsys: pytest.CaptureFixture[str]) -> None:
    assert pikectl.main(["board", "--local", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["board"] == detect().profile.id
    assert pikectl.main(["board", "--local"]) == 0
    assert capsys.readouterr().out.startswith("board:      ")
