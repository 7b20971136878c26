"""Fixtures: ``softhsm`` (a private SoftHSM2 per test) and ``tpm`` (swtpm + abrmd, per
session). Both put their variables into os.environ (tokens read them at C_Initialize) and
make pike forget its token sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.prereq import require

from .tokens import (
    SoftHsm,
    Tpm,
    reset_pike_tokens,
    shared_tpm,
    softhsm_available,
    tpm_available,
)


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    require(softhsm_available(), "softhsm2 not installed")
    hsm = SoftHsm(tmp_path)
    for k, v in hsm.env().items():
        monkeypatch.setenv(k, v)
    reset_pike_tokens()
    yield hsm
    reset_pike_tokens()


@pytest.fixture(scope="session")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Tpm:
    require(tpm_available(), "swtpm / tpm2-abrmd / tpm2-pkcs11 not installed")
    return shared_tpm(tmp_path_factory.getbasetemp())
