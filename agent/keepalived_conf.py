"""Read the VRRP parts of a keepalived.conf and turn them into the agent's configuration.

Why a converter rather than a second configuration model
--------------------------------------------------------
:func:`convert_file` produces the same document (nested dicts and lists) that
:func:`tomllib.load` returns for a TOML file, and :func:`load_keepalived` hands it to
:func:`agent.config.parse_config`. All validation, ranges and defaults therefore stay in one
place; this module only knows keepalived's *syntax* and *defaults*. Every value is written
explicitly where keepalived's default differs from ours (VRRP version 2, ``advert_int`` 1 s,
``vrrp_script`` ``interval`` 1 s), so a converted file behaves like it did under keepalived.
When :func:`~agent.config.parse_config` rejects a converted value, its key path
(``instance[0].vrid``) is mapped back to the keepalived file, line and keyword.

Syntax (keepalived.conf(5), "Configuration file format")
--------------------------------------------------------
- A statement is a keyword and its arguments on one line. ``{`` opens the block of the
  statement before it, on the same line or the next; ``}`` closes it. Short blocks may sit
  on one line (``track_script { chk }``).
- ``#`` or ``!`` at the start of a word starts a comment up to the end of the line
  (``auth_pass ab!c`` keeps its ``!``).
- ``"..."`` is one word (``\\"`` and ``\\\\`` escape); it may hold spaces and braces.
- ``include PATTERN`` (at any level) reads the files the glob matches, in sorted order; a
  relative pattern is relative to the directory of the file that includes it. A pattern
  without wildcards must name an existing file; a glob matching nothing is a warning.
- keepalived's ``$NAME=value`` parameters, ``@host`` conditional lines and ``~SEQ`` are
  not supported (an error).

Every problem is ``FILE:LINE: KEYWORD: reason``.

Keywords
--------
Converted (``global_defs``): ``notify_fifo`` and ``vrrp_notify_fifo`` (``[global]
notify_fifo``), ``script_user USER [GROUP]``, ``vrrp_version`` (the default of
``version``), ``vrrp_garp_master_delay``, ``vrrp_garp_master_repeat``,
``vrrp_garp_master_refresh``, ``vrrp_garp_master_refresh_repeat`` (the defaults of the
instances' ``garp_master_*``), ``vrrp_min_garp`` (delay 0, repeat 1).

Converted (``vrrp_script NAME``): ``script``, ``interval`` (default 1, keepalived's),
``timeout``, ``weight``, ``rise``, ``fall``, ``user USER [GROUP]``.

Converted (``vrrp_instance NAME``): ``interface``, ``virtual_router_id``, ``priority``,
``advert_int``, ``version``, ``nopreempt``, ``preempt``, ``preempt_delay``,
``authentication { auth_type PASS; auth_pass ... }``, ``virtual_ipaddress { IP[/LEN] [dev
IF] [label L] [brd B] [scope S] ... }`` (also ``A.B.C.D-E`` ranges), ``track_script { NAME
[weight W] }``, ``track_interface { IF [weight W] }``, ``dont_track_primary``, ``notify``,
``notify_master``, ``notify_backup``, ``notify_fault``, ``notify_stop``,
``garp_master_delay``, ``garp_master_repeat``, ``garp_master_refresh``,
``garp_master_refresh_repeat``, ``v3_checksum_as_v2`` (``checksum = "rfc9568"``),
``unicast_src_ip`` (``unicast_src``), ``unicast_peer { ADDRESS ... }`` (``unicast_peers``;
``min_ttl``/``max_ttl`` are warnings).

Converted (``vrrp_sync_group NAME``): ``group { ... }``, ``notify*``.

Warnings, because ignoring them keeps the VRRP behaviour: see :data:`_IGNORED_GLOBAL`,
:data:`_IGNORED_INSTANCE`, :data:`_IGNORED_TOP` and :data:`_IGNORED_VIP_OPTIONS` (among them
``state``, ``router_id``, ``enable_script_security``, ``smtp_alert``,
``notification_email*``, ``virtual_server``); plus these adjustments that reproduce what
keepalived itself does: ``state MASTER`` clears ``nopreempt`` and ``preempt_delay``;
``auth_pass`` longer than 8 characters is cut to 8; ``authentication`` with version 3 is
dropped; ``advert_int`` is rounded to whole seconds (v2) or centiseconds (v3); a weighted
``track_script``/``track_interface`` in a sync-group member is dropped; ``preempt_delay``
with ``nopreempt`` is dropped.

Errors, because ignoring them would change what happens on the network or the host: see
:data:`_REJECTED` (among them ``use_vmac``, ``virtual_routes``, ``auth_type AH``, IPv6
VIPs, ``mcast_src_ip``, ``track_file``, ``strict_mode``, ``unicast_ttl``) and any keyword
not listed anywhere.

Scripts
-------
keepalived's ``script "..."`` and ``notify "..."`` strings are command lines split into
words (quotes honoured) with :func:`shlex.split`. A relative command is looked up in
:data:`SCRIPT_PATH`, as keepalived does when it loads the file. A command line that needs a
shell, i.e. has ``|``, ``&``, ``;``, ``<``, ``>``, ``(``, ``)``, `````, ``$`` or a newline
outside single quotes, becomes ``["/bin/sh", "-c", LINE]`` with a warning: the agent never
runs a shell implicitly, so the shell is made visible in the converted configuration. A
command that already names its shell (the OpenShift image's ``/bin/bash -c
'</dev/tcp/IP/80'``) is split as it is and needs no wrapping.
"""

from __future__ import annotations

import glob
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv6Interface
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, ConfigError, parse_config

#: Directories a relative ``script``/``notify`` command is looked up in (systemd's and
#: keepalived's usual PATH), so the result does not depend on the caller's environment.
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: keepalived's defaults that differ from the agent's (keepalived.conf(5); keepalived.md §2-§3).
KEEPALIVED_VERSION = 2
KEEPALIVED_ADVERT_INT = 1
KEEPALIVED_SCRIPT_INTERVAL = 1
#: RFC 2338 §5.3.10: the simple-text password occupies 8 octets; keepalived cuts longer ones.
AUTH_PASS_LEN = 8
#: Nested includes deeper than this are a loop (keepalived stops at a similar depth).
_MAX_INCLUDE_DEPTH = 16
#: Shell syntax that :func:`shlex.split` would not interpret like a shell does.
_SHELL_CHARS = frozenset("|&;<>()`$\n")
#: What makes a file keepalived syntax when its name does not say (see :func:`is_keepalived`).
_TOP_KEYWORDS = frozenset(
    {"global_defs", "vrrp_instance", "vrrp_script", "vrrp_sync_group", "include",
     "virtual_server", "virtual_server_group", "static_ipaddress", "static_routes"}
)  # fmt: skip
_NOTIFY_KEYWORDS = ("notify", "notify_master", "notify_backup", "notify_fault", "notify_stop")

_LOGGING_ONLY = "keepalived process tuning; the agent has its own"
_MAIL = "the agent sends no e-mail (use notify scripts, the notify FIFO or metrics)"
_LVS = "LVS/health checker configuration; the agent is only the VRRP side"
_SNMP = "the agent has no SNMP or D-Bus interface (use metrics)"

#: ``global_defs`` keywords (or prefixes ending in ``_``) that are ignored with a warning.
_IGNORED_GLOBAL: Mapping[str, str] = {
    "router_id": "names the node in keepalived's e-mail and SNMP only",
    "enable_script_security": (
        "scripts are checked when the file is loaded instead (absolute path, executable "
        "regular file)"
    ),
    "max_auto_priority": _LOGGING_ONLY,
    "vrrp_no_swap": _LOGGING_ONLY,
    "vrrp_rt_priority": _LOGGING_ONLY,
    "vrrp_priority": _LOGGING_ONLY,
    "vrrp_cpu_affinity": _LOGGING_ONLY,
    "vrrp_rlimit_rttime": _LOGGING_ONLY,
    "process_names": _LOGGING_ONLY,
    "process_name": _LOGGING_ONLY,
    "vrrp_process_name": _LOGGING_ONLY,
    "notification_email": _MAIL,
    "notification_email_from": _MAIL,
    "no_email_faults": _MAIL,
    "smtp_": _MAIL,
    "lvs_": _LVS,
    "checker_": _LVS,
    "bfd_": _LVS,
    "enable_snmp_": _SNMP,
    "enable_traps": _SNMP,
    "snmp_socket": _SNMP,
    "enable_dbus": _SNMP,
    "vrrp_garp_interval": "gratuitous ARPs are not rate-limited per interface",
    "vrrp_gna_interval": "IPv6 is not supported; no neighbour advertisements are sent",
    "vrrp_garp_lower_prio_delay": "no gratuitous ARPs are sent on lower-priority adverts",
    "vrrp_garp_lower_prio_repeat": "no gratuitous ARPs are sent on lower-priority adverts",
    "vrrp_skip_check_adv_addr": "the agent always accepts adverts whatever their address list",
    "vrrp_check_unicast_src": "only the listed unicast peers' adverts count anyway",
    "vrrp_mcast_group6": "IPv6 is not supported",
    "dynamic_interfaces": "interfaces are looked up when the agent starts",
    "vrrp_iptables": "the agent adds no firewall rules (accept mode)",
    "vrrp_ipsets": "the agent adds no firewall rules (accept mode)",
    "nftables": "the agent adds no firewall rules (accept mode)",
    "nftables_priority": "the agent adds no firewall rules (accept mode)",
    "vrrp_netlink_": _LOGGING_ONLY,
    "vrrp_rx_bufs_": _LOGGING_ONLY,
    "vrrp_socket_priority": _LOGGING_ONLY,
    "default_interface": "used by keepalived for static addresses only",
    "linkbeat_use_polling": "link state comes from netlink events",
}

#: ``vrrp_instance`` keywords ignored with a warning.
_IGNORED_INSTANCE: Mapping[str, str] = {
    "state": (
        "there is no initial state: every instance starts as backup and the election "
        "decides (priority 255 becomes master at once, RFC 9568 §6.4.1)"
    ),
    "smtp_alert": _MAIL,
    "debug": _LOGGING_ONLY,
    "kernel_rx_buf_size": _LOGGING_ONLY,
    "linkbeat_use_polling": "link state comes from netlink events",
    "skip_check_adv_addr": "the agent always accepts adverts whatever their address list",
    "garp_lower_prio_delay": "no gratuitous ARPs are sent on lower-priority adverts",
    "garp_lower_prio_repeat": "no gratuitous ARPs are sent on lower-priority adverts",
    "accept": "the agent adds no firewall rules, so the VIPs always accept traffic",
    "notify_priority_changes": "only adds FIFO event types the agent does not write",
    "promote_secondaries": "the agent does not change the promote_secondaries sysctl",
    "check_unicast_src": "only the listed unicast peers' adverts count anyway",
}

#: Top-level keywords ignored with a warning (the LVS side of keepalived).
_IGNORED_TOP: Mapping[str, str] = {
    "virtual_server": _LVS,
    "virtual_server_group": _LVS,
    "bfd_instance": _LVS,
    "garp_group": "gratuitous ARPs are not rate-limited per interface",
    "linkbeat_use_polling": "link state comes from netlink events",
}

#: ``virtual_ipaddress`` options ignored with a warning (the value is skipped too for
#: options that take one).
_IGNORED_VIP_OPTIONS: Mapping[str, tuple[int, str]] = {
    "label": (1, "addresses are added without a label"),
    "brd": (1, "the broadcast address follows from the prefix"),
    "broadcast": (1, "the broadcast address follows from the prefix"),
    "scope": (1, "addresses are added with scope global"),
    "no_track": (0, "an address deleted by someone else is put back at the next transition"),
    "preferred_lft": (1, "addresses are added with the default lifetimes"),
    "noprefixroute": (0, "the kernel adds the prefix route"),
    "-nodad": (0, "DAD only concerns IPv6"),
    "nodad": (0, "DAD only concerns IPv6"),
    "home": (0, "only concerns IPv6"),
}

#: Keywords refused with a reason (anywhere): ignoring them would change the behaviour.
_REJECTED: Mapping[str, str] = {
    "use_vmac": "virtual MAC interfaces are not supported; the VIPs use the interface's MAC",
    "vmac_xmit_base": "virtual MAC interfaces are not supported",
    "use_ipvlan": "ipvlan interfaces are not supported",
    "virtual_routes": "routes added on MASTER are not supported (use a notify script)",
    "virtual_rules": "policy rules added on MASTER are not supported (use a notify script)",
    "virtual_ipaddress_excluded": "addresses outside the adverts are not supported",
    "no_virtual_ipaddress": "an instance needs at least one VIP",
    "mcast_src_ip": "adverts always come from the interface's primary address",
    "vrrp_mcast_group4": "adverts always go to 224.0.0.18",
    "unicast_ttl": "unicast adverts are always sent with TTL 255",
    "unicast_fault_no_peer": "not supported (an empty unicast_peer block means multicast)",
    "old_unicast_checksum": "not supported",
    "strict_mode": "strict mode (and its firewall rules) is not supported",
    "vrrp_strict": "strict mode (and its firewall rules) is not supported",
    "no_accept": "the agent adds no firewall rules, so it cannot refuse traffic to the VIPs",
    "track_file": "tracking files is not supported (use a vrrp_script)",
    "vrrp_track_file": "tracking files is not supported (use a vrrp_script)",
    "track_process": "tracking processes is not supported (use a vrrp_script)",
    "vrrp_track_process": "tracking processes is not supported (use a vrrp_script)",
    "track_bfd": "BFD tracking is not supported",
    "track_src_ip": "source address tracking is not supported",
    "down_timer_adverts": "the master-down timer is always 3 intervals plus skew (RFC 9568)",
    "lower_prio_no_advert": "a master always answers a lower-priority advert (RFC 9568)",
    "vrrp_lower_prio_no_advert": "a master always answers a lower-priority advert (RFC 9568)",
    "higher_prio_send_advert": "not supported",
    "vrrp_higher_prio_send_advert": "not supported",
    "native_ipv6": "IPv6 is not supported yet",
    "notify_deleted": "not supported (the instance is never deleted while the agent runs)",
    "notify_master_rx_lower_pri": "not supported",
    "auth_hmac": "HMAC authentication is not supported",
    "init_fail": "scripts start as OK here; a check that must start failed is not supported",
    "static_ipaddress": "static addresses are not managed by the agent",
    "static_routes": "static routes are not managed by the agent",
    "static_rules": "static rules are not managed by the agent",
    "vrrp_startup_delay": "not supported; the agent starts as backup and waits 3 intervals",
    "notify_fifo_script": "the agent starts no FIFO reader; run the reader yourself",
    "vrrp_notify_fifo_script": "the agent starts no FIFO reader; run the reader yourself",
    "net_namespace": "run the agent inside the namespace instead (ip netns exec)",
    "instance": "not supported",
    "global_tracking": "tracking in sync groups is not supported",
    "sync_group_tracking_weight": "tracking in sync groups is not supported",
}


class KeepalivedConfError(ConfigError):
    """A keepalived.conf that cannot be converted; ``str()`` is ``FILE:LINE: KEYWORD: reason``."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where a token came from (the file as its include named it, and the line from 1)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the file; ``quoted`` words are never keywords or braces."""

    text: str
    location: Location
    quoted: bool = False

    @property
    def brace(self) -> str | None:
        return self.text if not self.quoted and self.text in ("{", "}") else None


@dataclass(slots=True)
class Statement:
    """A keyword, its arguments and, when it has one, its block."""

    keyword: str
    args: list[Token]
    location: Location
    block: list[Statement] | None = None

    def error(self, reason: str) -> KeepalivedConfError:
        return KeepalivedConfError(f"{self.location}: {self.keyword}: {reason}")


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converted file: the document :func:`agent.config.parse_config` takes, the
    warnings to show, and where each key path came from (for error messages)."""

    document: dict[str, Any]
    warnings: tuple[str, ...]
    origins: Mapping[str, tuple[Location, str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- tokenizer


def _read(path: str, included_at: Location | None) -> str:
    where = f"{included_at}: include: " if included_at else ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeepalivedConfError(f"{where}{path}: no such file") from None
    except IsADirectoryError:
        raise KeepalivedConfError(f"{where}{path}: is a directory") from None
    except PermissionError:
        raise KeepalivedConfError(f"{where}{path}: permission denied") from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise KeepalivedConfError(f"{path}:{line}: not valid UTF-8 text") from None
    except OSError as error:
        raise KeepalivedConfError(f"{where}{path}: cannot read: {error.strerror}") from None


def _tokenize_file(
    path: str, included_at: Location | None, depth: int, warnings: list[str]
) -> list[list[Token]]:
    """The file's non-empty lines as tokens, comments removed and includes expanded."""
    text = _read(path, included_at)
    lines: list[list[Token]] = []
    for number, line in enumerate(text.splitlines(), 1):
        location = Location(path, number)
        tokens = _split_line(line, location)
        if not tokens:
            continue
        first = tokens[0]
        if not first.quoted and first.text[0] in "$@~":
            raise KeepalivedConfError(
                f"{location}: {first.text.split('=')[0]}: keepalived parameters, "
                "conditional lines and sequences are not supported; expand them first"
            )
        if first.text == "include" and not first.quoted:
            if len(tokens) != 2:
                raise KeepalivedConfError(f"{location}: include: needs exactly one pattern")
            if depth >= _MAX_INCLUDE_DEPTH:
                raise KeepalivedConfError(
                    f"{location}: include: nested more than {_MAX_INCLUDE_DEPTH} deep "
                    "(an include loop?)"
                )
            for included in _include_paths(tokens[1].text, path, location, warnings):
                lines.extend(_tokenize_file(included, location, depth + 1, warnings))
            continue
        lines.append(tokens)
    return lines


def _include_paths(pattern: str, including: str, at: Location, warnings: list[str]) -> list[str]:
    """The files an ``include`` names, relative to the including file's directory."""
    full = os.path.join(os.path.dirname(including), os.path.expanduser(pattern))
    if not glob.has_magic(full):
        if not os.path.isfile(full):
            raise KeepalivedConfError(f"{at}: include: {full}: no such file")
        return [full]
    matches = sorted(match for match in glob.glob(full) if os.path.isfile(match))
    if not matches:
        warnings.append(f"{at}: include: {full} matches no file")
    return matches


def _split_line(line: str, location: Location) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    length = len(line)
    while index < length:
        char = line[index]
        if char.isspace():
            index += 1
        elif char in "#!":
            break
        elif char in "{}":
            tokens.append(Token(char, location))
            index += 1
        elif char == '"':
            index += 1
            word: list[str] = []
            while True:
                if index >= length:
                    raise KeepalivedConfError(f"{location}: unterminated quoted string")
                char = line[index]
                if char == "\\" and index + 1 < length and line[index + 1] in '"\\':
                    word.append(line[index + 1])
                    index += 2
                elif char == '"':
                    index += 1
                    break
                else:
                    word.append(char)
                    index += 1
            tokens.append(Token("".join(word), location, quoted=True))
        else:
            start = index
            while index < length and not line[index].isspace() and line[index] not in "{}":
                index += 1
            tokens.append(Token(line[start:index], location))
    return tokens


def parse_statements(lines: list[list[Token]], path: str) -> list[Statement]:
    """Group tokens into statements and blocks (keepalived.conf(5) layout rules)."""
    top: list[Statement] = []
    stack: list[tuple[list[Statement], Statement | None]] = [(top, None)]
    for tokens in lines:
        words: list[Token] = []
        for token in tokens:
            current = stack[-1][0]
            if token.brace is None:
                words.append(token)
                continue
            if words:
                current.append(_statement(words))
                words = []
            if token.brace == "{":
                if not current or current[-1].block is not None:
                    raise KeepalivedConfError(f"{token.location}: '{{' with no keyword before it")
                owner = current[-1]
                owner.block = []
                stack.append((owner.block, owner))
            else:
                if len(stack) == 1:
                    raise KeepalivedConfError(f"{token.location}: '}}' with no block to close")
                stack.pop()
        if words:
            stack[-1][0].append(_statement(words))
    if len(stack) > 1:
        unclosed = stack[-1][1]
        assert unclosed is not None  # only the top level has no owner
        raise KeepalivedConfError(
            f"{unclosed.location}: {unclosed.keyword}: block is never closed (missing '}}' "
            f"before the end of {path})"
        )
    return top


def _statement(words: list[Token]) -> Statement:
    return Statement(words[0].text, words[1:], words[0].location)


# --------------------------------------------------------------------------- detection


def is_keepalived(path: str | Path) -> bool:
    """Whether ``path`` is to be read as keepalived.conf rather than TOML.

    The rule (documented in the README): a name ending in ``.conf`` is keepalived syntax and
    one ending in ``.toml`` is TOML; for any other name, the first line that is not blank
    and not a ``#`` comment decides: keepalived if it is a ``!`` comment or starts with a
    keepalived top-level keyword (``global_defs``, ``vrrp_instance``, ``vrrp_script``,
    ``vrrp_sync_group``, ``include``, ...), TOML otherwise. An unreadable file is TOML, so
    the TOML loader reports the problem.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".conf", ".toml"):
        return suffix == ".conf"
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                if stripped.startswith("!"):
                    return True
                return re.split(r"[\s{]", stripped, maxsplit=1)[0] in _TOP_KEYWORDS
    except OSError:
        return False
    return False


# --------------------------------------------------------------------------- conversion


def convert_file(path: str | Path) -> Conversion:
    """Read keepalived.conf ``path`` (and its includes) into the agent's document."""
    warnings: list[str] = []
    lines = _tokenize_file(str(path), None, 0, warnings)
    statements = parse_statements(lines, str(path))
    converter = _Converter(warnings)
    document = converter.convert(statements, str(path))
    return Conversion(document, tuple(warnings), dict(converter.origins))


def load_keepalived(path: str | Path) -> tuple[AgentConfig, tuple[str, ...]]:
    """Convert and validate ``path``: the configuration and the warnings to show.

    Raises :class:`ConfigError` (a :class:`KeepalivedConfError` for syntax and keyword
    problems) naming the file, the line and the keyword.
    """
    conversion = convert_file(path)
    return validate(conversion, str(path)), conversion.warnings


def validate(conversion: Conversion, path: str) -> AgentConfig:
    """:func:`agent.config.parse_config` on the converted document, its errors rewritten
    to point at the keepalived keyword that produced the offending value."""
    try:
        return parse_config(conversion.document)
    except ConfigError as error:
        raise KeepalivedConfError(_locate(str(error), conversion.origins, path)) from None


def _locate(message: str, origins: Mapping[str, tuple[Location, str]], path: str) -> str:
    key, _, reason = message.partition(": ")
    candidates = [k for k in origins if key == k or key.startswith((k + ".", k + "["))]
    if not candidates:
        return f"{path}: {message}"
    best = max(candidates, key=len)
    location, keyword = origins[best]
    return f"{location}: {keyword}: {reason} (converted to {key})"


class _Converter:
    """Walks the statements once, building the document and recording origins."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.origins: dict[str, tuple[Location, str]] = {}
        self.global_: dict[str, Any] = {}
        self.default_version = KEEPALIVED_VERSION
        self.garp_defaults: dict[str, int | float] = {}
        self.scripts: dict[str, tuple[Statement, dict[str, Any]]] = {}
        self.instances: list[Statement] = []
        self.groups: list[Statement] = []

    def warn(self, statement: Statement, reason: str) -> None:
        self.warnings.append(f"{statement.location}: {statement.keyword}: {reason}")

    def origin(self, key: str, statement: Statement) -> None:
        self.origins[key] = (statement.location, statement.keyword)

    # ---- top level

    def convert(self, statements: list[Statement], path: str) -> dict[str, Any]:
        for statement in statements:
            keyword = statement.keyword
            if keyword == "global_defs":
                self._global_defs(_block(statement))
            elif keyword == "vrrp_script":
                name = _name_arg(statement)
                if name in self.scripts:
                    raise statement.error(
                        f"{name!r} is already defined at {self.scripts[name][0].location}"
                    )
                self.scripts[name] = (statement, {})
            elif keyword == "vrrp_instance":
                _name_arg(statement)
                self.instances.append(statement)
            elif keyword == "vrrp_sync_group":
                _name_arg(statement)
                self.groups.append(statement)
            elif keyword in _IGNORED_TOP:
                self.warn(statement, f"ignored: {_IGNORED_TOP[keyword]}")
            else:
                raise _unsupported(statement, "at the top level")
        if not self.instances:
            raise KeepalivedConfError(f"{path}: no vrrp_instance is defined")
        document: dict[str, Any] = {}
        if self.global_:
            document["global"] = self.global_
        members = self._sync_groups_members()
        scripts = [self._script(statement) for statement, _ in self.scripts.values()]
        if scripts:
            document["script"] = scripts
            for index, (statement, _) in enumerate(self.scripts.values()):
                self.origin(f"script[{index}]", statement)
        weights = {s["name"]: int(s.get("weight", 0)) for s in scripts}
        document["instance"] = [
            self._instance(index, statement, weights, members)
            for index, statement in enumerate(self.instances)
        ]
        if self.groups:
            document["sync_group"] = [
                self._sync_group(index, statement) for index, statement in enumerate(self.groups)
            ]
        return document

    # ---- global_defs

    def _global_defs(self, statements: list[Statement]) -> None:
        for statement in statements:
            keyword = statement.keyword
            if keyword in ("notify_fifo", "vrrp_notify_fifo"):
                if "notify_fifo" in self.global_:
                    raise statement.error(
                        "a notify FIFO is already set; the agent writes one FIFO (it has "
                        "only VRRP events)"
                    )
                if len(statement.args) == 2:
                    self.warn(statement, "the FIFO's owner is ignored; it is created mode 0600")
                elif len(statement.args) != 1:
                    raise statement.error("expects a path and optionally a user")
                self.global_["notify_fifo"] = statement.args[0].text
                self.origin("global.notify_fifo", statement)
            elif keyword == "script_user":
                self.global_["script_user"] = _user_spec(statement)
                self.origin("global.script_user", statement)
            elif keyword == "vrrp_version":
                self.default_version = _integer(statement)
            elif keyword in (
                "vrrp_garp_master_delay",
                "vrrp_garp_master_repeat",
                "vrrp_garp_master_refresh",
                "vrrp_garp_master_refresh_repeat",
            ):
                key = keyword.removeprefix("vrrp_")
                self.garp_defaults[key] = (
                    _integer(statement) if key.endswith("repeat") else _number(statement)
                )
            elif keyword == "vrrp_min_garp":
                if _flag(statement):
                    self.garp_defaults.update(garp_master_delay=0, garp_master_repeat=1)
            else:
                self._ignore_or_reject(statement, _IGNORED_GLOBAL, "in global_defs")

    def _ignore_or_reject(
        self, statement: Statement, ignored: Mapping[str, str], where: str
    ) -> None:
        keyword = statement.keyword
        reason = ignored.get(keyword)
        if reason is None:
            reason = next(
                (text for key, text in ignored.items() if key.endswith("_") and
                 keyword.startswith(key)),
                None,
            )  # fmt: skip
        if reason is None:
            raise _unsupported(statement, where)
        self.warn(statement, f"ignored: {reason}")

    # ---- vrrp_script

    def _script(self, statement: Statement) -> dict[str, Any]:
        name = statement.args[0].text
        script: dict[str, Any] = {"name": name}
        command: tuple[str, ...] | None = None
        values: dict[str, Any] = {}
        for item in _block(statement):
            keyword = item.keyword
            if keyword == "script":
                if not item.args:
                    raise item.error("expects a command")
                text = item.args[0].text if len(item.args) == 1 else _join(item.args)
                command = self._command(item, text)
            elif keyword in ("interval", "timeout"):
                values[keyword] = _number(item)
            elif keyword in ("rise", "fall"):
                values[keyword] = _integer(item)
            elif keyword == "weight":
                if len(item.args) == 2 and item.args[1].text == "reverse":
                    raise item.error("'reverse' weights are not supported")
                values["weight"] = _integer(item, allow_extra=False)
            elif keyword == "user":
                values["user"] = _user_spec(item)
            else:
                self._ignore_or_reject(item, {}, "in vrrp_script")
            self._record_script_origin(name, item)
        if command is None:
            raise statement.error(f"{name!r} has no script line")
        script["path"] = command[0]
        if len(command) > 1:
            script["args"] = list(command[1:])
        script["interval"] = values.pop("interval", KEEPALIVED_SCRIPT_INTERVAL)
        script.update(values)
        return script

    def _record_script_origin(self, name: str, item: Statement) -> None:
        index = list(self.scripts).index(name)
        key = "path" if item.keyword == "script" else item.keyword
        self.origin(f"script[{index}].{key}", item)
        if item.keyword == "script":
            self.origin(f"script[{index}].args", item)

    def _command(self, statement: Statement, text: str) -> tuple[str, ...]:
        """A ``script``/``notify`` command line as argv (module docstring, "Scripts")."""
        if _needs_shell(text):
            self.warn(
                statement,
                f"{text!r} uses shell syntax: converted to /bin/sh -c (the agent never "
                "runs a shell implicitly)",
            )
            return ("/bin/sh", "-c", text)
        try:
            words = shlex.split(text)
        except ValueError as error:
            raise statement.error(f"cannot split {text!r} into words: {error}") from None
        if not words:
            raise statement.error("empty command")
        if not os.path.isabs(words[0]):
            found = shutil.which(words[0], path=SCRIPT_PATH)
            if found is None:
                raise statement.error(
                    f"{words[0]!r} is not in {SCRIPT_PATH}; write an absolute path"
                )
            words[0] = found
        return tuple(words)

    # ---- vrrp_instance

    def _instance(
        self,
        index: int,
        statement: Statement,
        script_weights: Mapping[str, int],
        members: Mapping[str, Statement],
    ) -> dict[str, Any]:
        name = statement.args[0].text
        at = f"instance[{index}]"
        self.origin(at, statement)
        instance: dict[str, Any] = {"name": name}
        values: dict[str, Any] = {}
        origins: dict[str, Statement] = {}
        vip_lines: list[tuple[Statement, str | None]] = []
        state: Statement | None = None
        auth: Statement | None = None
        for item in _block(statement):
            keyword = item.keyword
            simple = _INSTANCE_VALUES.get(keyword)
            if simple is not None:
                key, read = simple
                values[key] = read(item)
                origins[key] = item
            elif keyword == "nopreempt":
                _no_args(item)
                values["preempt"] = False
                origins["preempt"] = item
            elif keyword == "preempt":
                _no_args(item)
                values["preempt"] = True
                origins["preempt"] = item
            elif keyword == "dont_track_primary":
                _no_args(item)
                values["dont_track_primary"] = True
                origins["dont_track_primary"] = item
            elif keyword == "v3_checksum_as_v2":
                _no_args(item)
                values["checksum"] = "rfc9568"
                origins["checksum"] = item
            elif keyword == "virtual_ipaddress":
                vip_lines.extend(self._vip_lines(item))
                origins["vips"] = item
            elif keyword == "authentication":
                auth = item
            elif keyword == "unicast_src_ip":
                values["unicast_src"] = _single(item)
                origins["unicast_src"] = item
            elif keyword == "unicast_peer":
                peers = values.setdefault("unicast_peers", [])
                for peer in self._unicast_peers(item):
                    self.origin(f"{at}.unicast_peers[{len(peers)}]", peer)
                    peers.append(peer.keyword)
                origins["unicast_peers"] = item
            elif keyword in ("track_script", "track_interface"):
                weights = script_weights if keyword == "track_script" else None
                key = f"{keyword}s"
                for entry, line in self._tracks(item, weights, name in members):
                    self.origin(f"{at}.{key}[{len(values.setdefault(key, []))}]", line)
                    values[key].append(entry)
                    origins[key] = item
            elif keyword in _NOTIFY_KEYWORDS:
                values[keyword] = self._notify(item)
                origins[keyword] = item
            elif keyword == "state":
                state = item
                self._ignore_or_reject(item, _IGNORED_INSTANCE, "")
            else:
                self._ignore_or_reject(item, _IGNORED_INSTANCE, "in vrrp_instance")
        version = values.setdefault("version", self.default_version)
        values.setdefault("advert_interval", KEEPALIVED_ADVERT_INT)
        for key, value in self.garp_defaults.items():
            values.setdefault(key, value)
        self._round_interval(values, origins, version)
        self._preemption(values, origins, state)
        if auth is not None:
            self._authentication(auth, values, origins, version)
        values["vips"] = self._vips(vip_lines, values.get("interface"), origins, at)
        for key in _INSTANCE_ORDER:
            if key in values:
                instance[key] = values[key]
            if key in origins:
                self.origin(f"{at}.{key}", origins[key])
        return instance

    def _round_interval(
        self, values: dict[str, Any], origins: dict[str, Statement], version: int
    ) -> None:
        """keepalived rounds ``advert_int`` to what the version can carry (keepalived.md §2)."""
        interval = values["advert_interval"]
        if "advert_interval" not in origins or version not in (2, 3):
            return  # keepalived's default needs no rounding; parse_config reports the version
        if version == 2:
            rounded = max(1.0, float(math.floor(interval + 0.5)))
        else:
            rounded = math.floor(interval * 100 + 0.5) / 100
        if rounded != interval:
            self.warn(
                origins["advert_interval"],
                f"{interval:g} s rounded to {rounded:g} s as keepalived does for VRRPv{version}",
            )
        values["advert_interval"] = int(rounded) if rounded.is_integer() else rounded

    def _preemption(
        self, values: dict[str, Any], origins: dict[str, Statement], state: Statement | None
    ) -> None:
        """keepalived's quirks: ``state MASTER`` clears ``nopreempt`` and ``preempt_delay``
        (ipfailover.md §4.5); ``preempt_delay`` has no effect with ``nopreempt``."""
        if state is not None and state.args and state.args[0].text.upper() == "MASTER":
            for key in ("preempt_delay", "preempt"):
                if key in origins and values[key] not in (True, 0):
                    self.warn(
                        origins[key],
                        "dropped: keepalived clears it on an instance with state MASTER",
                    )
                    del values[key]
        if values.get("preempt") is False and values.get("preempt_delay"):
            self.warn(origins["preempt_delay"], "dropped: it has no effect with nopreempt")
            del values["preempt_delay"]

    def _authentication(
        self,
        statement: Statement,
        values: dict[str, Any],
        origins: dict[str, Statement],
        version: int,
    ) -> None:
        auth_type: str | None = None
        password: Statement | None = None
        for item in _block(statement):
            if item.keyword == "auth_type":
                auth_type = _single(item).upper()
                if auth_type == "AH":
                    raise item.error("AH authentication is not supported (only PASS)")
                if auth_type != "PASS":
                    raise item.error(f"must be PASS or AH, got {auth_type!r}")
                origins["auth_type"] = item
            elif item.keyword == "auth_pass":
                password = item
            else:
                raise _unsupported(item, "in authentication")
        if auth_type is None:
            raise statement.error("has no auth_type")
        if version == 3:
            self.warn(statement, "dropped: keepalived ignores authentication with VRRPv3")
            return
        if password is None:
            raise statement.error("auth_type PASS needs an auth_pass")
        text = _single(password)
        if len(text) > AUTH_PASS_LEN:
            self.warn(
                password,
                f"cut to its first {AUTH_PASS_LEN} characters, as keepalived does "
                "(the password field is 8 bytes, RFC 2338 §5.3.10)",
            )
            text = text[:AUTH_PASS_LEN]
        values["auth_type"] = "pass"
        values["auth_pass"] = text
        origins["auth_pass"] = password

    def _vip_lines(self, statement: Statement) -> list[tuple[Statement, str | None]]:
        """Each VIP line as (statement, dev or None), options checked."""
        lines: list[tuple[Statement, str | None]] = []
        for item in _block(statement):
            args = [token.text for token in item.args]
            dev: str | None = None
            position = 0
            while position < len(args):
                option = args[position]
                if option == "dev" and position + 1 < len(args):
                    dev = args[position + 1]
                    position += 2
                elif option in _IGNORED_VIP_OPTIONS:
                    skip, reason = _IGNORED_VIP_OPTIONS[option]
                    self.warnings.append(f"{item.location}: {option}: ignored: {reason}")
                    position += 1 + skip
                elif option in _REJECTED:
                    raise KeepalivedConfError(f"{item.location}: {option}: {_REJECTED[option]}")
                else:
                    raise KeepalivedConfError(
                        f"{item.location}: {option}: unsupported virtual_ipaddress option"
                    )
            lines.append((item, dev))
        return lines

    def _vips(
        self,
        lines: list[tuple[Statement, str | None]],
        interface: object,
        origins: dict[str, Statement],
        at: str,
    ) -> list[str]:
        vips: list[str] = []
        for item, dev in lines:
            if dev is not None and dev != interface:
                raise KeepalivedConfError(
                    f"{item.location}: dev: VIPs on another interface ({dev}) than the "
                    f"instance's ({interface}) are not supported"
                )
            for vip in _expand_vip(item):
                self.origin(f"{at}.vips[{len(vips)}]", item)
                vips.append(vip)
        return vips

    def _unicast_peers(self, statement: Statement) -> list[Statement]:
        """``unicast_peer { ADDRESS [min_ttl N] [max_ttl N] }``: the peer lines."""
        for item in _block(statement):
            args = [token.text for token in item.args]
            if args and (len(args) % 2 or any(a not in ("min_ttl", "max_ttl") for a in args[::2])):
                raise item.error("expects ADDRESS [min_ttl N] [max_ttl N]")
            if args:
                self.warnings.append(
                    f"{item.location}: {args[0]}: ignored: received TTLs are not checked "
                    "against a range"
                )
        return _block(statement)

    def _tracks(
        self, statement: Statement, script_weights: Mapping[str, int] | None, in_group: bool
    ) -> list[tuple[str | dict[str, Any], Statement]]:
        """``track_script``/``track_interface`` entries (``NAME [weight W]``) and their lines."""
        entries: list[tuple[str | dict[str, Any], Statement]] = []
        for item in _block(statement):
            name = item.keyword
            weight: int | None = None
            args = [token.text for token in item.args]
            if args:
                if args[0] != "weight" or len(args) not in (2, 3):
                    raise item.error("expects NAME or NAME weight W")
                if len(args) == 3:
                    if args[2] == "reverse":
                        raise item.error("'reverse' weights are not supported")
                    if args[2] != "noreverse":
                        raise item.error(f"unexpected {args[2]!r}")
                weight = _to_int(item, args[1])
            effective = weight
            if effective is None and script_weights is not None:
                effective = script_weights.get(name, 0)
            if in_group and effective:
                self.warnings.append(
                    f"{item.location}: {statement.keyword}: {name}: dropped: keepalived "
                    "ignores weighted tracking on a sync group member"
                )
                continue
            entries.append((name if weight is None else {"name": name, "weight": weight}, item))
        return entries

    def _notify(self, statement: Statement) -> str | list[str]:
        """``notify* COMMAND [USER [GROUP]]``: the user must be the global script_user."""
        if not statement.args:
            raise statement.error("expects a command")
        command = self._command(statement, statement.args[0].text)
        if len(statement.args) > 1:
            user = ":".join(token.text for token in statement.args[1:3])
            if len(statement.args) > 3 or user != self.global_.get("script_user"):
                raise statement.error(
                    f"a per-script user ({user}) is not supported for notify scripts; set "
                    "script_user in global_defs (or quote the whole command line)"
                )
        return command[0] if len(command) == 1 else list(command)

    # ---- vrrp_sync_group

    def _sync_groups_members(self) -> dict[str, Statement]:
        members: dict[str, Statement] = {}
        for statement in self.groups:
            for item in _block(statement):
                if item.keyword == "group":
                    for member in _block(item):
                        if member.args:
                            raise member.error("one instance name per line")
                        members[member.keyword] = statement
        return members

    def _sync_group(self, index: int, statement: Statement) -> dict[str, Any]:
        at = f"sync_group[{index}]"
        self.origin(at, statement)
        group: dict[str, Any] = {"name": statement.args[0].text}
        for item in _block(statement):
            keyword = item.keyword
            if keyword == "group":
                group["instances"] = [member.keyword for member in _block(item)]
                self.origin(f"{at}.instances", item)
            elif keyword in _NOTIFY_KEYWORDS:
                group[keyword] = self._notify(item)
                self.origin(f"{at}.{keyword}", item)
            elif keyword in ("track_script", "track_interface"):
                raise item.error(
                    "tracking in a sync group is not supported; track in each instance"
                )
            elif keyword == "smtp_alert":
                self.warn(item, f"ignored: {_MAIL}")
            else:
                raise _unsupported(item, "in vrrp_sync_group")
        return group


# --------------------------------------------------------------------------- helpers


def _unsupported(statement: Statement, where: str) -> KeepalivedConfError:
    reason = _REJECTED.get(statement.keyword)
    if reason is not None:
        return statement.error(reason)
    return statement.error(f"unsupported keyword{' ' + where if where else ''}")


def _block(statement: Statement) -> list[Statement]:
    if statement.block is None:
        raise statement.error("expects a block { ... }")
    return statement.block


def _name_arg(statement: Statement) -> str:
    if len(statement.args) != 1:
        raise statement.error("expects one name")
    return statement.args[0].text


def _no_args(statement: Statement) -> None:
    if statement.args:
        raise statement.error("takes no value")


def _flag(statement: Statement) -> bool:
    """keepalived's optional boolean: no value means true."""
    if not statement.args:
        return True
    value = _single(statement).lower()
    if value in ("true", "on", "yes"):
        return True
    if value in ("false", "off", "no"):
        return False
    raise statement.error(f"expects true or false, got {value!r}")


def _single(statement: Statement) -> str:
    if len(statement.args) != 1:
        raise statement.error("expects one value")
    return statement.args[0].text


def _join(tokens: list[Token]) -> str:
    """Unquoted words as written; quoted ones re-quoted so shlex keeps them whole."""
    return " ".join(shlex.quote(t.text) if t.quoted else t.text for t in tokens)


def _to_int(statement: Statement, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise statement.error(f"expects an integer, got {text!r}") from None


def _integer(statement: Statement, allow_extra: bool = False) -> int:
    if not statement.args or (len(statement.args) > 1 and not allow_extra):
        raise statement.error("expects one integer")
    return _to_int(statement, statement.args[0].text)


def _number(statement: Statement) -> int | float:
    text = _single(statement)
    try:
        value = float(text)
    except ValueError:
        raise statement.error(f"expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise statement.error(f"expects a finite number, got {text!r}")
    return int(value) if value.is_integer() and "." not in text else value


def _string(statement: Statement) -> str:
    return _single(statement)


def _user_spec(statement: Statement) -> str:
    if not 1 <= len(statement.args) <= 2:
        raise statement.error("expects USER [GROUP]")
    return ":".join(token.text for token in statement.args)


def _needs_shell(text: str) -> bool:
    """Whether ``text`` has shell syntax outside single quotes (``$`` and backquotes
    expand inside double quotes too)."""
    quote: str | None = None
    for char in text:
        if quote == "'":
            if char == "'":
                quote = None
        elif char == "'" and quote is None:
            quote = "'"
        elif char == '"':
            quote = None if quote == '"' else '"'
        elif char in "$`" or (quote is None and char in _SHELL_CHARS):
            return True
    return False


def _expand_vip(statement: Statement) -> Iterator[str]:
    """``A.B.C.D[/LEN]`` or keepalived's range ``A.B.C.D-E[/LEN]`` as address strings."""
    text = statement.keyword
    address, slash, prefix = text.partition("/")
    suffix = f"/{prefix}" if slash else ""
    first, dash, last = address.partition("-")
    try:
        start = IPv4Address(first)
    except AddressValueError:
        try:
            IPv6Interface(text if not dash else first)
        except ValueError:
            raise KeepalivedConfError(
                f"{statement.location}: {text}: not an IPv4 address[/prefix]"
            ) from None
        raise KeepalivedConfError(
            f"{statement.location}: {text}: IPv6 VIPs are not supported yet"
        ) from None
    if not dash:
        yield f"{start}{suffix}"
        return
    octets = str(start).split(".")
    end = _to_int(statement, last)
    if not int(octets[3]) <= end <= 255:
        raise KeepalivedConfError(
            f"{statement.location}: {text}: range end must be {octets[3]}..255"
        )
    for host in range(int(octets[3]), end + 1):
        yield f"{'.'.join(octets[:3])}.{host}{suffix}"


#: Single-value instance keywords: TOML key and reader.
_INSTANCE_VALUES: Mapping[str, tuple[str, Callable[[Statement], Any]]] = {
    "interface": ("interface", _string),
    "virtual_router_id": ("vrid", _integer),
    "priority": ("priority", _integer),
    "version": ("version", _integer),
    "advert_int": ("advert_interval", _number),
    "preempt_delay": ("preempt_delay", _number),
    "garp_master_delay": ("garp_master_delay", _number),
    "garp_master_repeat": ("garp_master_repeat", _integer),
    "garp_master_refresh": ("garp_master_refresh", _number),
    "garp_master_refresh_repeat": ("garp_master_refresh_repeat", _integer),
}

#: Key order of a converted instance (the README's order).
_INSTANCE_ORDER = (
    "interface", "vrid", "priority", "version", "advert_interval", "preempt", "preempt_delay",
    "checksum", "auth_type", "auth_pass", "vips", "garp_master_delay", "garp_master_repeat",
    "garp_master_refresh", "garp_master_refresh_repeat", "unicast_peers", "unicast_src",
    "track_scripts", "track_interfaces",
    "dont_track_primary", *_NOTIFY_KEYWORDS,
)  # fmt: skip
