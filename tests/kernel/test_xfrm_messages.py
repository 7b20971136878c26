"""XFRM message layouts and encodings (no kernel needed)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Network, ip_address
from pathlib import Path

import pytest

from pike.crypto.ids import EncrId, IntegId
from pike.kernel import xfrm_messages as xm
from pike.kernel.interface import KernelError
from pike.kernel.netlink import Fields, struct_size
from pike.kernel.xfrm_algorithms import algorithm_attrs
from pike.kernel.xfrm_selectors import Selector, port_blocks, sa_selector, selectors
from pike.policy.ts import TrafficSelector

Require = Callable[[bool, str], None]

SIZES = {
    "xfrm_usersa_info": (xm.xfrm_usersa_info.fields, 224),
    "xfrm_usersa_id": (xm.xfrm_usersa_id.fields, 24),
    "xfrm_userspi_info": (xm.xfrm_userspi_info.fields, 232),
    "xfrm_userpolicy_info": (xm.xfrm_userpolicy_info.fields, 168),
    "xfrm_userpolicy_id": (xm.xfrm_userpolicy_id.fields, 64),
    "xfrm_user_tmpl": (xm.USER_TMPL, 64),
    "xfrm_user_migrate": (xm.USER_MIGRATE, 76),
    "xfrm_encap_tmpl": (xm.ENCAP_TMPL, 24),
    "xfrm_user_offload": (xm.USER_OFFLOAD, 8),
    "xfrm_replay_state_esn": (xm.REPLAY_STATE_ESN, 24),
    "xfrm_algo_aead": (xm.ALGO_AEAD, 72),
    "xfrm_user_acquire": (xm.xfrm_user_acquire.fields, 280),
    "xfrm_user_expire": (xm.xfrm_user_expire.fields, 232),
    "xfrm_selector": (xm.SELECTOR, 56),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_struct_sizes(name: str) -> None:
    fields, size = SIZES[name]
    assert struct_size(fields) == size


def _offset(fields: Fields, name: str) -> int:
    total = 0
    for field, fmt in fields:
        if field == name:
            return total
        total += struct.calcsize(fmt)
    raise KeyError(name)


OFFSETS = [
    ("xfrm_usersa_info", "id.spi", xm.USERSA_INFO, "id_spi"),
    ("xfrm_usersa_info", "saddr", xm.USERSA_INFO, "saddr"),
    ("xfrm_usersa_info", "lft", xm.USERSA_INFO, "lft_soft_byte_limit"),
    ("xfrm_usersa_info", "curlft.use_time", xm.USERSA_INFO, "cur_use_time"),
    ("xfrm_usersa_info", "reqid", xm.USERSA_INFO, "reqid"),
    ("xfrm_usersa_info", "flags", xm.USERSA_INFO, "flags"),
    ("xfrm_usersa_info", "sel.ifindex", xm.USERSA_INFO, "sel_ifindex"),
    ("xfrm_userpolicy_info", "priority", xm.xfrm_userpolicy_info.fields, "priority"),
    ("xfrm_userpolicy_info", "dir", xm.xfrm_userpolicy_info.fields, "dir"),
    ("xfrm_user_tmpl", "saddr", xm.USER_TMPL, "saddr"),
    ("xfrm_user_tmpl", "mode", xm.USER_TMPL, "mode"),
    ("xfrm_user_tmpl", "aalgos", xm.USER_TMPL, "aalgos"),
    ("xfrm_user_migrate", "reqid", xm.USER_MIGRATE, "reqid"),
    ("xfrm_user_migrate", "new_family", xm.USER_MIGRATE, "new_family"),
    ("xfrm_encap_tmpl", "encap_oa", xm.ENCAP_TMPL, "encap_oa"),
    ("xfrm_user_acquire", "policy", xm.xfrm_user_acquire.fields, "pol_sel_daddr"),
    ("xfrm_user_acquire", "seq", xm.xfrm_user_acquire.fields, "seq"),
    ("xfrm_user_expire", "hard", xm.xfrm_user_expire.fields, "hard"),
    ("xfrm_userspi_info", "min", xm.xfrm_userspi_info.fields, "min"),
]


def test_layout_matches_system_header(tmp_path: Path, require: Require) -> None:
    """Cross-check sizes and offsets against <linux/xfrm.h> with the C compiler."""
    header = Path("/usr/include/linux/xfrm.h")
    require(shutil.which("cc") is not None, "no C compiler (tests/run installs gcc)")
    require(header.exists(), "no linux/xfrm.h (tests/run installs linux-libc-dev)")
    lines = [f'printf("{n} %zu\\n", sizeof(struct {n}));' for n in SIZES if n != "xfrm_selector"]
    lines += [f'printf("{s}.{m} %zu\\n", offsetof(struct {s}, {m}));' for s, m, _, _ in OFFSETS]
    src = tmp_path / "sizes.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/xfrm.h>\n"
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n"
    )
    subprocess.run(["cc", "-o", str(tmp_path / "sizes"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "sizes")], capture_output=True, text=True, check=True)
    c = dict(line.rsplit(" ", 1) for line in out.stdout.splitlines())
    for name in SIZES:
        if name != "xfrm_selector":
            assert int(c[name]) == struct_size(SIZES[name][0]), name
    for s, m, fields, ours in OFFSETS:
        assert int(c[f"{s}.{m}"]) == _offset(fields, ours), f"{s}.{m}"


def test_sa_message_encoding() -> None:
    msg = xm.xfrm_usersa_info()
    msg.update(id_spi=0xC0000001, id_proto=50, family=2, id_daddr=bytes([192, 0, 2, 2]))
    key = bytes(range(20))
    msg["attrs"] = [
        *algorithm_attrs(EncrId.AES_GCM_16, key, IntegId.NONE, b""),
        ("XFRMA_ENCAP", {"encap_type": 2, "encap_sport": 4500, "encap_dport": 4501}),
    ]
    data = msg.encode(xm.XFRM_MSG_NEWSA)
    body = data[16:]
    assert body[56 + 16 : 56 + 20] == bytes.fromhex("c0000001")  # SPI in network order
    assert body[56:60] == bytes([192, 0, 2, 2])
    nla = body[224:]
    length, kind = struct.unpack_from("HH", nla)
    assert (length, kind) == (4 + 72 + 20, xm.XFRMA_ALG_AEAD)
    assert nla[4:21] == b"rfc4106(gcm(aes))" and nla[21:68] == bytes(47)
    assert struct.unpack_from("II", nla, 68) == (160, 128)
    assert nla[76:96] == key
    encap = nla[96:]
    assert struct.unpack_from("HH", encap) == (28, xm.XFRMA_ENCAP)
    assert struct.unpack_from("=H", encap, 4) == (2,)
    assert struct.unpack_from(">HH", encap, 6) == (4500, 4501)  # network order
    # and it decodes back
    back = xm.xfrm_usersa_info.decode(body)
    assert back["id_spi"] == 0xC0000001
    assert back.get_attr("XFRMA_ALG_AEAD")["alg_key"] == key


def test_offload_and_if_id_attributes() -> None:
    msg = xm.xfrm_usersa_info()
    msg["attrs"] = [
        ("XFRMA_OFFLOAD_DEV", {"ifindex": 3, "flags": xm.XFRM_OFFLOAD_INBOUND}),
        ("XFRMA_IF_ID", 7),
    ]
    data = msg.encode(xm.XFRM_MSG_NEWSA)
    nla = data[16 + 224 :]
    # struct xfrm_user_offload { int ifindex; __u8 flags; } is 8 bytes with padding
    assert struct.unpack_from("=HHiB3x", nla) == (12, xm.XFRMA_OFFLOAD_DEV, 3, 2)
    assert struct.unpack_from("=HHI", nla, 12) == (8, xm.XFRMA_IF_ID, 7)
    back = xm.xfrm_usersa_info.decode(data[16:])
    assert back.get_attr("XFRMA_OFFLOAD_DEV")["ifindex"] == 3
    assert back.get_attr("XFRMA_IF_ID") == 7


def test_cbc_hmac_attributes() -> None:
    attrs = dict(algorithm_attrs(EncrId.AES_CBC, bytes(32), IntegId.HMAC_SHA2_512_256, bytes(64)))
    assert attrs["XFRMA_ALG_CRYPT"]["alg_name"] == b"cbc(aes)"
    assert attrs["XFRMA_ALG_CRYPT"]["alg_key_len"] == 256
    auth = attrs["XFRMA_ALG_AUTH_TRUNC"]
    assert (auth["alg_name"], auth["alg_key_len"], auth["alg_trunc_len"]) == (
        b"hmac(sha512)",
        512,
        256,
    )


@pytest.mark.parametrize(
    ("integ", "name", "trunc"),
    [
        (IntegId.HMAC_SHA2_256_128, b"hmac(sha256)", 128),
        (IntegId.HMAC_SHA2_384_192, b"hmac(sha384)", 192),
        (IntegId.HMAC_SHA2_512_256, b"hmac(sha512)", 256),
    ],
)
def test_integ_names(integ: int, name: bytes, trunc: int) -> None:
    auth = dict(algorithm_attrs(EncrId.AES_CBC, bytes(16), integ, bytes(32)))
    assert (
        auth["XFRMA_ALG_AUTH_TRUNC"]["alg_name"],
        auth["XFRMA_ALG_AUTH_TRUNC"]["alg_trunc_len"],
    ) == (
        name,
        trunc,
    )


def test_chacha_and_bad_combinations() -> None:
    ((name, attr),) = algorithm_attrs(EncrId.CHACHA20_POLY1305, bytes(36), IntegId.NONE, b"")
    assert (name, attr["alg_name"], attr["alg_icv_len"]) == (
        "XFRMA_ALG_AEAD",
        b"rfc7539esp(chacha20,poly1305)",
        128,
    )
    with pytest.raises(KernelError):
        algorithm_attrs(EncrId.AES_GCM_16, bytes(20), IntegId.HMAC_SHA2_256_128, bytes(32))
    with pytest.raises(KernelError, match="ENCR transform 3"):
        algorithm_attrs(EncrId.TRIPLE_DES, bytes(24), IntegId.HMAC_SHA2_256_128, bytes(32))


def test_template_list_roundtrip() -> None:
    tmpls = [{"reqid": 7, "mode": 1, "saddr": bytes([10, 0, 0, 1]), "id_proto": 50}] * 2
    payload = xm.encode_tmpls(tmpls)
    assert len(payload) == 128
    back = xm.decode_tmpls(payload)
    assert [t["reqid"] for t in back] == [7, 7] and back[1]["saddr"][:4] == bytes([10, 0, 0, 1])


def test_port_blocks() -> None:
    assert port_blocks(0, 65535) == [(0, 0)]
    assert port_blocks(500, 500) == [(500, 0xFFFF)]
    assert port_blocks(1024, 2047) == [(1024, 0xFC00)]
    blocks = port_blocks(1000, 1010)
    covered = {p for p in range(65536) for b, m in blocks if p & m == b}
    assert covered == set(range(1000, 1011))


def test_selectors_split_ranges_and_priority() -> None:
    src = TrafficSelector(ip_address("10.0.0.1"), ip_address("10.0.0.6"))
    dst = TrafficSelector.from_cidr("10.2.0.0/16")
    sels = selectors(src, dst)
    assert [str(s.src) for s in sels] == [
        "10.0.0.1/32",
        "10.0.0.2/31",
        "10.0.0.4/31",
        "10.0.0.6/32",
    ]
    wide = Selector(IPv4Network("10.0.0.0/8"), IPv4Network("0.0.0.0/0"))
    narrow = Selector(IPv4Network("10.0.0.0/24"), IPv4Network("10.2.0.0/16"))
    ported = Selector(IPv4Network("10.0.0.0/24"), IPv4Network("10.2.0.0/16"), 6, 0, 0, 80, 0xFFFF)
    assert ported.priority() < narrow.priority() < wide.priority()
    assert ported.priority() >= 2000 and wide.priority() <= 3000
    any_any = Selector(IPv4Network("0.0.0.0/0"), IPv4Network("0.0.0.0/0"))
    assert any_any.priority() == 3000


def test_transport_sa_selector_drops_ports() -> None:
    sel = sa_selector(
        TrafficSelector.from_cidr("192.0.2.1/32", protocol=17, port=500),
        TrafficSelector(ip_address("192.0.2.2"), ip_address("192.0.2.5")),
    )
    assert (str(sel.src), str(sel.dst), sel.proto, sel.sport_mask) == (
        "192.0.2.1/32",
        "192.0.2.0/29",
        0,
        0,
    )


def test_key_length_must_match() -> None:
    algorithm_attrs(EncrId.AES_GCM_16, bytes(36), IntegId.NONE, b"", encr_key_length=256)
    algorithm_attrs(EncrId.AES_CBC, bytes(16), IntegId.HMAC_SHA2_256_128, bytes(32), 128)
    with pytest.raises(KernelError, match="does not match key length 256"):
        algorithm_attrs(EncrId.AES_GCM_16, bytes(32), IntegId.NONE, b"", encr_key_length=256)
