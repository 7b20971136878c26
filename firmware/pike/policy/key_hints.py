"""What to say about a key the loader does not read: one strongSwan has and pike does not
yet, one of pike's in another section, or a typo.

A strongSwan user copies swanctl.conf habits; ``unknown key (misspelt?)`` for ``unique``
or for ``dpd_action`` inside a child sends them hunting for a typo that is not there.
"""

from __future__ import annotations

from pike.policy.toml_lines import KeyPath

# Where each of pike's keys lives (the loader reads them; tests/policy keeps this true).
PIKE_KEYS: dict[str, frozenset[str]] = {
    "daemon": frozenset(
        {
            "control_socket", "metrics_listen", "save_keys_dir", "ike_port", "natt_port",
            "retransmit_timeout", "retransmit_base", "retransmit_tries", "fragment_size",
            "keepalive", "log_level", "max_packet", "cookie_threshold", "block_threshold",
            "half_open_max", "ike_sa_max", "init_rate", "key_helper",
        }
    ),
    "connection": frozenset(
        {
            "version", "local_addrs", "remote_addrs", "proposals", "local", "remote",
            "children", "local_port", "remote_port", "encap", "fragmentation", "dpd_delay",
            "dpd_timeout", "dpd_action", "keyingtries", "rekey_time", "reauth_time",
            "aggressive", "ppk_id", "ppk_required", "mobike", "if_id_in", "if_id_out",
        }
    ),
    "child": frozenset(
        {
            "local_ts", "remote_ts", "esp_proposals", "mode", "start_action", "close_action",
            "rekey_time", "life_time", "rand_time", "rekey_bytes", "life_bytes", "rand_bytes",
            "rekey_packets", "life_packets", "rand_packets", "hw_offload", "replay_window",
            "if_id_in", "if_id_out", "mark_in", "mark_out", "interface", "updown",
        }
    ),
    "auth": frozenset(
        {
            "auth", "id", "certs", "key", "cacerts", "rsa_pss", "revocation", "crls",
            "crl_uris", "ocsp_uris",
        }
    ),
    "secret": frozenset({"id", "secret", "secret_file"}),
    "enroll": frozenset(
        {"url", "ca", "key", "cert", "user", "password_file", "within_days", "import"}
    ),
    "authority": frozenset({"cacert", "crl_uris", "ocsp_uris"}),
}  # fmt: skip

# swanctl.conf keys pike does not have yet, by the section strongSwan puts them in.
NOT_YET: dict[str, frozenset[str]] = {
    "connection": frozenset(
        {
            "unique", "pools", "vips", "send_cert",
            "send_certreq", "over_time", "rand_time", "dscp",
            "pull", "childless", "split", "mediation", "mediated_by", "mediation_peer",
            "keyingtries_random", "local_addrs6", "ocsp",
        }
    ),
    "child": frozenset(
        {
            "hostaccess", "ipcomp", "inactivity", "reqid", "priority",
            "set_mark_in", "set_mark_out", "mark_in_sa", "tfc_padding",
            "copy_df", "copy_ecn", "copy_dscp", "sha256_96", "policies", "policies_fwd_out",
            "label", "label_mode", "ah_proposals", "per_cpu_sas",
        }
    ),
    "auth": frozenset(
        {
            "eap_id", "aaa_id", "xauth_id", "groups", "cert_policy", "ca_id",
            "pubkeys", "round",
        }
    ),
}  # fmt: skip

_WHERE = {
    "daemon": "[daemon]",
    "connection": "[connections.NAME]",
    "child": "[connections.NAME.children.CHILD]",
    "auth": "local = {...} or remote = {...}",
    "secret": "[secrets.NAME]",
    "enroll": "[enroll]",
    "authority": "[authorities.NAME]",
}


def section_of(path: KeyPath) -> str | None:
    """The kind of table at ``path`` (``connection``, ``child``, ...), if it is one."""
    parts = tuple(str(p) for p in path)
    if parts == ("daemon",):
        return "daemon"
    if len(parts) == 2 and parts[0] == "connections":
        return "connection"
    if len(parts) == 3 and parts[0] == "connections" and parts[2] in ("local", "remote"):
        return "auth"
    if len(parts) == 4 and parts[0] == "connections" and parts[2] == "children":
        return "child"
    if len(parts) == 2 and parts[0] == "secrets":
        return "secret"
    if parts == ("enroll",):
        return "enroll"
    if len(parts) == 2 and parts[0] == "authorities":
        return "authority"
    return None


def unknown_key(path: KeyPath, key: str) -> str:
    """The message for ``key``, which the table at ``path`` does not have."""
    here = section_of(path)
    if here is not None and key in NOT_YET.get(here, frozenset()):
        return "not supported by pike yet"
    parts = [str(p) for p in path]
    homes = [s for s, keys in PIKE_KEYS.items() if key in keys and s != here]
    if homes:
        where = _WHERE[homes[0]]
        if len(parts) >= 2 and parts[0] == "connections":
            where = where.replace("NAME", parts[1])
        return f"belongs in {where}, not here"
    if any(key in keys for keys in NOT_YET.values()):
        return "not supported by pike yet (and not in this section in strongSwan either)"
    return "unknown key (misspelt?)"
