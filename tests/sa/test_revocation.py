"""pike.sa.revocation: CRL and OCSP checks, the cache and strongSwan's three policies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ikev2.revgen import aia, cdp, crl_der, freshest, make_crl, ocsp_response
from ikev2.x509gen import DAY, NOW, Issued, issue, make_ca
from pike.sa.cert_fields import crl_uris, keyid, ocsp_uris
from pike.sa.crl import parse_crl
from pike.sa.ocsp import check_ocsp_response, ocsp_request
from pike.sa.revocation import (
    Authority,
    Fetch,
    RevocationCache,
    RevocationPending,
    RevocationRefused,
    Sources,
    check_path,
    revoked_check,
)
from pike.sa.revocation_status import RevocationError, Status

CRL_URI = "http://192.0.2.9/ca.crl"
OCSP_URI = "http://192.0.2.9:8080/"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


def leaf(ca: Issued, *extra: tuple[x509.ExtensionType, bool]) -> Issued:
    return issue(ca, "ecdsa-p256", "gw.example.net", extra=extra)


def test_uris_from_the_certificate(ca: Issued) -> None:
    gw = leaf(ca, cdp(CRL_URI), aia(OCSP_URI))
    assert crl_uris(gw.cert) == [CRL_URI]
    assert ocsp_uris(gw.cert) == [OCSP_URI]
    assert crl_uris(ca.cert) == [] and ocsp_uris(ca.cert) == []
    ldap = leaf(ca, cdp("ldap://dir.example.net/cn=ca"))
    assert crl_uris(ldap.cert) == []  # only HTTP is fetched


def test_crl_from_a_file_revokes_and_clears(ca: Issued) -> None:
    gw, other = leaf(ca), leaf(ca)
    cache = RevocationCache()
    cache.add_crl(parse_crl(crl_der(make_crl(ca, [gw.cert.serial_number])), "/etc/ca.crl"), NOW)
    src = Sources(crl_files=("/etc/ca.crl",))
    bad = cache.status(gw.cert, ca.cert, src, NOW)
    assert bad.status is Status.REVOKED and bad.source == "crl /etc/ca.crl"
    good = cache.status(other.cert, ca.cert, src, NOW)
    assert good.status is Status.GOOD
    with pytest.raises(RevocationRefused, match=r"is revoked \(revoked at .*crl /etc/ca.crl\)"):
        check_path(cache, [gw.cert, ca.cert], "relaxed", src, NOW)
    assert not cache.wanted  # nothing to fetch for files


def test_crl_signed_by_another_ca_is_ignored(ca: Issued) -> None:
    gw = leaf(ca)
    forger = make_ca(cn=ca.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)  # type: ignore[arg-type]
    cache = RevocationCache()
    forged = make_crl(forger, [gw.cert.serial_number])
    cache.add_crl(parse_crl(crl_der(forged), "/etc/ca.crl"), NOW)
    v = cache.status(gw.cert, ca.cert, Sources(crl_files=("/etc/ca.crl",)), NOW)
    assert v.status is Status.FAILED  # a source is configured, none answered for the CA


def test_cdp_miss_is_pending_once_and_failure_is_held(ca: Issued) -> None:
    gw = leaf(ca, cdp(CRL_URI))
    cache = RevocationCache()
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.PENDING
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.PENDING
    assert [f.uri for f in cache.wanted] == [CRL_URI]  # asked once
    cache.failed(cache.wanted.popleft(), "no answer within 3 s", NOW)
    v = cache.status(gw.cert, ca.cert, Sources(), NOW)
    assert v.status is Status.FAILED and "no answer within 3 s" in v.detail
    assert not cache.wanted
    # the failure stands for a while, then a new fetch is tried
    later = NOW + dt.timedelta(minutes=2)
    assert cache.status(gw.cert, ca.cert, Sources(), later).status is Status.PENDING


def test_stale_crl_fails_but_still_revokes(ca: Issued) -> None:
    gw, other = leaf(ca, cdp(CRL_URI)), leaf(ca, cdp(CRL_URI))
    cache = RevocationCache()
    crl = make_crl(ca, [gw.cert.serial_number], this_update=NOW - 3 * DAY, next_update=NOW - DAY)
    cache.add_crl(parse_crl(crl_der(crl), CRL_URI), NOW)
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.REVOKED
    v = cache.status(other.cert, ca.cert, Sources(), NOW)
    assert v.status is Status.FAILED and "stale" in v.detail
    assert [f.uri for f in cache.wanted] == [CRL_URI]  # a refresh was asked for


def test_older_crl_number_is_refused(ca: Issued) -> None:
    cache = RevocationCache()
    cache.add_crl(parse_crl(crl_der(make_crl(ca, number=5)), CRL_URI), NOW)
    with pytest.raises(RevocationError, match="CRL number 4 is older than 5"):
        cache.add_crl(parse_crl(crl_der(make_crl(ca, number=4)), CRL_URI), NOW)


def test_new_crl_reports_newly_revoked_serials(ca: Issued) -> None:
    a, b = leaf(ca), leaf(ca)
    cache = RevocationCache()
    assert cache.add_crl(
        parse_crl(crl_der(make_crl(ca, [a.cert.serial_number])), CRL_URI), NOW
    ) == [a.cert.serial_number]
    serials = [a.cert.serial_number, b.cert.serial_number]
    fresh = cache.add_crl(parse_crl(crl_der(make_crl(ca, serials, number=2)), CRL_URI), NOW)
    assert fresh == [b.cert.serial_number]
    check = revoked_check(cache, NOW)
    assert check((b.cert, ca.cert)) is not None
    assert check((leaf(ca).cert, ca.cert)) is None


def test_garbage_is_not_a_crl() -> None:
    with pytest.raises(RevocationError, match="not a CRL"):
        parse_crl(b"\x30\x03\x02\x01\x01", CRL_URI)


# -- OCSP ----------------------------------------------------------------------------------


def test_ocsp_request_carries_the_cert_id_and_nonce(ca: Issued) -> None:
    gw = leaf(ca)
    req = ocsp.load_der_ocsp_request(ocsp_request(gw.cert, ca.cert, b"n" * 16))
    assert req.serial_number == gw.cert.serial_number
    assert req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16


@pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
def test_ocsp_statuses(ca: Issued, status: str) -> None:
    gw = leaf(ca)
    data = ocsp_response(ca, gw.cert, status, nonce=b"n" * 16)
    entry = check_ocsp_response(data, gw.cert, ca.cert, b"n" * 16, NOW, OCSP_URI)
    assert entry.status.value == status


def test_ocsp_wrong_nonce_stale_and_foreign_signatures_are_refused(ca: Issued) -> None:
    gw = leaf(ca)
    with pytest.raises(RevocationError, match="nonce does not match"):
        check_ocsp_response(
            ocsp_response(ca, gw.cert, "good", nonce=b"x" * 16), gw.cert, ca.cert, b"n" * 16,
            NOW, OCSP_URI,
        )  # fmt: skip
    # no nonce at all (an RFC 5019 responder): taken while fresh
    entry = check_ocsp_response(
        ocsp_response(ca, gw.cert, "good"), gw.cert, ca.cert, b"n", NOW, "u"
    )
    assert entry.status is Status.GOOD
    stale = ocsp_response(ca, gw.cert, "good", this_update=NOW - 3 * DAY, next_update=NOW - DAY)
    with pytest.raises(RevocationError, match="stale"):
        check_ocsp_response(stale, gw.cert, ca.cert, None, NOW, OCSP_URI)
    other = make_ca(cn="stranger CA")
    stranger = issue(other, "ecdsa-p256", "ocsp.example.net")
    forged = ocsp_response(ca, gw.cert, "good", responder=stranger)
    with pytest.raises(RevocationError, match="signature does not verify"):
        check_ocsp_response(forged, gw.cert, ca.cert, None, NOW, OCSP_URI)
    with pytest.raises(RevocationError, match="does not answer for this certificate"):
        check_ocsp_response(
            ocsp_response(ca, leaf(ca).cert, "good"), gw.cert, ca.cert, None, NOW, OCSP_URI
        )


def test_ocsp_delegated_responder_needs_ocsp_signing(ca: Issued) -> None:
    gw = leaf(ca)
    eku = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
    delegate = issue(ca, "ecdsa-p256", "ocsp.example.net", extra=[eku])
    ok = ocsp_response(ca, gw.cert, "revoked", responder=delegate)
    assert check_ocsp_response(ok, gw.cert, ca.cert, None, NOW, "u").status is Status.REVOKED
    plain = issue(ca, "ecdsa-p256", "ocsp.example.net")
    with pytest.raises(RevocationError, match="signature does not verify"):
        check_ocsp_response(
            ocsp_response(ca, gw.cert, "good", responder=plain), gw.cert, ca.cert, None, NOW, "u"
        )


def test_ocsp_answer_is_cached_until_next_update(ca: Issued) -> None:
    gw = leaf(ca, aia(OCSP_URI), cdp(CRL_URI))
    cache = RevocationCache()
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.PENDING
    asked = {f.kind: f for f in cache.wanted}
    assert set(asked) == {"ocsp", "crl"}
    fetch = asked["ocsp"]
    entry = check_ocsp_response(
        ocsp_response(ca, gw.cert, "good", next_update=NOW + dt.timedelta(hours=1)),
        gw.cert, ca.cert, None, NOW, OCSP_URI,
    )  # fmt: skip
    cache.add_ocsp(fetch, entry, NOW)
    v = cache.status(gw.cert, ca.cert, Sources(), NOW)
    assert (v.status, v.source) == (Status.GOOD, f"ocsp {OCSP_URI}")
    # past nextUpdate the answer is not used (the CRL fetch is still under way)
    later = NOW + dt.timedelta(hours=2)
    assert cache.status(gw.cert, ca.cert, Sources(), later).status is Status.PENDING


def test_configured_responder_replaces_the_aia(ca: Issued) -> None:
    gw = leaf(ca, aia(OCSP_URI))
    cache = RevocationCache()
    cache.status(gw.cert, ca.cert, Sources(ocsp_uris=("http://127.0.0.1:2560/",)), NOW)
    assert [f.uri for f in cache.wanted] == ["http://127.0.0.1:2560/"]


# -- policies --------------------------------------------------------------------------------

# status -> whether strict / ifuri / relaxed accept the certificate
TABLE = {
    Status.GOOD: (True, True, True),
    Status.REVOKED: (False, False, False),
    Status.FAILED: (False, False, True),
    Status.UNKNOWN: (False, True, True),
}


@pytest.mark.parametrize("status", list(TABLE))
def test_policies(ca: Issued, status: Status) -> None:
    """strongSwan's meanings: strict needs a known good status, ifuri fails when a URI
    was there but gave nothing, relaxed fails only on revoked."""
    if status is Status.UNKNOWN:
        gw = leaf(ca)  # no URI at all
        sources = Sources()
    else:
        gw = leaf(ca, cdp(CRL_URI))
        sources = Sources()
    cache = RevocationCache()
    if status is Status.GOOD:
        cache.add_crl(parse_crl(crl_der(make_crl(ca)), CRL_URI), NOW)
    elif status is Status.REVOKED:
        cache.add_crl(parse_crl(crl_der(make_crl(ca, [gw.cert.serial_number])), CRL_URI), NOW)
    elif status is Status.FAILED:
        cache.failed(Fetch("crl", CRL_URI), "connection refused", NOW)
    assert cache.status(gw.cert, ca.cert, sources, NOW).status is status
    for policy, accepted in zip(("strict", "ifuri", "relaxed"), TABLE[status], strict=True):
        if accepted:
            check_path(cache, [gw.cert, ca.cert], policy, sources, NOW)  # type: ignore[arg-type]
        else:
            with pytest.raises(RevocationRefused):
                check_path(cache, [gw.cert, ca.cert], policy, sources, NOW)  # type: ignore[arg-type]


def test_pending_asks_for_every_certificate_of_the_path(ca: Issued) -> None:
    sub = make_ca("ecdsa-p256", "pike sub CA", issuer=ca)
    gw = issue(sub, "ecdsa-p256", "gw.example.net", extra=[cdp("http://192.0.2.9/sub.crl")])
    cache = RevocationCache()
    with pytest.raises(RevocationPending):
        check_path(cache, [gw.cert, sub.cert, ca.cert], "ifuri", Sources(), NOW)
    assert [f.uri for f in cache.wanted] == ["http://192.0.2.9/sub.crl"]
    # a refusal known already does not wait for the rest
    with pytest.raises(RevocationRefused, match="pike sub CA"):
        check_path(cache, [gw.cert, sub.cert, ca.cert], "strict", Sources(), NOW)
    # sub has no URI: under strict it fails once the leaf's status is in
    cache.add_crl(parse_crl(crl_der(make_crl(sub)), "http://192.0.2.9/sub.crl"), NOW)
    with pytest.raises(RevocationRefused, match=r"pike sub CA.*revocation = strict"):
        check_path(cache, [gw.cert, sub.cert, ca.cert], "strict", Sources(), NOW)
    check_path(cache, [gw.cert, sub.cert, ca.cert], "ifuri", Sources(), NOW)


def test_crl_files_of_every_connection_are_kept(tmp_path: Path, ca: Issued) -> None:
    """load_checked preloads one connection at a time: each keeps its CRL files, and a
    file no longer configured goes at the next load."""
    from ikev2.x509gen import write
    from pike.daemon.configfile import load_checked
    from pike.sa.credentials import CredentialStore

    write(tmp_path, "ca", ca)
    write(tmp_path, "gw", leaf(ca))
    for name in ("a", "b"):
        (tmp_path / f"{name}.crl").write_bytes(crl_der(make_crl(ca)))

    def conn(name: str, last: int, crl: str) -> str:
        return (
            f'[connections.{name}]\nlocal_addrs = ["192.0.2.1"]\n'
            f'remote_addrs = ["192.0.2.{last}"]\nproposals = ["aes128gcm16-prfsha256-x25519"]\n'
            'local = { auth = "pubkey", certs = ["gw.pem"], key = "gw.key" }\n'
            f'remote = {{ auth = "pubkey", cacerts = ["ca.pem"], crls = ["{crl}"] }}\n'
            f"[connections.{name}.children.lan]\n"
            'local_ts = ["10.1.0.0/24"]\nremote_ts = ["10.2.0.0/24"]\n'
        )

    path = tmp_path / "pike.toml"
    path.write_text(conn("a", 2, "a.crl") + conn("b", 3, "b.crl"))
    store = CredentialStore()
    load_checked(str(path), probe=False, store=store)
    assert sorted(store.revocation.crls) == [str(tmp_path / "a.crl"), str(tmp_path / "b.crl")]
    path.write_text(conn("a", 2, "a.crl"))
    load_checked(str(path), probe=False, store=store)
    assert sorted(store.revocation.crls) == [str(tmp_path / "a.crl")]


def test_authority_uris_apply_to_what_that_ca_issued(ca: Issued) -> None:
    """[authorities.NAME]: a CA's crl_uris and ocsp_uris for certificates without CDP or
    AIA, not for another CA's; the connection's OCSP responder still wins."""
    other_ca = make_ca(cn="other CA")
    gw, stranger = leaf(ca), leaf(other_ca)
    src = Sources(authorities=(Authority(keyid(ca.cert), (CRL_URI,), (OCSP_URI,)),))
    cache = RevocationCache()
    assert cache.status(gw.cert, ca.cert, src, NOW).status is Status.PENDING
    assert [(f.kind, f.uri) for f in cache.wanted] == [("ocsp", OCSP_URI), ("crl", CRL_URI)]
    assert cache.status(stranger.cert, other_ca.cert, src, NOW).status is Status.UNKNOWN
    cache.wanted.clear()
    cache.failed(Fetch("ocsp", OCSP_URI, gw.cert, ca.cert), "refused", NOW)
    cache.add_crl(parse_crl(crl_der(make_crl(ca, [gw.cert.serial_number])), CRL_URI), NOW)
    v = cache.status(gw.cert, ca.cert, src, NOW)
    assert v.status is Status.REVOKED and v.source == f"crl {CRL_URI}"
    own = Sources(ocsp_uris=("http://192.0.2.7/",), authorities=src.authorities)
    fresh = RevocationCache()
    fresh.status(gw.cert, ca.cert, own, NOW)
    assert [f.uri for f in fresh.wanted] == ["http://192.0.2.7/", CRL_URI]


DELTA_URI = "http://192.0.2.9/ca-delta.crl"


def test_delta_crl_revokes_and_keeps_a_stale_base_current(ca: Issued) -> None:
    """RFC 5280 §5.2.4: a complete CRL published rarely (stale here) and a fresh delta
    CRL that updates it; the certificate's freshestCRL says where the delta is."""
    gw, other = leaf(ca, cdp(CRL_URI), freshest(DELTA_URI)), leaf(ca, cdp(CRL_URI))
    cache = RevocationCache()
    base = make_crl(ca, [], number=10, this_update=NOW - 3 * DAY, next_update=NOW - DAY)
    cache.add_crl(parse_crl(crl_der(base), CRL_URI), NOW)
    # the base alone is stale; the delta named by the certificate is asked for
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.PENDING
    assert {f.uri for f in cache.wanted} == {DELTA_URI, CRL_URI}
    cache.wanted.clear()
    cache.inflight.clear()
    delta = parse_crl(
        crl_der(make_crl(ca, [gw.cert.serial_number], number=12, delta_of=10)), DELTA_URI
    )
    assert delta.delta_base == 10 and delta.applies_to(cache.crls[CRL_URI])
    assert cache.add_crl(delta, NOW) == [gw.cert.serial_number]  # for the SA teardown
    v = cache.status(gw.cert, ca.cert, Sources(), NOW)
    assert v.status is Status.REVOKED and v.source == f"crl {DELTA_URI}"
    assert revoked_check(cache, NOW)((gw.cert, ca.cert)) is not None
    # a certificate without freshestCRL: the stale base is current through the delta
    v = cache.status(other.cert, ca.cert, Sources(crl_uris=(DELTA_URI,)), NOW)
    assert v.status is Status.GOOD and v.source == f"crl {CRL_URI} + delta {DELTA_URI}"
    v = cache.status(other.cert, ca.cert, Sources(), NOW)  # it does not know the delta
    assert v.status is Status.FAILED and "stale" in v.detail


def test_delta_crl_named_by_the_base_and_releasing_a_hold(ca: Issued) -> None:
    held, gw = leaf(ca, cdp(CRL_URI)), leaf(ca, cdp(CRL_URI))
    cache = RevocationCache()
    base = make_crl(ca, [held.cert.serial_number], number=20, freshest=DELTA_URI)
    cache.add_crl(parse_crl(crl_der(base), CRL_URI), NOW)
    assert cache.status(held.cert, ca.cert, Sources(), NOW).status is Status.REVOKED
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.GOOD
    assert [f.uri for f in cache.wanted] == [DELTA_URI]  # the base's freshestCRL
    delta = make_crl(ca, [], number=21, delta_of=20, removed=[held.cert.serial_number])
    cache.add_crl(parse_crl(crl_der(delta), DELTA_URI), NOW)
    assert cache.status(held.cert, ca.cert, Sources(), NOW).status is Status.GOOD
    assert revoked_check(cache, NOW)((held.cert, ca.cert)) is None
    # a delta for an older base (number 30 > 20: not this base's) takes nothing off
    other_base = RevocationCache()
    other_base.add_crl(parse_crl(crl_der(base), CRL_URI), NOW)
    late = make_crl(ca, [], number=31, delta_of=30, removed=[held.cert.serial_number])
    other_base.add_crl(parse_crl(crl_der(late), DELTA_URI), NOW)
    assert other_base.status(held.cert, ca.cert, Sources(), NOW).status is Status.REVOKED


def test_delta_crl_signed_by_another_ca_or_without_number_is_not_used(ca: Issued) -> None:
    gw = leaf(ca, cdp(CRL_URI), freshest(DELTA_URI))
    forger = make_ca(cn="forger")
    cache = RevocationCache()
    cache.add_crl(parse_crl(crl_der(make_crl(ca, number=5)), CRL_URI), NOW)
    forged = make_crl(ca, [gw.cert.serial_number], number=6, delta_of=5, signer=forger)
    cache.add_crl(parse_crl(crl_der(forged), DELTA_URI), NOW)
    assert cache.status(gw.cert, ca.cert, Sources(), NOW).status is Status.GOOD
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW - DAY)
        .next_update(NOW + DAY)
        .add_extension(x509.DeltaCRLIndicator(5), True)
    )
    bare = b.sign(ca.key, hashes.SHA256())
    with pytest.raises(RevocationError, match="delta CRL without a CRL number"):
        parse_crl(crl_der(bare), DELTA_URI)
