"""Start the selected guest tiers' UML guests in the background as soon as collection is
done (tests/guest/tier.py), and kill any still running when the session ends."""

from __future__ import annotations

import pytest

from guest.tier import selected_tiers, start_background, stop_background


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    start_background(selected_tiers(session.items))


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_background()
