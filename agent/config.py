"""Load and validate the agent's TOML configuration.

Theory of operation
-------------------
:func:`load_config` reads one file with the standard library's :mod:`tomllib` and hands the
document to :func:`parse_config`, which turns it into frozen dataclasses or raises
:class:`ConfigError` at the first problem. Every message names the *key path* of the
offending value (``instance[1].vrid: must be 1..255, got 300``; instances count from 0 in
file order) so that a user can find the line without reading our source. Validation is
strict on purpose: an unknown key is an error (with a "did you mean" hint) because a
misspelt ``prority`` silently falling back to the default is exactly the kind of mistake
that surfaces only during a failover.

Values are converted once, here, into the units the protocol core uses: the advert
interval becomes integer centiseconds (RFC 9568 §5.2.7; VRRPv2 carries whole seconds,
RFC 3768 §5.3.7), VIPs become :class:`~ipaddress.IPv4Interface` objects. The dataclasses
are configuration only; runtime state lives in :class:`agent.core.router.VirtualRouter`,
built from :meth:`InstanceConfig.router_config`.

This module does no I/O apart from reading the one file it is given.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Any, TypeVar

from agent.core.constants import MAX_ADDRESSES, V2_AUTH_DATA_LEN, V2_MAX_INTERVAL_S
from agent.core.constants import V3_MAX_INTERVAL_CS as _V3_MAX_INTERVAL_CS
from agent.core.packet import AuthType, ChecksumForm
from agent.core.router import GarpSettings, RouterConfig
from agent.log import LEVELS as LOG_LEVELS

_T = TypeVar("_T")

#: ``checksum`` values (VRRPv3 only; protocol.md §4 explains the two readings of RFC 5798).
CHECKSUM_FORMS: Mapping[str, ChecksumForm] = {
    "pseudo_header": ChecksumForm.PSEUDO_HEADER,
    "rfc9568": ChecksumForm.MESSAGE_ONLY,
}

#: ``auth_type`` values (VRRPv2 only; RFC 2338 §5.3.6 simple text password).
AUTH_TYPES: Mapping[str, AuthType] = {"none": AuthType.NONE, "pass": AuthType.SIMPLE}

_DEFAULT_GARP = GarpSettings()

_GLOBAL_KEYS = ("log_level",)
_INSTANCE_KEYS = (
    "name",
    "interface",
    "vrid",
    "priority",
    "version",
    "advert_interval",
    "preempt",
    "preempt_delay",
    "vips",
    "checksum",
    "auth_type",
    "auth_pass",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
)
_TOP_KEYS = ("global", "instance")

#: keepalived.conf keywords people will carry over, and what to write instead. The
#: generic "did you mean" match cannot find these because the names differ too much.
_KEEPALIVED_HINTS: Mapping[str, str] = {
    "virtual_router_id": 'use "vrid"',
    "virtual_ipaddress": 'use "vips"',
    "nopreempt": 'use "preempt = false"',
    "authentication": 'use "auth_type" and "auth_pass" (VRRPv2 only)',
    "state": (
        "there is no initial state: every instance starts in Initialize and priority 255 "
        "(address owner) becomes master at once (RFC 9568 §6.4.1)"
    ),
}

#: Instance names appear in logs (``VI_1: BACKUP -> MASTER``) and metric labels.
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Linux IFNAMSIZ is 16 including the terminating NUL.
_IFNAME_MAX = 15
_TOML_POSITION_RE = re.compile(
    r"^(?P<what>.*) \(at (?P<where>line \d+, column \d+|end of document)\)$", re.DOTALL
)


class ConfigError(ValueError):
    """The configuration is unusable; ``str()`` is one line fit for the user.

    Raised by :func:`parse_config` as ``<key path>: <reason>``; :func:`load_config`
    prefixes the file name (``agent.toml: instance[0].vrid: must be 1..255, got 300``,
    ``agent.toml: line 3, column 7: invalid TOML: ...``).
    """


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    """The ``[global]`` table: settings of the agent process as a whole."""

    #: One of ``debug``, ``info``, ``warning``, ``error`` (the names
    #: :func:`agent.log.setup_logging` takes). Default ``info``.
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    """One ``[[instance]]``: a virtual router on one interface (RFC 9568 §6.1)."""

    #: Unique across the file; prefixes log lines and labels metrics. 1..64 characters
    #: from ``A-Z a-z 0-9 _ . -``. Required.
    name: str
    #: Linux interface the instance sends and receives adverts on. Required.
    interface: str
    #: Virtual Router ID, 1..255; unique per interface (RFC 9568 §5.2.3). Required.
    vrid: int
    #: Virtual IPv4 addresses with their prefix length (a bare address was /32); 1..255
    #: of them, no address twice. Required.
    vips: tuple[IPv4Interface, ...]
    #: 1..255; 255 means this node owns the addresses (RFC 9568 §5.2.4). Default 100.
    priority: int = 100
    #: VRRP version, 2 (RFC 3768) or 3 (RFC 9568). Default 3.
    version: int = 3
    #: Advertisement interval in centiseconds: 100..25500 in steps of 100 for VRRPv2,
    #: 1..4095 for VRRPv3. Written in the file as ``advert_interval`` in seconds.
    #: Default 100 (1 s).
    advert_interval_cs: int = 100
    #: Whether a higher-priority backup takes over from a lower-priority master
    #: (Preempt_Mode, RFC 9568 §6.1). Default true.
    preempt: bool = True
    #: Seconds, 0..1000, to wait before preempting (a keepalived extension). Default 0.
    preempt_delay: float = 0.0
    #: VRRPv3 checksum form sent (both forms are accepted on receipt). Default
    #: pseudo-header (keepalived, FRR); VRRPv2 instances always use the message-only form.
    checksum: ChecksumForm = ChecksumForm.PSEUDO_HEADER
    #: VRRPv2 authentication, ``NONE`` or ``SIMPLE`` (RFC 2338 text password). Default none.
    auth_type: AuthType = AuthType.NONE
    #: VRRPv2 simple password, 1..8 ASCII characters when ``auth_type`` is ``SIMPLE``,
    #: otherwise empty. Kept out of ``repr()`` so it never reaches a log.
    auth_pass: str = field(default="", repr=False)
    #: Seconds after becoming master until the second GARP burst; 0 = no second burst.
    #: Default 5.
    garp_master_delay: float = _DEFAULT_GARP.master_delay
    #: Gratuitous ARPs per VIP in each burst, 1..100. Default 5.
    garp_master_repeat: int = _DEFAULT_GARP.master_repeat
    #: Seconds between periodic GARP refresh bursts while master; 0 = off. Default 0.
    garp_master_refresh: float = _DEFAULT_GARP.master_refresh
    #: Gratuitous ARPs per VIP in each refresh burst, 1..100. Default 1.
    garp_master_refresh_repeat: int = _DEFAULT_GARP.master_refresh_repeat

    def router_config(self, primary_address: IPv4Address) -> RouterConfig:
        """The protocol core's view of this instance.

        ``primary_address`` is this node's own address on the interface, which only the
        host layer can look up: it is the advert source and breaks priority ties.
        """
        return RouterConfig(
            name=self.name,
            vrid=self.vrid,
            priority=self.priority,
            version=self.version,
            advert_interval_cs=self.advert_interval_cs,
            vips=self.vips,
            primary_address=primary_address,
            preempt=self.preempt,
            preempt_delay=self.preempt_delay,
            checksum_form=self.checksum,
            auth_type=self.auth_type,
            auth_password=self.auth_pass.encode("ascii"),
            garp=GarpSettings(
                master_delay=self.garp_master_delay,
                master_repeat=self.garp_master_repeat,
                master_refresh=self.garp_master_refresh,
                master_refresh_repeat=self.garp_master_refresh_repeat,
            ),
        )


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """A whole, validated configuration file."""

    #: The ``[global]`` table (all defaults when the table is absent).
    global_: GlobalConfig
    #: The ``[[instance]]`` tables in file order; at least one.
    instances: tuple[InstanceConfig, ...]


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate the TOML file at ``path``.

    Raises :class:`ConfigError` naming the file for anything wrong with it: unreadable,
    not UTF-8, not TOML (with line and column), or invalid values (with the key path).
    """
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not valid UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {_describe_toml_error(error)}") from None
    try:
        return parse_config(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_config(document: Mapping[str, Any]) -> AgentConfig:
    """Validate an already parsed TOML document (as :func:`tomllib.loads` returns it)."""
    top = _Table(document, "", _TOP_KEYS)
    global_ = _parse_global(top.table("global", _GLOBAL_KEYS))
    raw_instances = top.required("instance", "at least one [[instance]] is required")
    if not isinstance(raw_instances, list) or not all(isinstance(t, dict) for t in raw_instances):
        raise ConfigError(
            f"instance: must be an array of tables written as [[instance]], "
            f"got {_type_name(raw_instances)}"
        )
    if not raw_instances:
        raise ConfigError("instance: at least one [[instance]] is required")
    instances = tuple(
        _parse_instance(_Table(raw, f"instance[{index}]", _INSTANCE_KEYS))
        for index, raw in enumerate(raw_instances)
    )
    _check_unique(instances)
    return AgentConfig(global_=global_, instances=instances)


def _describe_toml_error(error: tomllib.TOMLDecodeError) -> str:
    """Reword tomllib's "msg (at line L, column C)" as "line L, column C: invalid TOML: msg"."""
    match = _TOML_POSITION_RE.match(str(error))
    if match is None:
        return f"invalid TOML: {error}"
    return f"{match['where']}: invalid TOML: {match['what']}"


def _parse_global(table: _Table) -> GlobalConfig:
    return GlobalConfig(log_level=table.choice("log_level", LOG_LEVELS, "info")[0])


def _parse_instance(table: _Table) -> InstanceConfig:
    name = table.string("name")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{table.at('name')}: must be 1..64 characters from A-Z a-z 0-9 _ . -, "
            f"got {_show(name)}"
        )
    # Checked in the order of the README's table, so the first error reported is the
    # first one a reader of the file meets.
    interface = _interface(table)
    vrid = table.integer("vrid", 1, 255)
    vips = _vips(table)
    priority = table.integer("priority", 1, 255, default=100)
    version = table.integer("version", 2, 3, default=3)
    advert_interval_cs = _advert_interval_cs(table, version)
    preempt = table.boolean("preempt", default=True)
    preempt_delay = table.bounded_seconds("preempt_delay", 0, 1000, default=0.0)
    if preempt_delay and not preempt:
        raise ConfigError(f"{table.at('preempt_delay')}: has no effect with preempt = false")
    auth_type, auth_pass = _auth(table, version)
    return InstanceConfig(
        name=name,
        interface=interface,
        vrid=vrid,
        vips=vips,
        priority=priority,
        version=version,
        advert_interval_cs=advert_interval_cs,
        preempt=preempt,
        preempt_delay=preempt_delay,
        checksum=_checksum(table, version),
        auth_type=auth_type,
        auth_pass=auth_pass,
        garp_master_delay=table.bounded_seconds(
            "garp_master_delay", 0, math.inf, default=_DEFAULT_GARP.master_delay
        ),
        garp_master_repeat=table.integer(
            "garp_master_repeat", 1, 100, default=_DEFAULT_GARP.master_repeat
        ),
        garp_master_refresh=table.bounded_seconds(
            "garp_master_refresh", 0, math.inf, default=_DEFAULT_GARP.master_refresh
        ),
        garp_master_refresh_repeat=table.integer(
            "garp_master_refresh_repeat", 1, 100, default=_DEFAULT_GARP.master_refresh_repeat
        ),
    )


def _interface(table: _Table) -> str:
    """An interface name the kernel could accept (``dev_valid_name()`` in net/core/dev.c)."""
    name = table.string("interface")
    if (
        not 1 <= len(name) <= _IFNAME_MAX
        or name in (".", "..")
        or any(c == "/" or c == ":" or c.isspace() for c in name)
    ):
        raise ConfigError(
            f"{table.at('interface')}: not a valid Linux interface name "
            f"(1..{_IFNAME_MAX} characters, no '/', ':' or spaces), got {_show(name)}"
        )
    return name


def _advert_interval_cs(table: _Table, version: int) -> int:
    """Seconds in the file, centiseconds in the core (RFC 3768 §5.3.7, RFC 9568 §5.2.7)."""
    seconds = table.seconds("advert_interval", default=1.0)
    key = table.at("advert_interval")
    # Decimal(repr(x)) is the shortest decimal that round-trips, so 0.1 is exactly 10 cs
    # where 0.1 * 100 would be 10.000000000000002.
    centiseconds = Decimal(repr(seconds)) * 100
    if version == 2:
        # Range first: the remainder of a huge Decimal is an InvalidOperation.
        if not 100 <= centiseconds <= V2_MAX_INTERVAL_S * 100 or centiseconds % 100:
            raise ConfigError(
                f"{key}: must be whole seconds 1..{V2_MAX_INTERVAL_S} with version = 2 "
                f"(RFC 3768 §5.3.7), got {_show(seconds)}"
            )
    elif not 1 <= centiseconds <= _V3_MAX_INTERVAL_CS or centiseconds % 1:
        raise ConfigError(
            f"{key}: must be 0.01..40.95 seconds in steps of 0.01 with version = 3 "
            f"(RFC 9568 §5.2.7), got {_show(seconds)}"
        )
    return int(centiseconds)


def _checksum(table: _Table, version: int) -> ChecksumForm:
    if version == 2:
        table.forbid(
            "checksum",
            "only applies to version = 3; VRRPv2 always checksums the message only "
            "(RFC 3768 §5.3.8)",
        )
        return ChecksumForm.MESSAGE_ONLY
    return table.choice("checksum", CHECKSUM_FORMS, "pseudo_header")[1]


def _auth(table: _Table, version: int) -> tuple[AuthType, str]:
    """``auth_type`` and ``auth_pass``: RFC 2338 simple passwords, kept for VRRPv2 peers."""
    if version == 3:
        reason = "only applies to version = 2; VRRPv3 packets have no authentication field"
        table.forbid("auth_type", reason)
        table.forbid("auth_pass", reason)
        return AuthType.NONE, ""
    auth_type = table.choice("auth_type", AUTH_TYPES, "none")[1]
    if auth_type is AuthType.NONE:
        table.forbid("auth_pass", 'only applies with auth_type = "pass"')
        return auth_type, ""
    password = table.string("auth_pass")
    if not password.isascii():
        raise ConfigError(f"{table.at('auth_pass')}: must contain only ASCII characters")
    if not 1 <= len(password) <= V2_AUTH_DATA_LEN:
        raise ConfigError(
            f"{table.at('auth_pass')}: must be 1..{V2_AUTH_DATA_LEN} characters (it travels "
            f"in the {V2_AUTH_DATA_LEN}-byte VRRPv2 authentication data), got {len(password)}"
        )
    return auth_type, password


def _vips(table: _Table) -> tuple[IPv4Interface, ...]:
    key = table.at("vips")
    raw = table.required("vips")
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: must be an array of strings, got {_type_name(raw)}")
    if not 1 <= len(raw) <= MAX_ADDRESSES:
        raise ConfigError(
            f"{key}: must list 1..{MAX_ADDRESSES} addresses (the advert's count field, "
            f"RFC 9568 §5.2.5), got {len(raw)}"
        )
    vips: list[IPv4Interface] = []
    first_seen: dict[IPv4Address, int] = {}
    for index, item in enumerate(raw):
        vip = _vip(item, f"{key}[{index}]")
        if vip.ip in first_seen:
            raise ConfigError(
                f"{key}[{index}]: {vip.ip} is already listed as vips[{first_seen[vip.ip]}]"
            )
        first_seen[vip.ip] = index
        vips.append(vip)
    return tuple(vips)


def _vip(item: object, key: str) -> IPv4Interface:
    """One VIP: "a.b.c.d" (a /32) or "a.b.c.d/len"; host bits are allowed, as for `ip addr`."""
    if not isinstance(item, str):
        raise ConfigError(
            f'{key}: must be a string such as "10.0.0.100/24", got {_type_name(item)}'
        )
    try:
        vip = IPv4Interface(item)
    except ValueError:
        try:
            IPv6Interface(item)
        except ValueError:
            raise ConfigError(
                f'{key}: not an IPv4 address or address/prefix such as "10.0.0.100/24", '
                f"got {_show(item)}"
            ) from None
        raise ConfigError(f"{key}: IPv6 is not supported yet, got {_show(item)}") from None
    if (
        vip.ip.is_unspecified
        or vip.ip.is_loopback
        or vip.ip.is_multicast
        or (vip.ip == IPv4Address("255.255.255.255"))
    ):
        raise ConfigError(f"{key}: {vip.ip} cannot be a virtual address (not unicast)")
    return vip


def _check_unique(instances: tuple[InstanceConfig, ...]) -> None:
    """Names identify instances in logs; (interface, VRID) identifies them on the wire."""
    names: dict[str, int] = {}
    routers: dict[tuple[str, int], int] = {}
    for index, instance in enumerate(instances):
        if instance.name in names:
            raise ConfigError(
                f"instance[{index}].name: {_show(instance.name)} is already used by "
                f"instance[{names[instance.name]}]"
            )
        names[instance.name] = index
        router = (instance.interface, instance.vrid)
        if router in routers:
            other = instances[routers[router]]
            raise ConfigError(
                f"instance[{index}].vrid: VRID {instance.vrid} on interface "
                f"{_show(instance.interface)} is already used by instance[{routers[router]}] "
                f"({_show(other.name)})"
            )
        routers[router] = index


class _Table:
    """One TOML table being validated, and the key path that error messages name."""

    def __init__(self, data: Mapping[str, Any], path: str, known: tuple[str, ...]) -> None:
        self._data = data
        self._path = path
        for key in data:
            if key not in known:
                raise ConfigError(f"{self.at(key)}: unknown key{_hint(key, known)}")

    def at(self, key: str) -> str:
        """The key path of ``key`` in this table."""
        return f"{self._path}.{key}" if self._path else key

    def required(self, key: str, reason: str = "required key is missing") -> object:
        if key not in self._data:
            raise ConfigError(f"{self.at(key)}: {reason}")
        return self._data[key]

    def forbid(self, key: str, reason: str) -> None:
        """Reject a key that is valid elsewhere but meaningless with the other settings."""
        if key in self._data:
            raise ConfigError(f"{self.at(key)}: {reason}")

    def _get(self, key: str, default: object) -> object:
        """The value of ``key``; a ``default`` of None makes the key required."""
        return self.required(key) if default is None else self._data.get(key, default)

    def table(self, key: str, known: tuple[str, ...]) -> _Table:
        """An optional sub-table (empty when absent)."""
        value = self._data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.at(key)}: must be a table [{key}], got {_type_name(value)}")
        return _Table(value, self.at(key), known)

    def string(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.at(key)}: must be a string, got {_type_name(value)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(
                f"{self.at(key)}: must be true or false, got {_type_name(value)} {_show(value)}"
            )
        return value

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{self.at(key)}: must be an integer {low}..{high}, "
                f"got {_type_name(value)} {_show(value)}"
            )
        if not low <= value <= high:
            raise ConfigError(f"{self.at(key)}: must be {low}..{high}, got {value}")
        return value

    def seconds(self, key: str, default: float) -> int | float:
        """A duration as written: integers and floats are both fine, NaN and infinity not."""
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"{self.at(key)}: must be a number of seconds, got {_type_name(value)} "
                f"{_show(value)}"
            )
        if not math.isfinite(value):
            raise ConfigError(f"{self.at(key)}: must be a finite number, got {_show(value)}")
        return value

    def bounded_seconds(self, key: str, low: float, high: float, default: float) -> float:
        value = self.seconds(key, default)
        if not low <= value <= high:
            limits = f"at least {low}" if math.isinf(high) else f"{low}..{high}"
            raise ConfigError(f"{self.at(key)}: must be {limits} seconds, got {_show(value)}")
        return float(value)

    def choice(self, key: str, choices: Mapping[str, _T], default: str) -> tuple[str, _T]:
        value = self.string(key, default)
        if value not in choices:
            allowed = ", ".join(_show(choice) for choice in choices)
            raise ConfigError(f"{self.at(key)}: must be one of {allowed}, got {_show(value)}")
        return value, choices[value]


def _hint(key: str, known: tuple[str, ...]) -> str:
    if key in _KEEPALIVED_HINTS:
        return f" ({_KEEPALIVED_HINTS[key]})"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    return f"; known keys: {', '.join(known)}"


def _type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for messages about the wrong type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime | date | time):
        return "date/time"
    return type(value).__name__


def _show(value: object) -> str:
    """A value as it would be written in TOML: strings quoted, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value) if isinstance(value, int | float) else str(value)
