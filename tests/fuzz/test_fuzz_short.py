"""A short bounded run of every fuzz target (seconds); the long runs are
``tests/fuzz/run.py`` (see its docstring). A new seed each day keeps CI exploring; a
failure prints the seed and index that reproduce it."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest

from .run import run
from .targets import make_targets

SEED = int(os.environ.get("PIKE_FUZZ_SEED", dt.date.today().strftime("%Y%m%d")))
COUNT = {"v2_auth": 120, "v2_auth_response": 120, "v1_clear": 120}  # the slow ones


@pytest.mark.parametrize("target", sorted(make_targets()))
def test_fuzz_target_finds_nothing(target: str) -> None:
    logging.disable(logging.CRITICAL)
    try:
        result = run(target, COUNT.get(target, 400), SEED)
    finally:
        logging.disable(logging.NOTSET)
    assert result.inputs > 0
    assert not result.findings, "\n".join(
        f"{key}: reproduce with tests/fuzz/run.py --target {target} --seed {SEED} "
        f"--start {i} -n 1\n{tb}"
        for key, (i, tb) in result.findings.items()
    )
