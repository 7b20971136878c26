"""``pikectl certs`` as text (pike.cli.cert_text)."""

from __future__ import annotations

from pike.cli.cert_text import format_certs

NOW = 1_700_000_000.0
DAY = 86400.0


def test_certs_text() -> None:
    result = {
        "certs": [
            {"connection": "hq", "role": "local", "subject": "CN=gw", "issuer": "CN=CA",
             "serial": "01:02", "not_after": NOW + 20 * DAY},
            {"connection": "hq", "role": "peer", "subject": "CN=br", "issuer": "CN=CA",
             "serial": "0a", "not_after": NOW - 2 * DAY, "revocation": "revoked",
             "revocation_source": "crl http://pki/ca.crl"},
        ],
        "crls": [
            {"source": "http://pki/ca.crl", "issuer": "CN=CA", "this_update": NOW - DAY,
             "next_update": NOW - 60, "number": 2, "revoked": 1, "fetched_at": NOW,
             "error": None},
        ],
        "sources": [{"source": "http://ocsp/", "fetched_at": None, "error": "refused"}],
    }  # fmt: skip
    text = format_certs(result, now=NOW)
    assert 'hq local: "CN=gw"' in text
    assert "(20 days left)" in text and "(expired 2 days ago)" in text
    assert "revocation: revoked (crl http://pki/ca.crl)" in text
    assert 'CRL http://pki/ca.crl: "CN=CA", 1 revoked' in text and "(stale)" in text
    assert "source http://ocsp/: failing: refused, last success -" in text
    assert format_certs({}, now=NOW) == "no certificates in use"
