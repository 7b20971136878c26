"""Start the selected guest tiers' UML guests in the background as soon as collection is
done (tests/guest/tier.py), run the tier tests (which wait for them) after every other
test, and kill any guest still running when the session ends."""

from __future__ import annotations

import pytest

from guest.tier import selected_tiers, start_background, stop_background, summaries


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers = [item for item in items if item.get_closest_marker("guest_tier") is not None]
    others = [item for item in items if item.get_closest_marker("guest_tier") is None]
    items[:] = others + tiers


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        start_background(selected_tiers(session.items))


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_background()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if summaries:  # each tier's wall and CPU time, also when it passed
        terminalreporter.write_sep("-", "UML guest tiers")
        for line in summaries:
            terminalreporter.write_line(line)
