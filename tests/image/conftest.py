"""The image tier: registers the ``image`` marker (slow: builds and boots the arm64 image)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the arm64 gateway image and boots it under qemu (slow, root)"
    )
