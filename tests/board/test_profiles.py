"""Board profiles are data: every shipped TOML parses, and its proposals are valid pike
proposal strings (the config loader will hand them to connections without proposals)."""

from __future__ import annotations

import pytest

from pike.board.profile import ProfileError, load_profiles, parse_profile
from pike.crypto.proposal import parse_proposal

PROFILES = load_profiles()


def test_every_board_of_the_issue_has_a_profile() -> None:
    assert set(PROFILES) == {"rpi4", "rpi5", "cm4", "generic-arm64", "x86_64"}


@pytest.mark.parametrize("board", sorted(PROFILES))
def test_proposals_parse(board: str) -> None:
    p = PROFILES[board]
    for props in (p.accelerated, p.software):
        for text in props.ike:
            parse_proposal(text, "ike")
        for text in props.esp:
            parse_proposal(text, "esp")


def test_pi4_prefers_chacha_and_pi5_aes_gcm() -> None:
    assert PROFILES["rpi4"].crypto_extensions is False
    assert PROFILES["rpi4"].software.esp[0] == "chacha20poly1305"
    assert PROFILES["rpi5"].crypto_extensions is True
    assert PROFILES["rpi5"].accelerated.esp[0] == "aes256gcm16"
    for p in PROFILES.values():  # every board: the order follows AES acceleration
        assert p.accelerated.ike[0].startswith("aes")
        assert p.software.ike[0].startswith("chacha20poly1305")


def test_one_fallback_per_arch() -> None:
    fallbacks = [p.arch for p in PROFILES.values() if p.fallback]
    assert sorted(fallbacks) == ["aarch64", "x86_64"]


def _minimal() -> dict[str, object]:
    return {
        "id": "b",
        "name": "B",
        "arch": "aarch64",
        "match": {"model_prefixes": ["B"]},
        "proposals": {
            "accelerated_ike": ["aes256gcm16-prfsha384-x25519"],
            "accelerated_esp": ["aes256gcm16"],
            "software_ike": ["chacha20poly1305-prfsha256-x25519"],
            "software_esp": ["chacha20poly1305"],
        },
    }


def test_minimal_profile_gets_defaults() -> None:
    p = parse_profile(_minimal(), "b.toml")
    assert p.watchdog_device == "/dev/watchdog"
    assert p.tpm == "optional"
    assert p.crypto_extensions is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"match": {}}, "needs model_prefixes/compatible or fallback"),
        ({"proposals": {}}, "must not be empty"),
        ({"crypto_extensions": "yes"}, "crypto_extensions must be true or false"),
        ({"keys": {"tpm": "maybe"}}, "keys.tpm must be one of"),
        ({"name": 3}, "name must be a string"),
    ],
)
def test_bad_profiles_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile({**_minimal(), **change}, "b.toml")
