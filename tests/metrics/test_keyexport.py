"""Wireshark key tables in strongSwan save-keys' format (the names Wireshark's IKEv2 and
ESP decryption tables use); decryption itself is proven with tshark in tests/ops."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from pike.crypto.ids import EncrId, IntegId
from pike.crypto.kdf import IkeKeys
from pike.daemon.keyexport import ESP_TABLE, IKE_TABLE, KeyExport, esp_line, ike_line
from pike.policy.ipsec import SaSpec

KEYS = IkeKeys(
    sk_d=b"d" * 32,
    sk_ai=bytes.fromhex("aa" * 32),
    sk_ar=bytes.fromhex("bb" * 32),
    sk_ei=bytes.fromhex("01" * 32),
    sk_er=bytes.fromhex("02" * 32),
    sk_pi=b"p" * 32,
    sk_pr=b"q" * 32,
)
SPI_I, SPI_R = bytes.fromhex("0011223344556677"), bytes.fromhex("8899aabbccddeeff")


def test_ike_line_cbc_and_gcm() -> None:
    line = ike_line(SPI_I, SPI_R, KEYS, EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128)
    assert line == (
        "0011223344556677,8899aabbccddeeff," + "01" * 32 + "," + "02" * 32
        + ',"AES-CBC-256 [RFC3602]",' + "aa" * 32 + "," + "bb" * 32
        + ',"HMAC_SHA2_256_128 [RFC4868]"'
    )  # fmt: skip
    gcm = IkeKeys(b"", b"", b"", b"\x01" * 20, b"\x02" * 20, b"", b"")
    line = ike_line(SPI_I, SPI_R, gcm, EncrId.AES_GCM_16, 128, IntegId.NONE)
    assert line is not None
    assert line.endswith(',"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"')
    assert ike_line(SPI_I, SPI_R, KEYS, EncrId.CHACHA20_POLY1305, None, IntegId.NONE) is None


def _sa(encr: int, integ: int, ikey: bytes) -> SaSpec:
    return SaSpec(
        src=ip_address("192.0.2.1"),
        dst=ip_address("192.0.2.2"),
        spi=0xC1234567,
        reqid=1,
        mode="tunnel",
        encr_id=encr,
        encr_key=bytes.fromhex("11" * 20),
        encr_key_length=128,
        integ_id=integ,
        integ_key=ikey,
    )


def test_esp_lines() -> None:
    assert esp_line(_sa(EncrId.AES_GCM_16, 0, b"")) == (
        '"IPv4","192.0.2.1","192.0.2.2","0xc1234567",'
        + '"AES-GCM with 16 octet ICV [RFC4106]","0x' + "11" * 20 + '","NULL","0x"'
    )  # fmt: skip
    line = esp_line(_sa(EncrId.AES_CBC, IntegId.HMAC_SHA2_256_128, b"\x22" * 32))
    assert line is not None and '"HMAC-SHA-256-128 [RFC4868]","0x' + "22" * 32 + '"' in line
    assert esp_line(_sa(EncrId.CHACHA20_POLY1305, 0, b"")) is None


def test_files_appended_private(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    k = KeyExport(str(d))
    k.ike_sa("t", SPI_I, SPI_R, KEYS, EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
    k.ike_sa("t", SPI_I, SPI_R, KEYS, EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
    k.child_sa("t", _sa(EncrId.AES_GCM_16, 0, b""), _sa(EncrId.AES_GCM_16, 0, b""))
    assert len((d / IKE_TABLE).read_text().splitlines()) == 2
    assert len((d / ESP_TABLE).read_text().splitlines()) == 2
    assert (d / IKE_TABLE).stat().st_mode & 0o777 == 0o600
    assert d.stat().st_mode & 0o777 == 0o700
