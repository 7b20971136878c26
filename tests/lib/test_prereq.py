"""The skip-here, fail-in-CI rule itself."""

from __future__ import annotations

import pytest

from lib.prereq import in_ci, require, unavailable


def test_require_met_does_nothing() -> None:
    require(True, "never shown")


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_prerequisite_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"\(CI=true, so this is a failure\): no tool"):
        require(False, "no tool")


@pytest.mark.parametrize("ci", [None, "", "false", "1"])
def test_missing_prerequisite_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="prerequisite missing: no tool"):
        unavailable("no tool")
