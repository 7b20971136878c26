"""A parsed swanctl.conf (``pike.swanctl.settings``) -> a draft pike.toml and the list of
what could not be carried over, each with its ``FILE:LINE`` and why.

Only the meaning is translated: pike's keys mostly have strongSwan's names and values,
so most of the work is in what differs (auth rounds, ``default`` proposals, ``dynamic``
selectors, ``dpd_action`` per child, paths relative to /etc/swanctl/x509...). Whether
pike accepts each value is decided afterwards by pike's own loader
(``pike.swanctl.render``), so this module never second-guesses it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pike.policy.key_hints import NOT_YET
from pike.swanctl.settings import Section, Value, Where

TomlScalar = str | int | bool


@dataclass(slots=True)
class Item:
    """One ``key = value`` of the draft; a list is one line per element."""

    key: str
    value: TomlScalar | list[tuple[str, Where]]
    where: Where
    swan: str  # the swanctl key, for the note when pike refuses it
    secret: bool = False  # never shown in a note


@dataclass(slots=True)
class Table:
    header: str  # "connections.hq", "connections.hq.local", ...
    where: Where
    items: list[Item] = field(default_factory=list)
    group: str = ""  # what goes when pike refuses the table: "connections.hq"

    def add(
        self, key: str, value: TomlScalar | list[tuple[str, Where]], v: Value, swan: str
    ) -> None:
        self.items.append(Item(key, value, v.where, swan))


@dataclass(frozen=True, slots=True)
class Note:
    where: Where
    key: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.why}"


@dataclass(slots=True)
class Draft:
    tables: list[Table] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    # lines read but with nothing to write: their meaning is pike's default (a ``round``,
    # ``local_ts = dynamic``), or inside a section one note already named
    absorbed: set[Where] = field(default_factory=set)

    def note(self, where: Where, key: str, why: str) -> None:
        self.notes.append(Note(where, key, why))

    def note_section(self, sec: Section, key: str, why: str) -> None:
        """One note for a whole section; its lines count as named by it."""
        self.note(sec.where, key, why)
        self.absorbed |= _lines(sec)


def _lines(sec: Section) -> set[Where]:
    out = {v.where for v in sec.values.values()}
    for sub in sec.sections.values():
        out |= {sub.where} | _lines(sub)
    return out


@dataclass(frozen=True, slots=True)
class Files:
    """Where swanctl keeps credentials (``/etc/swanctl`` beside swanctl.conf), and a
    way to find our private key for a certificate (``None``: not found)."""

    swanctl_dir: str
    listdir: Callable[[str], list[str]]
    key_for: Callable[[str], str | None]

    def x509(self, name: str, sub: str = "x509") -> str:
        return name if os.path.isabs(name) else os.path.join(self.swanctl_dir, sub, name)

    def all_in(self, sub: str) -> list[str]:
        d = os.path.join(self.swanctl_dir, sub)
        return [os.path.join(d, n) for n in sorted(self.listdir(d))]


_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_YES = {"yes": True, "true": True, "no": False, "false": False}
_PSK = ("psk",)
_PUBKEY = ("pubkey", "rsa", "ecdsa", "ed25519", "ed448")
_CONN_DURATIONS = ("dpd_delay", "dpd_timeout", "rekey_time", "reauth_time")
_CHILD_DURATIONS = ("rekey_time", "life_time", "rand_time")
_CHILD_COUNTS = (
    "rekey_bytes", "life_bytes", "rand_bytes", "rekey_packets", "life_packets", "rand_packets",
)  # fmt: skip
_WHY_NOT = {
    "send_cert": "pike sends its certificate chain whenever it authenticates with one",
    "send_certreq": "pike sends CERTREQ for its cacerts",
    "pools": "pike assigns no virtual IPs (no configuration payloads)",
    "vips": "pike requests no virtual IPs (no configuration payloads)",
    "unique": "pike keeps IKE SAs with the same identities side by side (strongSwan's 'no')",
    "updown": "pike runs the script without arguments: wrap it in a script of its own",
    "interface": "strongSwan's interface restricts policies; pike's interface key creates"
    " the tunnel interface instead",
}


def split_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def convert(root: Section, files: Files) -> Draft:
    draft = Draft()
    for name, sec in root.sections.items():
        if name == "connections":
            for conn in sec.sections.values():
                _connection(draft, conn, files)
            _stray(draft, sec, "connections")
        elif name == "secrets":
            for sname, s in sec.sections.items():
                _secret(draft, sname, s)
            _stray(draft, sec, "secrets")
        else:
            what = {
                "authorities": "pike has no [authorities]: list the CA files in"
                " remote cacerts, their CRL/OCSP URIs in remote crl_uris/ocsp_uris",
                "pools": "pike assigns no virtual IP addresses",
            }.get(name, "not a swanctl.conf section pike knows")
            draft.note_section(sec, name, what)
    for key, v in root.values.items():
        draft.note(v.where, key, "a key outside every section")
    return draft


def _stray(draft: Draft, sec: Section, path: str) -> None:
    for key, v in sec.values.items():
        draft.note(v.where, f"{path}.{key}", "a key where swanctl expects sections")


def _pike_name(draft: Draft, name: str, where: Where, what: str) -> str:
    if _NAME_OK.match(name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", name).strip("-") or "unnamed"
    if not clean[0].isalnum():
        clean = "x" + clean
    draft.note(where, what, f"renamed {clean!r}: pike names use letters, digits, - and _")
    return clean


# -- connections ----------------------------------------------------------------------------


def _connection(draft: Draft, sec: Section, files: Files) -> None:
    swan = f"connections.{sec.name}"
    name = _pike_name(draft, sec.name, sec.where, swan)
    path = f"connections.{name}"
    if sec.refs:
        draft.note(
            sec.where,
            swan,
            f"templates ({', '.join(sec.refs)}) are not followed: only this section's own"
            " keys are carried over; copy the template's keys in",
        )
    table = Table(path, sec.where, group=path)
    tables = [table]
    refused = False
    for key, v in sec.values.items():
        k = f"{swan}.{key}"
        if key == "version":
            if v.text in ("1", "2"):
                table.add("version", int(v.text), v, k)
            else:
                draft.note(
                    v.where, k, f"{v.text}: pike runs one IKE version per connection; 2 taken"
                )
        elif key in ("local_addrs", "remote_addrs"):
            table.add(key, [(a, v.where) for a in split_list(v.text)], v, k)
        elif key in ("local_port", "remote_port", "keyingtries"):
            _int(draft, table, key, v, k)
        elif key == "proposals":
            _proposals(draft, table, key, v, k)
        elif key in ("aggressive", "encap", "ppk_required", "mobike"):
            _bool(draft, table, key, v, k)
        elif key == "ppk_id":
            table.add(key, v.text, v, k)
        elif key == "fragmentation":
            _fragmentation(draft, table, v, k)
        elif key in _CONN_DURATIONS or key in ("if_id_in", "if_id_out"):
            table.add(key, _number_or_text(v.text), v, k)
        else:
            _not_carried(draft, "connection", key, v, k)
    dpd_actions: list[tuple[str, Value]] = []
    rounds = {s: sec.sections[s] for s in sec.sections if s.startswith(("local", "remote"))}
    for side in ("local", "remote"):
        auth = _auth_round(draft, swan, side, rounds)
        if auth is None:
            draft.note(sec.where, swan, f"no {side} section: pike needs {side}.auth")
            refused = True
            continue
        t = _auth(draft, path, swan, side, auth, files)
        if t is None:
            refused = True
        else:
            tables.append(t)
    for sname, sub in sec.sections.items():
        if sname in rounds:
            continue
        if sname == "children":
            for child in sub.sections.values():
                ct = _child(draft, path, f"{swan}.children", child, dpd_actions)
                if ct is not None:
                    tables.append(ct)
            _stray(draft, sub, f"{swan}.children")
        else:
            draft.note(sub.where, f"{swan}.{sname}", "not a section pike knows")
    _dpd_action(draft, table, dpd_actions)
    if refused:
        draft.note(sec.where, swan, "connection not carried over: the notes on its lines say why")
        return
    draft.tables += tables


def _auth_round(draft: Draft, swan: str, side: str, rounds: dict[str, Section]) -> Section | None:
    """The first authentication round of ``side`` (by ``round``, then by position)."""
    mine = [s for n, s in rounds.items() if n.startswith(side)]

    def order(s: Section) -> int:
        r = s.get("round")
        return int(r.text) if r is not None and r.text.isdigit() else 0

    mine.sort(key=order)  # stable: position breaks ties
    for extra in mine[1:]:
        draft.note_section(
            extra,
            f"{swan}.{extra.name}",
            "a further authentication round: pike has one per side (the first is taken)",
        )
    return mine[0] if mine else None


def _auth(
    draft: Draft, path: str, swan: str, side: str, sec: Section, files: Files
) -> Table | None:
    k = f"{swan}.{sec.name}"
    t = Table(f"{path}.{side}", sec.where, group=path)
    auth_v = sec.get("auth")
    method = auth_v.text if auth_v is not None else "pubkey"  # swanctl's default
    where = auth_v.where if auth_v is not None else sec.where
    if method.startswith(_PSK):
        t.items.append(Item("auth", "psk", where, f"{k}.auth"))
    elif method.startswith(_PUBKEY):
        t.items.append(Item("auth", "pubkey", where, f"{k}.auth"))
        if "pss" in method:
            t.items.append(Item("rsa_pss", True, where, f"{k}.auth"))
    else:
        draft.note(where, f"{k}.auth", f"{method}: pike authenticates with psk or pubkey only")
        return None
    pubkey = method.startswith(_PUBKEY)
    for key, v in sec.values.items():
        kk = f"{k}.{key}"
        if key in ("auth", "round"):
            draft.absorbed.add(v.where)  # read above
            continue
        if key == "id":
            t.add("id", v.text, v, kk)
        elif key == "certs" and side == "local":
            certs = [files.x509(c) for c in split_list(v.text)]
            t.add("certs", [(c, v.where) for c in certs], v, kk)
            found = files.key_for(certs[0]) if certs else None
            if found is not None:
                t.add("key", found, v, kk)
            else:
                draft.note(
                    v.where,
                    kk,
                    f"no private key for {certs[0] if certs else 'it'} under"
                    f" {files.swanctl_dir}/{{private,rsa,ecdsa,pkcs8}}: set key by hand",
                )
        elif key == "cacerts" and side == "remote":
            cas = [files.x509(c, "x509ca") for c in split_list(v.text)]
            t.add("cacerts", [(c, v.where) for c in cas], v, kk)
        elif key == "revocation" and side == "remote" and v.text in ("strict", "ifuri", "relaxed"):
            t.add("revocation", v.text, v, kk)
        elif key.startswith("cert") and side == "local":
            draft.note(v.where, kk, "certificates in a token: give certs and key by hand")
        elif key.startswith(("cert", "cacert")) and side == "remote":
            draft.note(
                v.where,
                kk,
                "pike does not pin the peer's certificate (nor take CAs from a token):"
                " name the CA files in cacerts",
            )
        else:
            _not_carried(draft, "auth", key, v, kk)
    for sub in sec.sections.values():
        draft.note_section(
            sub,
            f"{k}.{sub.name}",
            'certificate or key in a token: give certs and key = "pkcs11:..." by hand',
        )
    if pubkey and side == "remote" and sec.get("cacerts") is None:
        cas = files.all_in("x509ca")
        if cas:  # charon trusts every CA it loaded; pike wants them named
            t.items.append(Item("cacerts", [(c, sec.where) for c in cas], sec.where, k))
    return t


# -- children -------------------------------------------------------------------------------


def _child(
    draft: Draft,
    conn_path: str,
    swan_children: str,
    sec: Section,
    dpd_actions: list[tuple[str, Value]],
) -> Table | None:
    swan = f"{swan_children}.{sec.name}"
    name = _pike_name(draft, sec.name, sec.where, swan)
    t = Table(f"{conn_path}.children.{name}", sec.where, group=f"{conn_path}.children.{name}")
    if sec.refs:
        draft.note(sec.where, swan, f"templates ({', '.join(sec.refs)}) are not followed")
    if sec.get("ah_proposals") is not None and sec.get("esp_proposals") is None:
        draft.note_section(sec, swan, "AH only (ah_proposals): pike has no AH")
        return None
    for key, v in sec.values.items():
        k = f"{swan}.{key}"
        if key in ("local_ts", "remote_ts"):
            parts = split_list(v.text)
            kept = [p for p in parts if p != "dynamic"]
            if kept and len(kept) < len(parts):
                draft.note(
                    v.where,
                    k,
                    "dynamic beside other selectors: pike cannot say 'the address' in a"
                    " list; only the others are carried over",
                )
            if kept:
                t.add(key, [(p, v.where) for p in kept], v, k)
            else:  # only dynamic: pike's default is the address too
                draft.absorbed.add(v.where)
        elif key == "esp_proposals":
            _proposals(draft, t, key, v, k)
        elif key == "mode":
            if v.text in ("tunnel", "transport"):
                t.add(key, v.text, v, k)
            else:
                draft.note(v.where, k, f"{v.text}: pike has tunnel and transport mode only")
                return None
        elif key == "start_action":
            _start_action(draft, t, v, k)
        elif key == "close_action":
            action = {"clear": "none", "restart": "start", "hold": "trap"}.get(v.text, v.text)
            t.add(key, action, v, k)
        elif key == "dpd_action":
            dpd_actions.append((k, v))
        elif key in _CHILD_DURATIONS or key in _CHILD_COUNTS or key == "replay_window":
            t.add(key, _number_or_text(v.text), v, k)
        elif key == "hw_offload":
            t.add(key, {"yes": "crypto"}.get(v.text, v.text), v, k)
        elif key in ("if_id_in", "if_id_out", "mark_in", "mark_out") or (
            key == "updown" and not v.text.split()[1:]
        ):
            t.add(key, _number_or_text(v.text), v, k)
        else:
            _not_carried(draft, "child", key, v, k)
    for sub in sec.sections.values():
        draft.note(sub.where, f"{swan}.{sub.name}", "not a section pike knows")
    return t


def _start_action(draft: Draft, t: Table, v: Value, k: str) -> None:
    parts = [p.strip() for p in v.text.split("|")]
    if len(parts) > 1:  # strongSwan 6's trap|start: pike takes start
        draft.note(v.where, k, f"{v.text}: pike takes one action; start used")
        t.add("start_action", "start", v, k)
    else:
        t.add("start_action", {"route": "trap", "add": "none"}.get(v.text, v.text), v, k)


def _dpd_action(draft: Draft, table: Table, actions: list[tuple[str, Value]]) -> None:
    """strongSwan has dpd_action per child; pike per connection: one value carries over."""
    values = {{"hold": "trap"}.get(v.text, v.text) for _, v in actions}
    if not actions:
        return
    k, v = actions[0]
    if len(values) > 1:
        for kk, vv in actions:
            draft.note(
                vv.where,
                kk,
                f"{vv.text}: the children disagree; pike has one dpd_action per connection",
            )
        return
    action = values.pop()
    if action == "none":
        return  # pike's clear: nothing to say
    table.items.append(Item("dpd_action", action, v.where, k))


# -- secrets --------------------------------------------------------------------------------


def _secret(draft: Draft, name: str, sec: Section) -> None:
    swan = f"secrets.{name}"
    if not name.startswith(("ike", "ppk")):  # ppk<suffix>: RFC 8784 keys, as pike names them
        why = {
            "eap": "pike has no EAP",
            "xauth": "pike has no XAuth",
            "ntlm": "pike has no EAP",
            "token": 'a key in a token: give key = "pkcs11:token=...;object=..." instead',
        }
        kind = next((w for p, w in why.items() if name.startswith(p)), None)
        if kind is None:  # private, rsa, ecdsa, pkcs8, pkcs12: a key file's passphrase
            kind = "a passphrase for an encrypted key: pike reads unencrypted key files or a token"
        draft.note_section(sec, swan, kind)
        return
    pname = _pike_name(draft, name, sec.where, swan)
    t = Table(f"secrets.{pname}", sec.where, group=f"secrets.{pname}")
    ids: list[tuple[str, Where]] = []
    for key, v in sec.values.items():
        k = f"{swan}.{key}"
        if key == "secret":
            t.items.append(Item("secret", v.text, v.where, k, secret=True))
        elif key.startswith("id"):
            ids.append((v.text, v.where))
        else:
            draft.note(v.where, k, f"not a key of an {name[:3]} secret")
    if ids:
        t.items.insert(0, Item("id", ids, ids[0][1], f"{swan}.id"))
    for sub in sec.sections.values():
        draft.note(sub.where, f"{swan}.{sub.name}", f"not a section of an {name[:3]} secret")
    draft.tables.append(t)


# -- values ---------------------------------------------------------------------------------


def _int(draft: Draft, t: Table, key: str, v: Value, k: str) -> None:
    try:
        t.add(key, int(v.text, 0), v, k)
    except ValueError:
        draft.note(v.where, k, f"{v.text!r} is not a number")


def _bool(draft: Draft, t: Table, key: str, v: Value, k: str) -> None:
    b = _YES.get(v.text.lower())
    if b is None:
        draft.note(v.where, k, f"{v.text!r}: expected yes or no")
    else:
        t.add(key, b, v, k)


def _fragmentation(draft: Draft, t: Table, v: Value, k: str) -> None:
    if v.text in ("accept", "force"):
        draft.note(v.where, k, f"{v.text}: pike has yes and no; yes used")
        t.add("fragmentation", True, v, k)
    else:
        _bool(draft, t, "fragmentation", v, k)


def _proposals(draft: Draft, t: Table, key: str, v: Value, k: str) -> None:
    parts = split_list(v.text)
    kept = [p for p in parts if p != "default"]
    if len(kept) < len(parts):
        draft.note(
            v.where,
            k,
            "default: pike's defaults are the board's (`pikectl board`)"
            + (", taken for this list" if not kept else "; the other proposals carried over"),
        )
    if kept:
        t.add(key, [(p, v.where) for p in kept], v, k)


def _number_or_text(text: str) -> TomlScalar:
    return int(text) if text.isdigit() else text


def _not_carried(draft: Draft, section: str, key: str, v: Value, k: str) -> None:
    if key in _WHY_NOT:
        why = _WHY_NOT[key]
    elif key in NOT_YET.get(section, frozenset()):
        why = "not supported by pike yet"
    else:
        why = "not a swanctl key pike knows"
    draft.note(v.where, k, why)
