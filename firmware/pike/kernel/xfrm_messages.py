"""XFRM netlink messages (linux/include/uapi/linux/xfrm.h) declared on pyroute2's nlmsg.

pyroute2 has no XFRM SA/policy classes, so the kernel structs are spelled out here. pyroute2
packs each field on its own, so C alignment padding is written as explicit ``x`` fields;
nested structs (selector, id, lifetimes) are flattened with a prefix. Sizes are checked in
tests/kernel/test_xfrm_messages.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from pyroute2.netlink import nla, nlmsg, nlmsg_base, nlmsg_decoder_generic, nlmsg_encoder_generic

# Message types (enum starting at XFRM_MSG_BASE = 0x10).
XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_ACQUIRE = 0x17  # kernel -> daemon: traffic hit a policy without an SA
XFRM_MSG_EXPIRE = 0x18  # kernel -> daemon: an SA's soft or hard lifetime ran out
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1A
XFRM_MSG_POLEXPIRE = 0x1B
XFRM_MSG_MIGRATE = 0x21  # move a policy's SAs to new addresses (CONFIG_XFRM_MIGRATE)

# Multicast groups (enum xfrm_nlgroups); bind() takes them as a bit mask 1 << (group - 1).
XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2

# Attributes (enum xfrm_attr_type_t).
XFRMA_ALG_AUTH = 1
XFRMA_ALG_CRYPT = 2
XFRMA_ENCAP = 4
XFRMA_TMPL = 5
XFRMA_REPLAY_VAL = 10  # struct xfrm_replay_state (windows up to 32 without ESN)
XFRMA_LASTUSED = 15
XFRMA_MIGRATE = 17  # xfrm_user_migrate[]
XFRMA_ALG_AEAD = 18
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_MARK = 21  # struct xfrm_mark: only packets whose mark & m == v use the SA/policy (VTI)
XFRMA_REPLAY_ESN_VAL = 23
XFRMA_SA_EXTRA_FLAGS = 24
XFRMA_OFFLOAD_DEV = 28
XFRMA_IF_ID = 31  # u32: the XFRM interface (route-based VPN) an SA or policy belongs to

XFRM_INF = (1 << 64) - 1  # "no limit" for byte/packet lifetimes

XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1

XFRM_POLICY_IN = 0
XFRM_POLICY_OUT = 1
XFRM_POLICY_FWD = 2
XFRM_POLICY_ALLOW = 0
XFRM_POLICY_BLOCK = 1

# xfrm_usersa_info.flags
XFRM_STATE_AF_UNSPEC = 32  # tunnel SA carries any inner family (selector unused)
XFRM_STATE_ESN = 128

# xfrm_user_offload.flags
XFRM_OFFLOAD_IPV6 = 1
XFRM_OFFLOAD_INBOUND = 2
XFRM_OFFLOAD_PACKET = 4

UDP_ENCAP_ESPINUDP = 2  # RFC 3948 (linux/udp.h)

ALL_ALGOS = 0xFFFFFFFF  # template aalgos/ealgos/calgos: accept any

Fields = tuple[tuple[str, str], ...]

# struct xfrm_selector: 56 bytes.
SELECTOR: Fields = (
    ("sel_daddr", "16s"),
    ("sel_saddr", "16s"),
    ("sel_dport", ">H"),
    ("sel_dport_mask", ">H"),
    ("sel_sport", ">H"),
    ("sel_sport_mask", ">H"),
    ("sel_family", "H"),
    ("sel_prefixlen_d", "B"),
    ("sel_prefixlen_s", "B"),
    ("sel_proto", "B"),
    ("sel_pad", "3x"),
    ("sel_ifindex", "i"),
    ("sel_user", "I"),
)
# struct xfrm_id: 24 bytes.
XFRM_ID: Fields = (("id_daddr", "16s"), ("id_spi", ">I"), ("id_proto", "B"), ("id_pad", "3x"))
# struct xfrm_lifetime_cfg: 64 bytes.
LIFETIME_CFG: Fields = tuple(
    (f"lft_{name}", "Q")
    for name in (
        "soft_byte_limit",
        "hard_byte_limit",
        "soft_packet_limit",
        "hard_packet_limit",
        "soft_add_expires_seconds",
        "hard_add_expires_seconds",
        "soft_use_expires_seconds",
        "hard_use_expires_seconds",
    )
)
# struct xfrm_lifetime_cur: 32 bytes.
LIFETIME_CUR: Fields = (
    ("cur_bytes", "Q"),
    ("cur_packets", "Q"),
    ("cur_add_time", "Q"),
    ("cur_use_time", "Q"),
)
# struct xfrm_stats: 12 bytes.
STATS: Fields = (
    ("stats_replay_window", "I"),
    ("stats_replay", "I"),
    ("stats_integrity_failed", "I"),
)

USERSA_INFO: Fields = (
    *SELECTOR,
    *XFRM_ID,
    ("saddr", "16s"),
    *LIFETIME_CFG,
    *LIFETIME_CUR,
    *STATS,
    ("seq", "I"),
    ("reqid", "I"),
    ("family", "H"),
    ("mode", "B"),
    ("replay_window", "B"),
    ("flags", "B"),
    ("pad_end", "7x"),  # the u64 members align the struct to 8: 217 -> 224
)


def struct_size(fields: Fields) -> int:
    return sum(struct.calcsize(fmt) for _, fmt in fields)


def _defaults(fields: Fields) -> dict[str, Any]:
    """Zero for every field, so a message only names what it sets."""
    return {name: b"" if fmt.endswith("s") else 0 for name, fmt in fields if not fmt.endswith("x")}


class _struct(nlmsg_base, nlmsg_encoder_generic, nlmsg_decoder_generic):  # type: ignore[misc]
    """A bare C struct (no netlink header), for arrays packed inside one NLA."""

    header = None
    align = 0


class xfrm_user_tmpl(_struct):
    """struct xfrm_user_tmpl: 64 bytes; XFRMA_TMPL holds one or more back to back."""

    fields = (
        *XFRM_ID,
        ("family", "H"),
        ("pad1", "2x"),
        ("saddr", "16s"),
        ("reqid", "I"),
        ("mode", "B"),
        ("share", "B"),
        ("optional", "B"),
        ("pad2", "x"),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
    )
    defaults = _defaults(fields)


class xfrm_user_migrate(_struct):
    """struct xfrm_user_migrate: 76 bytes; old and new outer addresses of the SAs (and
    the template) of one policy."""

    fields = (
        ("old_daddr", "16s"),
        ("old_saddr", "16s"),
        ("new_daddr", "16s"),
        ("new_saddr", "16s"),
        ("proto", "B"),
        ("mode", "B"),
        ("reserved", "H"),
        ("reqid", "I"),
        ("old_family", "H"),
        ("new_family", "H"),
    )
    defaults = _defaults(fields)


def encode_struct(cls: type[Any], values: Mapping[str, Any]) -> bytes:
    """Pack one bare struct."""
    msg = cls()
    msg.setvalue(dict(values))
    msg.encode()
    return bytes(msg.data)


def encode_tmpls(tmpls: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(encode_struct(xfrm_user_tmpl, t) for t in tmpls)


def decode_tmpls(payload: bytes) -> list[dict[str, Any]]:
    size = struct_size(xfrm_user_tmpl.fields)
    out = []
    for offset in range(0, len(payload) - size + 1, size):
        msg = xfrm_user_tmpl(bytearray(payload), offset=offset)
        msg.decode()
        out.append({k: v for k, v in msg.items() if k != "attrs" and "pad" not in k})
    return out


class _algo_with_key(nla):  # type: ignore[misc]
    """Algorithm NLAs end in a variable-length key (``alg_key``)."""

    key_offset = 68

    def decode(self) -> None:
        nla.decode(self)
        start = self.offset + 4 + self.key_offset
        self["alg_key"] = bytes(self.data[start : self.offset + self.length])


class xfrm_attrs(nlmsg):  # type: ignore[misc]
    """NLAs shared by the SA and policy messages."""

    nla_map = (
        (XFRMA_ALG_AUTH, "XFRMA_ALG_AUTH", "xfrm_algo"),
        (XFRMA_ALG_CRYPT, "XFRMA_ALG_CRYPT", "xfrm_algo"),
        (XFRMA_ENCAP, "XFRMA_ENCAP", "xfrm_encap_tmpl"),
        (XFRMA_TMPL, "XFRMA_TMPL", "cdata"),  # encode_tmpls()/decode_tmpls()
        (XFRMA_REPLAY_VAL, "XFRMA_REPLAY_VAL", "xfrm_replay_state"),
        (XFRMA_LASTUSED, "XFRMA_LASTUSED", "uint64"),
        (XFRMA_MIGRATE, "XFRMA_MIGRATE", "cdata"),  # encode_struct(xfrm_user_migrate, ...)
        (XFRMA_ALG_AEAD, "XFRMA_ALG_AEAD", "xfrm_algo_aead"),
        (XFRMA_ALG_AUTH_TRUNC, "XFRMA_ALG_AUTH_TRUNC", "xfrm_algo_auth"),
        (XFRMA_MARK, "XFRMA_MARK", "xfrm_mark"),
        (XFRMA_REPLAY_ESN_VAL, "XFRMA_REPLAY_ESN_VAL", "xfrm_replay_state_esn"),
        (XFRMA_SA_EXTRA_FLAGS, "XFRMA_SA_EXTRA_FLAGS", "uint32"),
        (XFRMA_OFFLOAD_DEV, "XFRMA_OFFLOAD_DEV", "xfrm_user_offload"),
        (XFRMA_IF_ID, "XFRMA_IF_ID", "uint32"),
    )

    class xfrm_algo(_algo_with_key):
        """struct xfrm_algo: name[64], key length in bits, key."""

        fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_key", "s"))
        defaults = _defaults(fields)

    class xfrm_algo_auth(_algo_with_key):
        """struct xfrm_algo_auth: name[64], key length and truncation in bits, key."""

        key_offset = 72
        fields = (
            ("alg_name", "64s"),
            ("alg_key_len", "I"),
            ("alg_trunc_len", "I"),
            ("alg_key", "s"),
        )
        defaults = _defaults(fields)

    class xfrm_algo_aead(_algo_with_key):
        """struct xfrm_algo_aead: name[64], key length (with salt) and ICV in bits, key."""

        key_offset = 72
        fields = (
            ("alg_name", "64s"),
            ("alg_key_len", "I"),
            ("alg_icv_len", "I"),
            ("alg_key", "s"),
        )
        defaults = _defaults(fields)

    class xfrm_mark(nla):  # type: ignore[misc]
        """struct xfrm_mark: value and mask, host order."""

        fields = (("v", "I"), ("m", "I"))
        defaults = _defaults(fields)

    class xfrm_encap_tmpl(nla):  # type: ignore[misc]
        """struct xfrm_encap_tmpl: 24 bytes; ports in network order."""

        fields = (
            ("encap_type", "H"),
            ("encap_sport", ">H"),
            ("encap_dport", ">H"),
            ("pad", "2x"),
            ("encap_oa", "16s"),
        )
        defaults = _defaults(fields)

    class xfrm_replay_state(nla):  # type: ignore[misc]
        """struct xfrm_replay_state: outbound and inbound sequence, 32-bit bitmap."""

        fields = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))
        defaults = _defaults(fields)

    class xfrm_replay_state_esn(nla):  # type: ignore[misc]
        """struct xfrm_replay_state_esn followed by bmp_len 32-bit words of bitmap."""

        fields = (
            ("bmp_len", "I"),
            ("oseq", "I"),
            ("seq", "I"),
            ("oseq_hi", "I"),
            ("seq_hi", "I"),
            ("replay_window", "I"),
            ("bmp", "s"),
        )
        defaults = _defaults(fields)

    class xfrm_user_offload(nla):  # type: ignore[misc]
        """struct xfrm_user_offload: ifindex and flags (8 bytes)."""

        fields = (("ifindex", "i"), ("flags", "B"), ("pad", "3x"))
        defaults = _defaults(fields)


class xfrm_usersa_info(xfrm_attrs):
    """struct xfrm_usersa_info (224 bytes): NEWSA / UPDSA, and the reply to GETSA."""

    fields = USERSA_INFO
    defaults = _defaults(fields)


class xfrm_usersa_id(xfrm_attrs):
    """struct xfrm_usersa_id (24 bytes): DELSA / GETSA."""

    fields = (
        ("daddr", "16s"),
        ("spi", ">I"),
        ("family", "H"),
        ("proto", "B"),
        ("pad", "x"),
    )
    defaults = _defaults(fields)


class xfrm_userspi_info(xfrm_attrs):
    """struct xfrm_userspi_info (232 bytes): ALLOCSPI = usersa_info + SPI range."""

    fields = (*USERSA_INFO, ("min", "I"), ("max", "I"))
    defaults = _defaults(fields)


class xfrm_userpolicy_info(xfrm_attrs):
    """struct xfrm_userpolicy_info (168 bytes): NEWPOLICY / UPDPOLICY."""

    fields = (
        *SELECTOR,
        *LIFETIME_CFG,
        *LIFETIME_CUR,
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("pad_end", "4x"),
    )
    defaults = _defaults(fields)


class xfrm_userpolicy_id(xfrm_attrs):
    """struct xfrm_userpolicy_id (64 bytes): DELPOLICY / GETPOLICY."""

    fields = (*SELECTOR, ("index", "I"), ("dir", "B"), ("pad", "3x"))
    defaults = _defaults(fields)


class xfrm_user_acquire(xfrm_attrs):
    """struct xfrm_user_acquire (280 bytes), XFRM_MSG_ACQUIRE: the SA wanted (id, saddr),
    the packet's selector and the policy that matched; XFRMA_TMPL carries its templates
    (with the reqid)."""

    fields = (
        *XFRM_ID,
        ("saddr", "16s"),
        *SELECTOR,
        *(("pol_" + name, fmt) for name, fmt in xfrm_userpolicy_info.fields),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
        ("seq", "I"),
    )
    defaults = _defaults(fields)


class xfrm_user_expire(xfrm_attrs):
    """struct xfrm_user_expire (232 bytes), XFRM_MSG_EXPIRE: the SA and whether its hard
    (gone) or soft (rekey now) limit was reached."""

    fields = (*USERSA_INFO, ("hard", "B"), ("pad_hard", "7x"))
    defaults = _defaults(fields)


# Replies the kernel sends on NETLINK_XFRM, for the socket's marshal.
REPLY_CLASSES: dict[int, type[Any]] = {
    XFRM_MSG_NEWSA: xfrm_usersa_info,
    XFRM_MSG_UPDSA: xfrm_usersa_info,
    XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info,
    XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info,
}
