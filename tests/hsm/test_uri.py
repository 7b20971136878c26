"""RFC 7512 URI parsing and PIN sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from pike.hsm.uri import UriError, parse, read_pin

M = "module-path=/usr/lib/softhsm/libsofthsm2.so"


def test_path_and_query_attributes() -> None:
    u = parse(f"pkcs11:token=gw%20one;object=ike;id=%01%02;type=private?{M}&pin-source=file:/p")
    assert (u.token, u.object, u.id, u.type) == ("gw one", "ike", b"\x01\x02", "private")
    assert u.module() == "/usr/lib/softhsm/libsofthsm2.so" and u.pin_source == "file:/p"
    assert "pin" not in u.describe() and "module" not in u.describe()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"pkcs11:token=gw;object=k?{M}&pin-value=1234", "pin-value is refused"),
        (f"pkcs11:token=gw;objct=k?{M}", "unknown attribute objct"),
        (f"pkcs11:token=gw;token=x;object=k?{M}", "given twice"),
        ("pkcs11:token=gw;object=k", "module-path"),
        (f"pkcs11:token=gw?{M}", "names no key"),
        (f"pkcs11:token=gw;object=k;type=cert?{M}", "type=private"),
        (f"pkcs11:token=gw;object=k;{M}", "belongs in the URI's query"),
        ("file:/etc/key.pem", "not a pkcs11: URI"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(UriError, match=why):
        parse(text)


def test_pin_never_in_the_error(tmp_path: Path) -> None:
    u = parse(f"pkcs11:token=gw;object=k?{M}")
    assert read_pin(u, {"PIKE_PIN": "4321"}) == "4321"
    with pytest.raises(UriError, match="PIKE_PIN"):
        read_pin(u, {})
    f = tmp_path / "pin"
    f.write_text("s3cret\n")
    u2 = parse(f"pkcs11:token=gw;object=k?{M}&pin-source=file:{f}")
    assert read_pin(u2, {}) == "s3cret"
    u3 = parse(f"pkcs11:token=gw;object=k?{M}&pin-source=env:GW_PIN")
    assert read_pin(u3, {"GW_PIN": "x"}) == "x"
    with pytest.raises(UriError) as err:
        read_pin(parse(f"pkcs11:token=gw;object=k?{M}&pin-source={tmp_path}/none"), {})
    assert "s3cret" not in str(err.value)
