"""The tokens the signing benchmarks use: a private SoftHSM2 and the TPM 2.0 simulator
(swtpm + tpm2-abrmd + tpm2-pkcs11), each with a token ``bench``; every process started
here is stopped by PID."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from hsm.tokens import USER_PIN, SoftHsm, Tpm, reset_pike_tokens, softhsm_available
from pike.hsm import pkcs11 as hsm

TOKEN = "bench"


class BenchTokens:
    """Tokens made on demand under ``tmp``, their environment set for this process and
    its children (PIKE_PIN too, as a helper inherits it from its unit)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tpm: Tpm | None = None
        os.environ["PIKE_PIN"] = USER_PIN
        os.environ.setdefault("TPM2_PKCS11_LOG_LEVEL", "0")

    def softhsm(self) -> SoftHsm | None:
        """SoftHSM2's token, or None where SoftHSM2 is not installed."""
        if not softhsm_available():
            return None
        soft = SoftHsm(self.tmp)
        os.environ.update(soft.env())
        soft.init(TOKEN)
        return soft

    def start_tpm(self) -> Tpm:
        self.tpm = Tpm(self.tmp, label=TOKEN)
        os.environ.update(self.tpm.env())
        self.tpm.start()
        return self.tpm

    def __enter__(self) -> BenchTokens:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reset_pike_tokens()
        if self.tpm is not None:
            # C_Finalize while the TPM is still there: its sessions are flushed now, not
            # at exit against a stopped resource manager (a screen of esys errors).
            with contextlib.suppress(Exception):
                hsm.module(self.tpm.module).lib.finalize()
            self.tpm.stop()
