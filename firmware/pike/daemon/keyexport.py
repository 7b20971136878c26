"""Wireshark key tables (``[daemon] save_keys_dir``), for debugging only, off by default.

Writes the two files strongSwan's save-keys plugin writes, in the same format, so that
Wireshark/tshark decrypt captured traffic (copy them into Wireshark's personal config
directory, or pass ``-o uat:ikev2_decryption_table:...``):

- ``ikev2_decryption_table``: one line per IKE SA,
  ``SPIi,SPIr,SK_ei,SK_er,"encryption",SK_ai,SK_ar,"integrity"`` (hex, no 0x);
- ``esp_sa``: one line per ESP SA,
  ``"IPv4","src","dst","0xSPI","encryption","0xkey","authentication","0xkey"``.

Anyone holding these files can read the traffic: piked warns at start while it is on,
and creates the files mode 0600.
"""

from __future__ import annotations

import logging
import os

from pike.crypto.ids import EncrId, IntegId
from pike.crypto.kdf import IkeKeys
from pike.policy.ipsec import SaSpec

log = logging.getLogger("pike.daemon")

IKE_TABLE = "ikev2_decryption_table"
ESP_TABLE = "esp_sa"

# Wireshark's names (its IKEv2 and ESP decryption UATs), as strongSwan's save-keys uses.
_IKE_ENCR: dict[tuple[int, int], str] = {
    (EncrId.AES_CBC, 128): "AES-CBC-128 [RFC3602]",
    (EncrId.AES_CBC, 192): "AES-CBC-192 [RFC3602]",
    (EncrId.AES_CBC, 256): "AES-CBC-256 [RFC3602]",
    (EncrId.AES_CTR, 128): "AES-CTR-128 [RFC5930]",
    (EncrId.AES_CTR, 192): "AES-CTR-192 [RFC5930]",
    (EncrId.AES_CTR, 256): "AES-CTR-256 [RFC5930]",
    **{
        (encr, bits): f"AES-GCM-{bits} with {icv} octet ICV [RFC5282]"
        for encr, icv in ((EncrId.AES_GCM_8, 8), (EncrId.AES_GCM_12, 12), (EncrId.AES_GCM_16, 16))
        for bits in (128, 192, 256)
    },
    **{
        (encr, bits): f"AES-CCM-{bits} with {icv} octet ICV [RFC5282]"
        for encr, icv in ((EncrId.AES_CCM_8, 8), (EncrId.AES_CCM_12, 12), (EncrId.AES_CCM_16, 16))
        for bits in (128, 192, 256)
    },
}
_IKE_INTEG: dict[int, str] = {
    IntegId.NONE: "NONE [RFC4306]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_ESP_ENCR: dict[int, str] = {
    EncrId.AES_CBC: "AES-CBC [RFC3602]",
    EncrId.AES_CTR: "AES-CTR [RFC3686]",
    EncrId.AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
    EncrId.AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
    EncrId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}
# AEAD: no integrity key; Wireshark takes AES-GCM only with "NULL" authentication.
_ESP_AEAD = (EncrId.AES_GCM_8, EncrId.AES_GCM_12, EncrId.AES_GCM_16)
_ESP_INTEG: dict[int, str] = {
    IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
}


def ike_line(
    spi_i: bytes,
    spi_r: bytes,
    keys: IkeKeys,
    encr_id: int,
    encr_bits: int | None,
    integ_id: int,
) -> str | None:
    """One ``ikev2_decryption_table`` line, or None when Wireshark has no name for the
    algorithms (ChaCha20-Poly1305)."""
    encr = _IKE_ENCR.get((encr_id, encr_bits or 0))
    integ = _IKE_INTEG.get(integ_id)
    if encr is None or integ is None:
        return None
    return (
        f'{spi_i.hex()},{spi_r.hex()},{keys.sk_ei.hex()},{keys.sk_er.hex()},"{encr}",'
        f'{keys.sk_ai.hex()},{keys.sk_ar.hex()},"{integ}"'
    )


def esp_line(sa: SaSpec) -> str | None:
    """One ``esp_sa`` line (the SA's own direction: src -> dst), or None when Wireshark
    cannot decrypt the algorithm."""
    encr = _ESP_ENCR.get(sa.encr_id)
    if encr is None:
        return None
    integ = "NULL" if sa.encr_id in _ESP_AEAD else _ESP_INTEG.get(sa.integ_id)
    if integ is None:
        return None
    family = "IPv4" if sa.dst.version == 4 else "IPv6"
    return (
        f'"{family}","{sa.src}","{sa.dst}","0x{sa.spi:08x}","{encr}","0x{sa.encr_key.hex()}",'
        f'"{integ}","0x{sa.integ_key.hex()}"'
    )


class KeyExport:
    """Appends key table lines to files in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._warned = False

    def _append(self, name: str, line: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "WARNING: writing IKE and ESP keys to %s (save_keys_dir): debugging only",
                self.directory,
            )
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            path = os.path.join(self.directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line + "\n")
        except OSError as exc:
            log.error("save_keys_dir: cannot write %s: %s", name, exc)

    def ike_sa(
        self,
        tag: str,
        spi_i: bytes,
        spi_r: bytes,
        keys: IkeKeys,
        encr_id: int,
        encr_bits: int | None,
        integ_id: int,
    ) -> None:
        line = ike_line(spi_i, spi_r, keys, encr_id, encr_bits, integ_id)
        if line is None:
            log.info("%s: Wireshark cannot decrypt this IKE SA's cipher; keys not saved", tag)
            return
        self._append(IKE_TABLE, line)

    def child_sa(self, tag: str, *sas: SaSpec) -> None:
        for sa in sas:
            line = esp_line(sa)
            if line is None:
                log.info("%s: Wireshark cannot decrypt this ESP cipher; keys not saved", tag)
                return
            self._append(ESP_TABLE, line)
