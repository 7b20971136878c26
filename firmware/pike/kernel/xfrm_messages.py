"""XFRM netlink messages (linux/include/uapi/linux/xfrm.h) declared on pike.kernel.netlink.

The kernel structs are spelled out field by field, C alignment padding as explicit ``x``
fields; nested structs (selector, id, lifetimes) are flattened with a prefix. Sizes and
offsets are checked against the system header in tests/kernel/test_xfrm_messages.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pike.kernel.netlink import (
    AttrSet,
    Fields,
    Message,
    NetlinkDecodeError,
    Raw,
    Scalar,
    Struct,
    StructValue,
)

NETLINK_XFRM = 6

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


# struct xfrm_user_tmpl: 64 bytes; XFRMA_TMPL holds one or more back to back.
USER_TMPL: Fields = (
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
# struct xfrm_user_migrate: 76 bytes; old and new outer addresses of the SAs (and the
# template) of one policy.
USER_MIGRATE: Fields = (
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
# struct xfrm_algo: name[64], key length in bits, key.
ALGO: Fields = (("alg_name", "64s"), ("alg_key_len", "I"))
# struct xfrm_algo_auth: name[64], key length and truncation in bits, key.
ALGO_AUTH: Fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))
# struct xfrm_algo_aead: name[64], key length (with salt) and ICV in bits, key.
ALGO_AEAD: Fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_icv_len", "I"))
# struct xfrm_mark: value and mask, host order.
MARK: Fields = (("v", "I"), ("m", "I"))
# struct xfrm_encap_tmpl: 24 bytes; ports in network order.
ENCAP_TMPL: Fields = (
    ("encap_type", "H"),
    ("encap_sport", ">H"),
    ("encap_dport", ">H"),
    ("pad", "2x"),
    ("encap_oa", "16s"),
)
# struct xfrm_replay_state: outbound and inbound sequence, 32-bit bitmap.
REPLAY_STATE: Fields = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))
# struct xfrm_replay_state_esn, followed by bmp_len 32-bit words of bitmap (``bmp``).
REPLAY_STATE_ESN: Fields = (
    ("bmp_len", "I"),
    ("oseq", "I"),
    ("seq", "I"),
    ("oseq_hi", "I"),
    ("seq_hi", "I"),
    ("replay_window", "I"),
)
# struct xfrm_user_offload: ifindex and flags (8 bytes).
USER_OFFLOAD: Fields = (("ifindex", "i"), ("flags", "B"), ("pad", "3x"))

_TMPL = Struct(USER_TMPL)
_MIGRATE = Struct(USER_MIGRATE)


def encode_tmpls(tmpls: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(_TMPL.pack(t) for t in tmpls)


def decode_tmpls(payload: bytes) -> list[dict[str, Any]]:
    if len(payload) % _TMPL.size:
        raise NetlinkDecodeError(f"XFRMA_TMPL of {len(payload)} bytes")
    return [_TMPL.unpack(payload, offset) for offset in range(0, len(payload), _TMPL.size)]


def encode_migrate(values: Mapping[str, Any]) -> bytes:
    """One struct xfrm_user_migrate (XFRMA_MIGRATE holds one or more)."""
    return _MIGRATE.pack(values)


# NLAs shared by the SA and policy messages (enum xfrm_attr_type_t).
XFRM_ATTRS = AttrSet(
    (
        (XFRMA_ALG_AUTH, "XFRMA_ALG_AUTH", StructValue(ALGO, tail="alg_key")),
        (XFRMA_ALG_CRYPT, "XFRMA_ALG_CRYPT", StructValue(ALGO, tail="alg_key")),
        (XFRMA_ENCAP, "XFRMA_ENCAP", StructValue(ENCAP_TMPL)),
        (XFRMA_TMPL, "XFRMA_TMPL", Raw()),  # encode_tmpls()/decode_tmpls()
        (XFRMA_REPLAY_VAL, "XFRMA_REPLAY_VAL", StructValue(REPLAY_STATE)),
        (XFRMA_LASTUSED, "XFRMA_LASTUSED", Scalar("Q")),
        (XFRMA_MIGRATE, "XFRMA_MIGRATE", Raw()),  # encode_migrate()
        (XFRMA_ALG_AEAD, "XFRMA_ALG_AEAD", StructValue(ALGO_AEAD, tail="alg_key")),
        (XFRMA_ALG_AUTH_TRUNC, "XFRMA_ALG_AUTH_TRUNC", StructValue(ALGO_AUTH, tail="alg_key")),
        (XFRMA_MARK, "XFRMA_MARK", StructValue(MARK)),
        (XFRMA_REPLAY_ESN_VAL, "XFRMA_REPLAY_ESN_VAL", StructValue(REPLAY_STATE_ESN, "bmp")),
        (XFRMA_SA_EXTRA_FLAGS, "XFRMA_SA_EXTRA_FLAGS", Scalar("I")),
        (XFRMA_OFFLOAD_DEV, "XFRMA_OFFLOAD_DEV", StructValue(USER_OFFLOAD)),
        (XFRMA_IF_ID, "XFRMA_IF_ID", Scalar("I")),
    )
)


class XfrmMessage(Message):
    nla = XFRM_ATTRS


class xfrm_usersa_info(XfrmMessage):
    """struct xfrm_usersa_info (224 bytes): NEWSA / UPDSA, and the reply to GETSA."""

    fields = USERSA_INFO


class xfrm_usersa_id(XfrmMessage):
    """struct xfrm_usersa_id (24 bytes): DELSA / GETSA."""

    fields = (
        ("daddr", "16s"),
        ("spi", ">I"),
        ("family", "H"),
        ("proto", "B"),
        ("pad", "x"),
    )


class xfrm_userspi_info(XfrmMessage):
    """struct xfrm_userspi_info (232 bytes): ALLOCSPI = usersa_info + SPI range."""

    fields = (*USERSA_INFO, ("min", "I"), ("max", "I"))


class xfrm_userpolicy_info(XfrmMessage):
    """struct xfrm_userpolicy_info (168 bytes): NEWPOLICY / UPDPOLICY, GETPOLICY dumps."""

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


class xfrm_userpolicy_id(XfrmMessage):
    """struct xfrm_userpolicy_id (64 bytes): DELPOLICY / GETPOLICY / MIGRATE."""

    fields = (*SELECTOR, ("index", "I"), ("dir", "B"), ("pad", "3x"))


class xfrm_user_acquire(XfrmMessage):
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


class xfrm_user_expire(XfrmMessage):
    """struct xfrm_user_expire (232 bytes), XFRM_MSG_EXPIRE: the SA and whether its hard
    (gone) or soft (rekey now) limit was reached."""

    fields = (*USERSA_INFO, ("hard", "B"), ("pad_hard", "7x"))


# What the kernel answers on NETLINK_XFRM, by message type.
REPLY_CLASSES: dict[int, type[XfrmMessage]] = {
    XFRM_MSG_NEWSA: xfrm_usersa_info,
    XFRM_MSG_UPDSA: xfrm_usersa_info,
    XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info,
    XFRM_MSG_UPDPOLICY: xfrm_userpolicy_info,
}
