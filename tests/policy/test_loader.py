"""Config loader: the issue's example, and one test per class of error with its exact text."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pike.policy.loader import ConfigError, load_config
from pike.wire.constants import IdType

EXAMPLE = (
    Path(__file__).parents[1] / "fixtures" / "issue2-example.toml"
).read_text()  # issue 2, as written
PSK = "0sv4Qn9-example-only-psk-replace-me-7Kd2"


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "pike.toml"
    p.write_text(text)
    return str(p)


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    # The tmp path holds the test id (which may hold the PSK): compare without it.
    msg = str(info.value).replace(path, "F")
    assert PSK not in msg and "v4Qn9" not in msg
    return msg


def test_example_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE))
    assert cfg.daemon.control_socket == "/run/pike/pike.sock"
    hq = cfg.connections["hq"]
    assert hq.version == 2
    assert hq.local_addrs == ("192.0.2.1",)
    assert hq.remote_addrs == ("192.0.2.2",)
    assert len(hq.proposals) == 2
    assert hq.local.auth == "psk" and hq.local.id is not None
    assert hq.local.id.id_type == IdType.ID_FQDN
    assert hq.local.id.data == b"branch1.example.net"
    assert hq.remote.id is not None and hq.remote.id.text == "hq.example.net"
    lan = hq.child("lan")
    assert lan is not None
    assert [str(ts) for ts in lan.local_ts] == ["10.1.0.0/24"]
    assert [str(ts) for ts in lan.remote_ts] == ["10.2.0.0/24"]
    assert len(lan.esp_proposals) == 2
    assert lan.mode == "tunnel" and lan.start_action == "start"
    # "v4Qn9-..." is not strict base64 ('-'): read the way strongSwan reads it, 9 groups of
    # four characters, '-' as 62 (tests/interop checks the bytes against charon's own).
    key = cfg.psk_for("branch1.example.net", "hq.example.net")
    assert key is not None and len(key) == 27 and key[:3] == bytes.fromhex("bf8427")
    assert hq.source_line == 4


def test_secret_never_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE))
    assert PSK not in repr(cfg) and "v4Qn9" not in repr(cfg)
    assert PSK not in str(cfg.secrets[0])


def test_secret_encodings(tmp_path: Path) -> None:
    b64 = base64.b64encode(b"\x01\x02binary").decode()
    text = EXAMPLE.replace(PSK, "0s" + b64)
    assert load_config(write(tmp_path, text)).secrets[0].secret == b"\x01\x02binary"
    text = EXAMPLE.replace(PSK, "0x00ff10")
    assert load_config(write(tmp_path, text)).secrets[0].secret == b"\x00\xff\x10"
    text = EXAMPLE.replace(PSK, "0xnot-hex")
    assert load_config(write(tmp_path, text)).secrets[0].secret == b"0xnot-hex"
    text = EXAMPLE.replace(PSK, "0sYWI=")  # padding shortens the last group, as in strongSwan
    assert load_config(write(tmp_path, text)).secrets[0].secret == b"ab"


def test_secret_id_string_is_one_identity(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'id = ["branch1.example.net", "hq.example.net"]', 'id = "C=CH, O=x, CN=gw"'
    ).replace('id = "hq.example.net"', 'id = "C=CH, O=x, CN=gw"')
    cfg = load_config(write(tmp_path, text))
    assert cfg.secrets[0].ids == ("C=CH, O=x, CN=gw",)


def test_bad_names(tmp_path: Path) -> None:
    text = EXAMPLE.replace("[connections.hq.children.lan]", '[connections.hq.children."l.an"]')
    assert error_of(tmp_path, text) == (
        "F:12: connections.hq.children.\"l.an\": names may only use letters, digits, '-' and '_'"
    )


def test_secret_file(tmp_path: Path) -> None:
    (tmp_path / "hq.psk").write_text("from-a-file\n")
    text = EXAMPLE.replace(f'secret = "{PSK}"', 'secret_file = "hq.psk"')
    assert load_config(write(tmp_path, text)).secrets[0].secret == b"from-a-file"


def test_identity_types() -> None:
    from pike.policy.identity import parse_identity

    assert parse_identity("192.0.2.1").id_type == IdType.ID_IPV4_ADDR
    assert parse_identity("192.0.2.1").data == bytes([192, 0, 2, 1])
    assert parse_identity("2001:db8::1").id_type == IdType.ID_IPV6_ADDR
    assert parse_identity("user@example.net").id_type == IdType.ID_RFC822_ADDR
    fq = parse_identity("@hq.example.net")
    assert (fq.id_type, fq.data, fq.text) == (IdType.ID_FQDN, b"hq.example.net", "hq.example.net")
    dn = parse_identity("C=CH, O=x, CN=gw")
    assert dn.id_type == IdType.ID_DER_ASN1_DN
    assert dn.text == "C=CH, O=x, CN=gw"
    from cryptography import x509

    # Written order is DER order (strongSwan), so the first RDN is C.
    name = x509.Name.from_rfc4514_string("CN=gw,O=x,C=CH")
    assert dn.data == name.public_bytes()
    kid = parse_identity("keyid:#0102")
    assert (kid.id_type, kid.data) == (IdType.ID_KEY_ID, b"\x01\x02")


def test_defaults_local_id_is_first_address(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'local = { auth = "psk", id = "branch1.example.net" }', 'local = { auth = "psk" }'
    )
    text = text.replace('"branch1.example.net", ', '"192.0.2.1", ')
    hq = load_config(write(tmp_path, text)).connections["hq"]
    assert hq.local.id is not None and hq.local.id.id_type == IdType.ID_IPV4_ADDR
    assert hq.dpd_delay == 0 and hq.local_port == 500


def test_responder_addresses_any_and_subnets(tmp_path: Path) -> None:
    text = (
        EXAMPLE.replace('local_addrs = ["192.0.2.1"]\n', "")
        .replace(
            'remote_addrs = ["192.0.2.2"]',
            'remote_addrs = ["192.0.2.0/24", "2001:db8::/32", "%any"]',
        )
        .replace('start_action = "start"', 'start_action = "none"')
    )
    hq = load_config(write(tmp_path, text)).connections["hq"]
    assert hq.local_addrs == ()
    assert hq.remote_addrs == ("192.0.2.0/24", "2001:db8::/32", "%any")
    assert hq.local.id is not None and hq.local.id.text == "branch1.example.net"
    # Without local_addrs and without an id, the address in use is the identity.
    text = text.replace(', id = "branch1.example.net"', "")
    assert load_config(write(tmp_path, text)).connections["hq"].local.id is None


def test_all_documented_keys(tmp_path: Path) -> None:
    text = (
        EXAMPLE.replace(
            "[connections.hq]\n",
            "[connections.hq]\nlocal_port = 4500\nremote_port = 4501\nencap = true\n"
            'dpd_delay = "30s"\ndpd_action = "restart"\nkeyingtries = 0\nrekey_time = "4h"\n'
            "reauth_time = 0\naggressive = false\n",
        )
        .replace(
            'mode = "tunnel"\n',
            'mode = "tunnel"\nrekey_time = "1h"\nlife_time = "66m"\nrand_time = 60\n'
            'hw_offload = "auto"\nreplay_window = 1024\n',
        )
        .replace(
            "[daemon]\n",
            '[daemon]\nike_port = 1500\nnatt_port = 14500\nretransmit_timeout = "2s"\n'
            'retransmit_base = 1.5\nretransmit_tries = 3\nlog_level = "debug"\n',
        )
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.daemon.ike_port == 1500 and cfg.daemon.natt_port == 14500
    assert cfg.daemon.retransmit_timeout == 2.0 and cfg.daemon.log_level == "debug"
    hq = cfg.connections["hq"]
    assert (hq.dpd_delay, hq.dpd_action, hq.rekey_time, hq.encap) == (30, "restart", 14400, True)
    lan = hq.children[0]
    assert (lan.rekey_time, lan.life_time, lan.rand_time) == (3600, 3960, 60)
    assert (lan.hw_offload, lan.replay_window) == ("auto", 1024)


@pytest.mark.parametrize("version", [1, 2])
def test_rekey_time_defaults_to_0_with_reauth_time(tmp_path: Path, version: int) -> None:
    """strongSwan's rule (swanctl.opt): with reauth_time, rekey_time defaults to zero;
    both set explicitly keeps both. IKEv1's ISAKMP SA then lives until reauth_time."""

    def hq(keys: str) -> tuple[int, int, int]:
        text = EXAMPLE.replace("version = 2\n", f"version = {version}\n{keys}", 1)
        c = load_config(write(tmp_path, text)).connections["hq"]
        return c.rekey_time, c.reauth_time, c.isakmp_lifetime

    assert hq("") == (14400, 0, 14400)
    assert hq('reauth_time = "1h"\n') == (0, 3600, 3600)
    assert hq('reauth_time = "1h"\nrekey_time = "4h"\n') == (14400, 3600, 3600)
    assert hq('rekey_time = "2h"\n') == (7200, 0, 7200)


def test_traffic_selector_with_protocol_and_port(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'remote_ts = ["10.2.0.0/24"]',
        'remote_ts = ["10.2.0.0/24[udp/53]", "10.2.0.5", "::/0[tcp/1000-2000]"]',
    )
    ts = load_config(write(tmp_path, text)).connections["hq"].children[0].remote_ts
    assert (ts[0].protocol, ts[0].start_port, ts[0].end_port) == (17, 53, 53)
    assert str(ts[1]) == "10.2.0.5/32"
    assert (ts[2].protocol, ts[2].start_port, ts[2].end_port) == (6, 1000, 2000)


# -- one test per class of error, exact text --------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # refused DH group, from the crypto parser
            '"aes256-sha256-modp3072"]',
            '"aes256-sha256-modp1024"]',
            "F:8: connections.hq.proposals[1]: ",
        ),
        (
            "version = 2",
            "version = 3",
            "F:5: connections.hq.version: 3 is not 1 (IKEv1) or 2 (IKEv2)",
        ),
        (
            "version = 2",
            'version = "2"',
            "F:5: connections.hq.version: must be an integer, not a string",
        ),
        ("version = 2", "verison = 2", "F:5: connections.hq.verison: unknown key (misspelt?)"),
        (
            "version = 2",
            'version = 2\ndpd_timeout = "150s"',
            "F:6: connections.hq.dpd_timeout: "
            "IKEv1 only (IKEv2 gives up after its retransmissions)",
        ),
        (
            'local = { auth = "psk", id = "branch1.example.net" }',
            'local = { auth = "psk", idd = "branch1.example.net" }',
            "F:9: connections.hq.local.idd: unknown key (misspelt?)",
        ),
        (
            'local = { auth = "psk", id = "branch1.example.net" }',
            'local = { auth = "pks", id = "branch1.example.net" }',
            "F:9: connections.hq.local.auth: 'pks' is not one of psk, pubkey",
        ),
        (
            'remote_addrs = ["192.0.2.2"]',
            'remote_addrs = ["192.0.2.2", "192.0.2.300"]',
            "F:7: connections.hq.remote_addrs[1]: '192.0.2.300' is not an IPv4/IPv6 address,"
            " a DNS name, a subnet or %any (responder only)",
        ),
        (
            'remote_addrs = ["192.0.2.2"]',
            'remote_addrs = ["hq_gw.example.net"]',
            "F:7: connections.hq.remote_addrs[0]: 'hq_gw.example.net' is not an IPv4/IPv6"
            " address, a DNS name, a subnet or %any (responder only)",
        ),
        (
            'remote_addrs = ["192.0.2.2"]',
            'remote_addrs = ["%any"]',
            "F:17: connections.hq.children.lan.start_action: start needs a remote address"
            " (%any and subnets are responder only)",
        ),
        (
            'local_ts = ["10.1.0.0/24"]',
            'local_ts = ["10.1.0.1/24"]',
            "F:13: connections.hq.children.lan.local_ts[0]: 10.1.0.1/24 has host bits set"
            " (did you mean 10.1.0.0/24?)",
        ),
        (
            'remote_ts = ["10.2.0.0/24"]',
            'remote_ts = ["10.2.0.0/24[udpp/53]"]',
            "F:14: connections.hq.children.lan.remote_ts[0]: unknown protocol 'udpp'"
            " (tcp, udp, icmp, a number 0-255 or %any)",
        ),
        (
            'mode = "tunnel"',
            'mode = "tunel"',
            "F:16: connections.hq.children.lan.mode: 'tunel' is not one of tunnel, transport",
        ),
        (
            'start_action = "start"',
            'start_action = "start"\nclose_action = "restart"',
            "F:18: connections.hq.children.lan.close_action:"
            " 'restart' is not one of none, trap, start",
        ),
        (
            'start_action = "start"',
            'start_action = "route"',
            "F:17: connections.hq.children.lan.start_action:"
            " 'route' is not one of none, start, trap",
        ),
        (
            "[connections.hq]\n",
            '[connections.hq]\ndpd_delay = "30x"\n',
            "F:5: connections.hq.dpd_delay: '30x' is not a duration (like 30s, 5m, 1h, 1d)",
        ),
        (
            'id = ["branch1.example.net", "hq.example.net"]',
            'id = ["a.example.net", "b.example.net"]',
            "F:9: connections.hq.local.auth: psk, but no [secrets] entry has id"
            " 'branch1.example.net' or 'hq.example.net'",
        ),
        (
            'id = ["branch1.example.net", "hq.example.net"]',
            'id = ["branch1.example.net", "CN"]\nsecret_file = "x"',
            "F:21: secrets.ike-hq.secret_file: give either secret or secret_file, not both",
        ),
        (
            f'secret = "{PSK}"',
            f'secret = "{PSK}"\nsecrett = "{PSK}"',
            "F:22: secrets.ike-hq.secrett: unknown key (misspelt?)",
        ),
        (
            f'secret = "{PSK}"',
            "secret = 12345",
            "F:21: secrets.ike-hq.secret: must be a string, not an integer",
        ),
        (
            'remote = { auth = "psk", id = "hq.example.net" }',
            'remote = { auth = "psk", id = "C=CH, Oops" }',
            "F:10: connections.hq.remote.id: 'Oops' in DN 'C=CH, Oops' is not TYPE=value",
        ),
        (
            "[daemon]\n",
            "[daemon]\nike_port = 70000\n",
            "F:2: daemon.ike_port: 70000 is out of range 1..65535",
        ),
        ("[daemon]\n", "[deamon]\n", "F:1: deamon: unknown key (misspelt?)"),
        (
            'esp_proposals = ["aes128gcm16", "aes256-sha256"]',
            "esp_proposals = []",
            "F:15: connections.hq.children.lan.esp_proposals: must list at least one proposal",
        ),
        (
            'local_addrs = ["192.0.2.1"]\n',
            'local_addrs = ["192.0.2.1", "host.example.net"]\n',
            "F:6: connections.hq.local_addrs[1]: 'host.example.net' is not an IPv4/IPv6 address"
            " or %any",
        ),
        ('mode = "tunnel"', "mode = tunnel", "F:16: TOML syntax error: Invalid value (column 8)"),
    ],
)
def test_errors(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in EXAMPLE
    msg = error_of(tmp_path, EXAMPLE.replace(old, new, 1))
    if expected.endswith(": "):
        assert msg.startswith(expected), msg
    else:
        assert msg == expected


def test_remote_addrs_may_be_a_dns_name(tmp_path: Path) -> None:
    named = EXAMPLE.replace('remote_addrs = ["192.0.2.2"]', 'remote_addrs = ["VPN.Example.NET."]')
    cfg = load_config(write(tmp_path, named))
    hq = cfg.connections["hq"]
    assert hq.remote_addrs == ("vpn.example.net",) and hq.keyingtries == 0  # a start child
    trap = named.replace('start_action = "start"', 'start_action = "trap"')
    assert error_of(tmp_path, trap) == (
        "F:17: connections.hq.children.lan.start_action: trap needs an IP address in"
        " remote_addrs, not a name"
    )
    no_id = named.replace(
        'remote = { auth = "psk", id = "hq.example.net" }', 'remote = { auth = "psk" }'
    )
    assert error_of(tmp_path, no_id) == (
        "F:10: connections.hq.remote.id: missing: with a DNS name in remote_addrs"
        " (vpn.example.net) set the peer's id"
    )
    dynamic = named.replace('remote_ts = ["10.2.0.0/24"]', 'remote_ts = ["dynamic"]')
    assert "dynamic needs remote_addrs to name one address" in error_of(tmp_path, dynamic)


def test_keyingtries_default_follows_start_action(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, EXAMPLE)).connections["hq"].keyingtries == 0
    none = EXAMPLE.replace('start_action = "start"', 'start_action = "none"')
    assert load_config(write(tmp_path, none)).connections["hq"].keyingtries == 1


def test_dynamic_ts_needs_an_address(tmp_path: Path) -> None:
    text = EXAMPLE.replace('local_addrs = ["192.0.2.1"]\n', "").replace(
        'local_ts = ["10.1.0.0/24"]\n', ""
    )
    assert error_of(tmp_path, text) == (
        "F:11: connections.hq.children.lan.local_ts: dynamic needs local_addrs to name one address"
    )


def test_refused_group_message(tmp_path: Path) -> None:
    msg = error_of(tmp_path, EXAMPLE.replace("modp3072", "modp1024"))
    assert msg.startswith("F:8: connections.hq.proposals[1]: ")
    assert "modp1024" in msg


def test_multiline_array_element_line(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"]',
        'proposals = [\n  "aes128gcm16-prfsha256-x25519",\n'
        '  # comment\n  "aes256-sha256-bogus",\n]',
    )
    msg = error_of(tmp_path, text)
    assert msg.startswith("F:11: connections.hq.proposals[1]: "), msg


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/pike.toml")
    assert str(info.value) == "/nonexistent/pike.toml: cannot read: No such file or directory"


def test_secret_errors_never_echo_the_secret(tmp_path: Path) -> None:
    text = EXAMPLE.replace(f'secret = "{PSK}"', f'secret = ["{PSK}"]')
    msg = error_of(tmp_path, text)
    assert msg == "F:21: secrets.ike-hq.secret: must be a string, not an array"
    msg = error_of(tmp_path, EXAMPLE.replace(PSK, "0x"))
    assert msg == "F:21: secrets.ike-hq.secret: the secret is empty"


def test_pre_authentication_limits(tmp_path: Path) -> None:
    """The daemon settings of pike.sa.admission (issue 13), with strongSwan's defaults."""
    cfg = load_config(write(tmp_path, EXAMPLE))
    d = cfg.daemon
    assert (d.max_packet, d.cookie_threshold, d.block_threshold) == (10000, 10, 5)
    assert (d.half_open_max, d.ike_sa_max, d.init_rate) == (1000, 20000, 0)
    text = EXAMPLE.replace(
        "[daemon]\n",
        "[daemon]\nmax_packet = 20000\ncookie_threshold = 0\nblock_threshold = 2\n"
        "half_open_max = 50\nike_sa_max = 100\ninit_rate = 0\n",
    )
    d = load_config(write(tmp_path, text)).daemon
    assert (d.max_packet, d.cookie_threshold, d.block_threshold) == (20000, 0, 2)
    assert (d.half_open_max, d.ike_sa_max, d.init_rate) == (50, 100, 0)
    with pytest.raises(ConfigError, match="max_packet"):
        load_config(write(tmp_path, EXAMPLE.replace("[daemon]\n", "[daemon]\nmax_packet = 100\n")))


# -- post-quantum (RFC 9370, RFC 8784) ---------------------------------------------------------

PPK_SECRET = '\n[secrets.ppk-q]\nid = "pq-1"\nsecret = "0x' + "3c" * 32 + '"\n'


def test_ppk_keys_and_secret(tmp_path: Path) -> None:
    text = EXAMPLE.replace("version = 2\n", 'version = 2\nppk_id = "pq-1"\nppk_required = true\n')
    config = load_config(write(tmp_path, text + PPK_SECRET))
    hq = config.connections["hq"]
    assert (hq.ppk_id, hq.ppk_required) == ("pq-1", True)
    assert config.ppk_for("pq-1") == bytes([0x3C] * 32)
    # a PPK is never a PSK, whatever its ids
    assert config.psk_for("pq-1", "hq.example.net") != config.ppk_for("pq-1")
    assert "3c3c" not in repr(config) and "3c3c" not in str(config.secrets)


@pytest.mark.parametrize(
    ("old", "new", "extra", "expected"),
    [
        (
            "version = 2\n",
            'version = 2\nppk_id = "pq-2"\n',
            PPK_SECRET,
            "F:6: connections.hq.ppk_id: no [secrets.ppk...] entry has id 'pq-2'",
        ),
        (
            "version = 2\n",
            "version = 2\nppk_required = true\n",
            "",
            "F:6: connections.hq.ppk_required: needs ppk_id: the PPK this connection requires",
        ),
        (
            "version = 2\n",
            'version = 1\nppk_id = "pq-1"\n',
            PPK_SECRET,
            "F:6: connections.hq.ppk_id: IKEv2 only (RFC 8784)",
        ),
        (
            '"aes128gcm16-prfsha256-x25519", "aes256-sha256-modp3072"]',
            '"aes256-sha256-modp3072-ke1_mlkem768"]',
            "",
            "F:8: connections.hq.proposals: ke1_mlkem768 is IKEv2 only (RFC 9370 / ML-KEM);"
            " IKEv1 (version = 1) has one Diffie-Hellman group",
        ),
        (
            'esp_proposals = ["aes128gcm16", "aes256-sha256"]',
            'esp_proposals = ["aes256-sha256-mlkem768"]',
            "",
            "F:15: connections.hq.children.lan.esp_proposals: mlkem768 is IKEv2 only"
            " (RFC 9370 / ML-KEM); IKEv1 (version = 1) has one Diffie-Hellman group",
        ),
    ],
)
def test_pq_errors(tmp_path: Path, old: str, new: str, extra: str, expected: str) -> None:
    text = EXAMPLE.replace(old, new, 1) + extra
    if "ke1_" in new or "mlkem" in new:
        text = text.replace("version = 2\n", "version = 1\n")
    assert error_of(tmp_path, text) == expected


def test_key_helper_is_spawn_off_or_a_socket_path(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, EXAMPLE)).daemon.key_helper == "spawn"
    for value in ("off", "/run/pike-keyd/keyd.sock"):
        text = EXAMPLE.replace("[daemon]\n", f'[daemon]\nkey_helper = "{value}"\n')
        assert load_config(write(tmp_path, text)).daemon.key_helper == value
    path = write(tmp_path, EXAMPLE.replace("[daemon]\n", '[daemon]\nkey_helper = "yes"\n'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f'{path}:2: daemon.key_helper: "spawn", "off" or the absolute path of its socket'
    )
