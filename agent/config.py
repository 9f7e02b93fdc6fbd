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

Check scripts (``[[script]]``), notify scripts and sync groups are validated here too,
so that a typo in a script path is a start-up error rather than a check that fails at
every interval: paths must be absolute, exist, be regular files and be executable, and
``user`` names are resolved to ids now (NSS lookups block, so they must not happen on the
event loop). :meth:`AgentConfig.check_scripts`, :meth:`InstanceConfig.tcp_check` and
:meth:`AgentConfig.notify_scripts` hand the daemon the objects that
:mod:`agent.host.scripts` and :mod:`agent.host.notify` run.

This module does no I/O apart from reading the one file it is given and looking at the
script paths and users it names.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any, TypeVar

from agent.core.constants import MAX_ADDRESSES, V2_AUTH_DATA_LEN, V2_MAX_INTERVAL_S
from agent.core.constants import V3_MAX_INTERVAL_CS as _V3_MAX_INTERVAL_CS
from agent.core.packet import AuthType, ChecksumForm
from agent.core.router import GarpSettings, RouterConfig
from agent.host.notify import DEFAULT_NOTIFY_TIMEOUT, Command, Kind, NotifyScripts
from agent.host.scripts import CheckScript, ScriptUser, TcpCheck, resolve_user
from agent.log import FORMATS as LOG_FORMATS
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

#: Seconds between two runs of a check script or TCP check when not configured (the
#: OpenShift image's ``OPENSHIFT_HA_CHECK_INTERVAL`` default; keepalived's is 1).
DEFAULT_CHECK_INTERVAL = 2.0
#: Bounds of a tracking weight (keepalived.conf(5): -253..253, so that no weight can move a
#: priority across the whole 1..254 range in one step).
MAX_WEIGHT = 253
#: Bounds of ``rise`` and ``fall``.
MAX_RISE_FALL = 100
#: Most ``unicast_peers`` of one instance: every advert is sent once per peer.
MAX_UNICAST_PEERS = 255
#: ``[global] metrics_listen`` default: loopback only, on the port the keepalived
#: exporters use, so an existing scrape configuration finds it.
DEFAULT_METRICS_LISTEN = "127.0.0.1:9650"
#: ``[global] control_socket`` default (systemd's ``RuntimeDirectory=vrrp-agent``).
DEFAULT_CONTROL_SOCKET = "/run/vrrp-agent/control.sock"
#: Longest unix socket path Linux can bind (``sun_path`` is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107

_GLOBAL_KEYS = (
    "log_level",
    "log_format",
    "notify_fifo",
    "script_user",
    "bpf",
    "bpf_attach",
    "metrics_listen",
    "metrics_keepalived_names",
    "control_socket",
)
_SCRIPT_KEYS = ("name", "path", "args", "interval", "timeout", "rise", "fall", "weight", "user")
_NOTIFY_KEYS = (
    "notify",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify_timeout",
)
_TRACK_KEYS = ("name", "weight")
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
    "unicast_peers",
    "unicast_src",
    "track_scripts",
    "track_interfaces",
    "dont_track_primary",
    "monitor_port",
    "monitor_interval",
    "monitor_timeout",
    *_NOTIFY_KEYS,
)
_SYNC_GROUP_KEYS = ("name", "instances", *_NOTIFY_KEYS)
_TOP_KEYS = ("global", "script", "instance", "sync_group")

#: keepalived.conf keywords people will carry over, and what to write instead. The
#: generic "did you mean" match cannot find these because the names differ too much.
_KEEPALIVED_HINTS: Mapping[str, str] = {
    "virtual_router_id": 'use "vrid"',
    "virtual_ipaddress": 'use "vips"',
    "nopreempt": 'use "preempt = false"',
    "authentication": 'use "auth_type" and "auth_pass" (VRRPv2 only)',
    "vrrp_script": "use [[script]] tables",
    "vrrp_sync_group": "use [[sync_group]] tables",
    "track_script": 'use "track_scripts"',
    "track_interface": 'use "track_interfaces"',
    "unicast_peer": 'use "unicast_peers", an array of addresses',
    "unicast_src_ip": 'use "unicast_src"',
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


class BpfMode(StrEnum):
    """Whether the eBPF receive filter is used (``[global] bpf``)."""

    #: Use it when it loads; otherwise run in userspace and log why, once.
    AUTO = "auto"
    #: Use it or refuse to start (exit 2 with the reason).
    REQUIRED = "required"
    #: Never load it.
    OFF = "off"


class BpfAttach(StrEnum):
    """Where the eBPF program runs (``[global] bpf_attach``)."""

    #: A socket filter on the agent's own VRRP socket: it disappears with the socket, so
    #: a crash leaves nothing behind, and it enables kernel-only receive.
    SOCKET = "socket"
    #: tc ingress (clsact) as an observer that counts and records but never drops;
    #: removed on exit and, after a kill -9, at the next start.
    TC = "tc"


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    """The ``[global]`` table: settings of the agent process as a whole."""

    #: One of ``debug``, ``info``, ``warning``, ``error`` (the names
    #: :func:`agent.log.setup_logging` takes). Default ``info``.
    log_level: str = "info"
    #: Absolute path of a named pipe that gets one line per state change in keepalived's
    #: format (``INSTANCE "VI_1" MASTER 100``); created (mode 0600) if missing. Default
    #: none.
    notify_fifo: str | None = None
    #: The user (and group) check and notify scripts run as when they name none
    #: themselves (keepalived's ``script_user``), resolved when the file is loaded.
    #: Default none: scripts run as the agent's own user.
    script_user: ScriptUser | None = None
    #: The eBPF receive filter: ``auto`` (default), ``required`` or ``off``.
    bpf: BpfMode = BpfMode.AUTO
    #: ``socket`` (default) or ``tc``; see :class:`BpfAttach`.
    bpf_attach: BpfAttach = BpfAttach.SOCKET
    #: ``text`` (default) or ``json`` lines; see :func:`agent.log.setup_logging`.
    log_format: str = "text"
    #: ``host:port`` of the Prometheus endpoint (``/metrics``, ``/healthz``, ``/status``);
    #: the host is an IPv4 address or a bracketed IPv6 one (``[::]``). Loopback by default
    #: so that nothing is exposed to the LAN unless asked for. ``""`` disables it.
    metrics_listen: str = DEFAULT_METRICS_LISTEN
    #: Also export the metric names of the keepalived exporters (keepalived.md §13), so
    #: that existing dashboards keep working. Default false.
    metrics_keepalived_names: bool = False
    #: Absolute path of the unix socket ``vrrp-agent status/reload/drain`` talk to
    #: (mode 0600). ``""`` disables it.
    control_socket: str = DEFAULT_CONTROL_SOCKET


@dataclass(frozen=True, slots=True)
class ScriptConfig:
    """One ``[[script]]``: a check run periodically (keepalived ``vrrp_script``).

    Exit status 0 is success; anything else, a signal or the timeout is a failure
    (keepalived.md §3). Instances take part through their ``track_scripts``; a script
    tracked by several instances still runs once per interval.
    """

    #: Unique among the scripts; what ``track_scripts`` names. Same character rules as
    #: instance names. Required.
    name: str
    #: Absolute path of an existing executable regular file, run without a shell.
    #: Required.
    path: str
    #: Arguments passed after the path. Default none.
    args: tuple[str, ...] = ()
    #: Seconds between the starts of two runs, > 0. Default 2.
    interval: float = DEFAULT_CHECK_INTERVAL
    #: Seconds a run may take before its process group is killed (a failure), > 0.
    #: Written as ``timeout``; when absent, the interval.
    timeout: float = DEFAULT_CHECK_INTERVAL
    #: Consecutive successes that make a failed script OK again, 1..100. Default 1.
    rise: int = 1
    #: Consecutive failures that make an OK script failed, 1..100. Default 1.
    fall: int = 1
    #: -253..253. 0: a failed script puts the tracking instances in FAULT; > 0 is added to
    #: their priority while the script is OK; < 0 is subtracted while it fails. An
    #: instance's ``track_scripts`` entry may override it. Default 0.
    weight: int = 0
    #: Who the script runs as, from ``user = "name"`` or ``"name:group"``. Default: the
    #: global ``script_user``, else the agent's own user.
    user: ScriptUser | None = None

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.path, *self.args)

    def check_script(self, default_user: ScriptUser | None = None) -> CheckScript:
        """The runnable check (:class:`agent.host.scripts.CheckScript`); ``default_user``
        is the global ``script_user``, used when the script names no user."""
        return CheckScript(
            name=self.name,
            argv=self.argv,
            interval=self.interval,
            timeout=self.timeout,
            rise=self.rise,
            fall=self.fall,
            user=self.user if self.user is not None else default_user,
        )


@dataclass(frozen=True, slots=True)
class TrackedScript:
    """One entry of an instance's ``track_scripts``."""

    #: The ``[[script]]`` it refers to.
    name: str
    #: The weight this instance applies: the entry's own ``weight`` if it has one, else
    #: the script's. -253..253, 0 = FAULT while failing.
    weight: int


@dataclass(frozen=True, slots=True)
class TrackedInterface:
    """An interface whose link state an instance follows (keepalived ``track_interface``)."""

    #: Linux interface name.
    name: str
    #: 0: link down puts the instance in FAULT; otherwise added to the priority while
    #: up (> 0) or subtracted while down (< 0), -253..253. Default 0.
    weight: int = 0


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notify scripts of an instance or sync group (keepalived.md §5).

    Each command is an absolute path to an executable and its configured arguments. The
    generic ``notify`` gets four more: ``INSTANCE`` or ``GROUP``, the name, the new state
    (``MASTER``, ``BACKUP``, ``FAULT``, ``STOP``) and the priority.
    """

    #: Generic script, run after the per-state one on every change. Default none.
    notify: tuple[str, ...] | None = None
    #: Run on entering MASTER (``notify_master``). Default none.
    master: tuple[str, ...] | None = None
    #: Run on entering BACKUP (``notify_backup``). Default none.
    backup: tuple[str, ...] | None = None
    #: Run on entering FAULT (``notify_fault``). Default none.
    fault: tuple[str, ...] | None = None
    #: Run when the agent stops the instance (``notify_stop``). Default none.
    stop: tuple[str, ...] | None = None
    #: Seconds one call may run before its process group is killed, > 0. Default 10.
    timeout: float = DEFAULT_NOTIFY_TIMEOUT

    @property
    def configured(self) -> bool:
        """Whether any script is set."""
        return any(
            command is not None
            for command in (self.notify, self.master, self.backup, self.fault, self.stop)
        )

    def scripts(self, user: ScriptUser | None = None) -> NotifyScripts:
        """The dispatcher's view (:class:`agent.host.notify.NotifyScripts`), every command
        run as ``user`` (the global ``script_user``)."""

        def command(argv: tuple[str, ...] | None) -> Command | None:
            return None if argv is None else Command(argv, user)

        return NotifyScripts(
            notify=command(self.notify),
            master=command(self.master),
            backup=command(self.backup),
            fault=command(self.fault),
            stop=command(self.stop),
            timeout=self.timeout,
        )


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
    #: Unicast mode (keepalived ``unicast_peer``, draft-abinabraham-vrrp-unicast): the
    #: peers' IPv4 addresses, in file order, unique, none of them a VIP; every advert goes
    #: to each of them and only their adverts count. Empty (default): multicast to
    #: 224.0.0.18. The node's own addresses may be listed (one list for every node):
    #: the daemon leaves them out.
    unicast_peers: tuple[IPv4Address, ...] = ()
    #: Unicast mode only: the source address of our adverts (keepalived
    #: ``unicast_src_ip``), which must be an address of the interface when the agent
    #: starts. Default none: the interface's primary address.
    unicast_src: IPv4Address | None = None
    #: The ``[[script]]`` checks this instance follows, in file order. Default none.
    track_scripts: tuple[TrackedScript, ...] = ()
    #: The interfaces listed in ``track_interfaces``, in file order (the instance's own
    #: interface is added by :attr:`tracked_interfaces`). Default none.
    track_interfaces: tuple[TrackedInterface, ...] = ()
    #: Whether link down on the instance's own interface is ignored (keepalived's
    #: ``dont_track_primary``). Default false: it means FAULT.
    dont_track_primary: bool = False
    #: TCP port of the default check, 0..65535: when the instance tracks no script, a
    #: TCP connect to the node's own address on this port (ipfailover.md §5). 0 = no
    #: check. Default 0.
    monitor_port: int = 0
    #: Seconds between two TCP checks, > 0. Default 2.
    monitor_interval: float = DEFAULT_CHECK_INTERVAL
    #: Seconds a TCP connect may take before it counts as failed, > 0. Written as
    #: ``monitor_timeout``; when absent, the interval.
    monitor_timeout: float = DEFAULT_CHECK_INTERVAL
    #: The instance's notify scripts and their timeout. Default none.
    notify: NotifyConfig = NotifyConfig()

    @property
    def tracked_interfaces(self) -> tuple[TrackedInterface, ...]:
        """Every interface whose link state matters: the instance's own first, with
        weight 0 (link down = FAULT, as in keepalived) unless ``dont_track_primary`` is
        set or ``track_interfaces`` lists it with its own weight, then the listed ones."""
        listed = {tracked.name for tracked in self.track_interfaces}
        if self.dont_track_primary or self.interface in listed:
            return self.track_interfaces
        return (TrackedInterface(self.interface), *self.track_interfaces)

    def tcp_check(self, address: IPv4Address) -> TcpCheck | None:
        """The default TCP check to ``address`` (the node's own address on the interface,
        which only the host layer knows), or None when the instance tracks scripts or
        ``monitor_port`` is 0. Its weight is 0: failing means FAULT."""
        if self.track_scripts or not self.monitor_port:
            return None
        return TcpCheck(
            name=f"{self.name}:tcp/{self.monitor_port}",
            address=address,
            port=self.monitor_port,
            interval=self.monitor_interval,
            timeout=self.monitor_timeout,
        )

    def router_config(self, primary_address: IPv4Address) -> RouterConfig:
        """The protocol core's view of this instance.

        ``primary_address`` is this node's own address on the interface, which only the
        host layer can look up: it is the advert source and breaks priority ties (the
        ``unicast_src`` when one is set).
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
            unicast_peers=self.unicast_peers,
        )


@dataclass(frozen=True, slots=True)
class SyncGroupConfig:
    """One ``[[sync_group]]``: instances that change state together (keepalived.md §4)."""

    #: Unique among the sync groups; ``$2`` of the group's notify calls. Required.
    name: str
    #: Names of the member instances, at least 2; an instance is in at most one group.
    instances: tuple[str, ...]
    #: The group's notify scripts (``$1`` = ``GROUP``). Default none.
    notify: NotifyConfig = NotifyConfig()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """A whole, validated configuration file."""

    #: The ``[global]`` table (all defaults when the table is absent).
    global_: GlobalConfig
    #: The ``[[instance]]`` tables in file order; at least one.
    instances: tuple[InstanceConfig, ...]
    #: The ``[[script]]`` tables in file order. Default none.
    scripts: tuple[ScriptConfig, ...] = ()
    #: The ``[[sync_group]]`` tables in file order. Default none.
    sync_groups: tuple[SyncGroupConfig, ...] = ()

    def script(self, name: str) -> ScriptConfig:
        """The ``[[script]]`` called ``name`` (KeyError if there is none)."""
        for script in self.scripts:
            if script.name == name:
                return script
        raise KeyError(name)

    def check_scripts(self) -> dict[str, CheckScript]:
        """A runnable check per ``[[script]]`` that some instance tracks, by name, with
        the global ``script_user`` applied. Run each once, whatever the number of
        instances tracking it, and give its results to all of them."""
        tracked = {entry.name for inst in self.instances for entry in inst.track_scripts}
        return {
            script.name: script.check_script(self.global_.script_user)
            for script in self.scripts
            if script.name in tracked
        }

    def notify_scripts(self) -> dict[tuple[Kind, str], NotifyScripts]:
        """What :class:`agent.host.notify.NotifyDispatcher` takes: the notify scripts of
        every instance and sync group that has some, run as the global ``script_user``."""
        user = self.global_.script_user
        scripts: dict[tuple[Kind, str], NotifyScripts] = {}
        for instance in self.instances:
            if instance.notify.configured:
                scripts[Kind.INSTANCE, instance.name] = instance.notify.scripts(user)
        for group in self.sync_groups:
            if group.notify.configured:
                scripts[Kind.GROUP, group.name] = group.notify.scripts(user)
        return scripts

    def sync_group_of(self, instance: str) -> SyncGroupConfig | None:
        """The sync group the instance called ``instance`` belongs to, if any."""
        for group in self.sync_groups:
            if instance in group.instances:
                return group
        return None


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
    # Scripts first: instances refer to them by name.
    scripts: dict[str, ScriptConfig] = {}
    for table in top.tables("script", _SCRIPT_KEYS):
        script = _parse_script(table)
        if script.name in scripts:
            raise ConfigError(
                f"{table.at('name')}: {_show(script.name)} is already used by "
                f"script[{list(scripts).index(script.name)}]"
            )
        scripts[script.name] = script
    instances = tuple(
        _parse_instance(table, scripts)
        for table in top.tables("instance", _INSTANCE_KEYS, required=True)
    )
    _check_unique(instances)
    return AgentConfig(
        global_=global_,
        instances=instances,
        scripts=tuple(scripts.values()),
        sync_groups=_parse_sync_groups(top, instances),
    )


def _describe_toml_error(error: tomllib.TOMLDecodeError) -> str:
    """Reword tomllib's "msg (at line L, column C)" as "line L, column C: invalid TOML: msg"."""
    match = _TOML_POSITION_RE.match(str(error))
    if match is None:
        return f"invalid TOML: {error}"
    return f"{match['where']}: invalid TOML: {match['what']}"


def _parse_global(table: _Table) -> GlobalConfig:
    return GlobalConfig(
        log_level=table.choice("log_level", LOG_LEVELS, "info")[0],
        notify_fifo=_fifo_path(table, "notify_fifo"),
        script_user=_user(table, "script_user"),
        bpf=table.choice("bpf", {mode.value: mode for mode in BpfMode}, "auto")[1],
        bpf_attach=table.choice(
            "bpf_attach", {attach.value: attach for attach in BpfAttach}, "socket"
        )[1],
        log_format=table.choice("log_format", {fmt: fmt for fmt in LOG_FORMATS}, "text")[0],
        metrics_listen=_metrics_listen(table),
        metrics_keepalived_names=table.boolean("metrics_keepalived_names", default=False),
        control_socket=_control_socket(table),
    )


def parse_listen_address(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``: an IPv4 address or a bracketed IPv6 one
    (``[::1]:9650``, returned without the brackets), and a port 0..65535.

    Raises ValueError with the reason. Literal addresses only: a name would need a DNS
    lookup at start-up, and could resolve to something else on the next restart.
    """
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError('must be "host:port", such as "127.0.0.1:9650" or "[::]:9650"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            IPv6Address(host)
        except ValueError:
            raise ValueError("the address in brackets must be an IPv6 address") from None
    else:
        try:
            IPv4Address(host)
        except ValueError:
            raise ValueError(
                "the host must be an IPv4 address, or an IPv6 address in brackets such as "
                "[::1] (names are not looked up)"
            ) from None
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number 0..65535")
    return host, int(port_text)


def _metrics_listen(table: _Table) -> str:
    """``metrics_listen``: ``""`` (off) or a literal ``host:port`` with a port 1..65535
    (port 0 would pick a random port no scraper could find)."""
    value = table.string("metrics_listen", DEFAULT_METRICS_LISTEN)
    if value == "":
        return value
    try:
        _, port = parse_listen_address(value)
    except ValueError as error:
        raise ConfigError(f"{table.at('metrics_listen')}: {error}, got {_show(value)}") from None
    if port == 0:
        raise ConfigError(f"{table.at('metrics_listen')}: the port must be 1..65535, got 0")
    return value


def _control_socket(table: _Table) -> str:
    """``control_socket``: ``""`` (off) or an absolute path short enough to bind. The
    directory may be missing: the agent creates it (mode 0700) at start-up."""
    value = table.string("control_socket", DEFAULT_CONTROL_SOCKET)
    at = table.at("control_socket")
    if value == "":
        return value
    if not os.path.isabs(value) or value.endswith("/"):
        raise ConfigError(f"{at}: must be an absolute path of a file, got {_show(value)}")
    if "\0" in value:
        raise ConfigError(f"{at}: must not contain a NUL character")
    if len(os.fsencode(value)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"{at}: at most {MAX_SOCKET_PATH} bytes (the unix socket limit), "
            f"got {len(os.fsencode(value))}"
        )
    return value


def _name(table: _Table) -> str:
    """An instance, script or group name: it appears in logs and metric labels."""
    name = table.string("name")
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{table.at('name')}: must be 1..64 characters from A-Z a-z 0-9 _ . -, "
            f"got {_show(name)}"
        )
    return name


def _parse_script(table: _Table) -> ScriptConfig:
    name = _name(table)
    path = executable_path(table.required("path"), table.at("path"))
    args = table.strings("args")
    interval = table.positive_seconds("interval", DEFAULT_CHECK_INTERVAL)
    return ScriptConfig(
        name=name,
        path=path,
        args=args,
        interval=interval,
        timeout=table.positive_seconds("timeout", interval),
        rise=table.integer("rise", 1, MAX_RISE_FALL, default=1),
        fall=table.integer("fall", 1, MAX_RISE_FALL, default=1),
        weight=table.integer("weight", -MAX_WEIGHT, MAX_WEIGHT, default=0),
        user=_user(table, "user"),
    )


def _parse_instance(table: _Table, scripts: Mapping[str, ScriptConfig]) -> InstanceConfig:
    name = _name(table)
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
    unicast_peers, unicast_src = _unicast(table, vips)
    track_scripts = _track_scripts(table, name, scripts)
    monitor_port, monitor_interval, monitor_timeout = _monitor(table, track_scripts)
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
        unicast_peers=unicast_peers,
        unicast_src=unicast_src,
        track_scripts=track_scripts,
        track_interfaces=_track_interfaces(table),
        dont_track_primary=table.boolean("dont_track_primary", default=False),
        monitor_port=monitor_port,
        monitor_interval=monitor_interval,
        monitor_timeout=monitor_timeout,
        notify=_notify(table),
    )


def _track_scripts(
    table: _Table, instance: str, scripts: Mapping[str, ScriptConfig]
) -> tuple[TrackedScript, ...]:
    """``track_scripts``: names of ``[[script]]`` tables, or ``{name = ..., weight = ...}``
    to give this instance its own weight for a shared script."""
    tracked: list[TrackedScript] = []
    for key, name, weight in _tracked_entries(table, "track_scripts", "a script name"):
        if name not in scripts:
            raise ConfigError(
                f"{key}: instance {_show(instance)} tracks script {_show(name)}, but there is "
                f"no [[script]] with that name{_name_hint(name, tuple(scripts), 'scripts')}"
            )
        if any(entry.name == name for entry in tracked):
            raise ConfigError(f"{key}: script {_show(name)} is listed twice")
        tracked.append(TrackedScript(name, scripts[name].weight if weight is None else weight))
    return tuple(tracked)


def _track_interfaces(table: _Table) -> tuple[TrackedInterface, ...]:
    """``track_interfaces``: interface names, or ``{name = ..., weight = ...}``."""
    tracked: list[TrackedInterface] = []
    for key, name, weight in _tracked_entries(table, "track_interfaces", "an interface name"):
        _check_ifname(name, key)
        if any(entry.name == name for entry in tracked):
            raise ConfigError(f"{key}: interface {_show(name)} is listed twice")
        tracked.append(TrackedInterface(name, 0 if weight is None else weight))
    return tuple(tracked)


def _tracked_entries(table: _Table, key: str, what: str) -> list[tuple[str, str, int | None]]:
    """(key path, name, weight or None) of each entry of a ``track_*`` array."""
    entries: list[tuple[str, str, int | None]] = []
    for index, item in enumerate(table.array(key)):
        at = f"{table.at(key)}[{index}]"
        if isinstance(item, str):
            entries.append((at, item, None))
        elif isinstance(item, dict):
            entry = _Table(item, at, _TRACK_KEYS)
            weight = entry.integer("weight", -MAX_WEIGHT, MAX_WEIGHT) if "weight" in item else None
            entries.append((at, entry.string("name"), weight))
        else:
            raise ConfigError(
                f'{at}: must be {what} or a table {{name = "...", weight = N}}, '
                f"got {_type_name(item)}"
            )
    return entries


def _monitor(table: _Table, track_scripts: tuple[TrackedScript, ...]) -> tuple[int, float, float]:
    """``monitor_port``, ``monitor_interval``, ``monitor_timeout``: the default TCP check.

    A check script *replaces* the TCP check (ipfailover.md §5, openshift/origin#12509), so
    both together is an error rather than a silently unused port.
    """
    port = table.integer("monitor_port", 0, 65535, default=0)
    if port and track_scripts:
        raise ConfigError(
            f"{table.at('monitor_port')}: the TCP check only runs for instances without "
            "track_scripts (a check script replaces it); remove one of the two"
        )
    if not port:
        reason = "only applies with a monitor_port other than 0"
        table.forbid("monitor_interval", reason)
        table.forbid("monitor_timeout", reason)
    interval = table.positive_seconds("monitor_interval", DEFAULT_CHECK_INTERVAL)
    return port, interval, table.positive_seconds("monitor_timeout", interval)


def _notify(table: _Table) -> NotifyConfig:
    return NotifyConfig(
        notify=_command(table, "notify"),
        master=_command(table, "notify_master"),
        backup=_command(table, "notify_backup"),
        fault=_command(table, "notify_fault"),
        stop=_command(table, "notify_stop"),
        timeout=table.positive_seconds("notify_timeout", DEFAULT_NOTIFY_TIMEOUT),
    )


def _command(table: _Table, key: str) -> tuple[str, ...] | None:
    """A notify command: ``"/path"`` or ``["/path", "arg", ...]`` (no shell is involved,
    so arguments are a list rather than one string to split)."""
    if key not in table:
        return None
    value = table.required(key)
    at = table.at(key)
    if isinstance(value, str):
        return (executable_path(value, at),)
    if not isinstance(value, list):
        raise ConfigError(
            f'{at}: must be a path or an array ["/path", "arg", ...], got {_type_name(value)}'
        )
    if not value:
        raise ConfigError(f'{at}: must not be empty; write ["/path", "arg", ...]')
    args = table.strings(key)
    return (executable_path(args[0], f"{at}[0]"), *args[1:])


def executable_path(value: object, key: str) -> str:
    """``value`` if it is an absolute path to an executable regular file, else a
    :class:`ConfigError` naming ``key`` (a key path, or the environment variable
    :mod:`agent.ipfailover` read it from).

    Checked when the file is loaded so that a typo is a start-up error, not a check that
    fails at every interval while the VIP quietly moves away (the OpenShift image hit
    each of these: ipfailover.md §5, origin#12408, origin#12829).
    """
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string (a path), got {_type_name(value)}")
    if not os.path.isabs(value):
        raise ConfigError(
            f"{key}: must be an absolute path (scripts run without a shell or search "
            f"path), got {_show(value)}"
        )
    try:
        mode = os.stat(value).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"{key}: {_show(value)} does not exist") from None
    except OSError as error:
        raise ConfigError(f"{key}: {_show(value)}: {error.strerror or error}") from None
    except ValueError:  # an embedded NUL character
        raise ConfigError(f"{key}: not a valid path, got {_show(value)}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{key}: {_show(value)} is not a regular file")
    if not os.access(value, os.X_OK):
        raise ConfigError(
            f"{key}: {_show(value)} is not executable (chmod +x it; for a Kubernetes "
            "ConfigMap volume use defaultMode: 0755)"
        )
    return value


def _user(table: _Table, key: str) -> ScriptUser | None:
    """``user`` or ``user:group``, resolved now: an unknown name is a start-up error."""
    if key not in table:
        return None
    spec = table.string(key)
    try:
        return resolve_user(spec)
    except ValueError as error:
        raise ConfigError(f"{table.at(key)}: {error}") from None


def _fifo_path(table: _Table, key: str) -> str | None:
    """The notify FIFO: absolute, in an existing directory, and a FIFO if it exists (the
    agent creates it otherwise)."""
    if key not in table:
        return None
    path = table.string(key)
    at = table.at(key)
    if not os.path.isabs(path):
        raise ConfigError(f"{at}: must be an absolute path, got {_show(path)}")
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if not os.path.isdir(os.path.dirname(path)):
            raise ConfigError(
                f"{at}: directory {_show(os.path.dirname(path))} does not exist"
            ) from None
        return path
    except (OSError, ValueError) as error:
        raise ConfigError(f"{at}: cannot use {_show(path)}: {error}") from None
    if not stat.S_ISFIFO(mode):
        raise ConfigError(f"{at}: {_show(path)} exists and is not a FIFO (named pipe)")
    return path


def _parse_sync_groups(
    top: _Table, instances: tuple[InstanceConfig, ...]
) -> tuple[SyncGroupConfig, ...]:
    """``[[sync_group]]``: named sets of at least two existing instances, each instance in
    at most one group (a member follows its group; two groups would disagree)."""
    names = [instance.name for instance in instances]
    groups: list[SyncGroupConfig] = []
    member_of: dict[str, int] = {}
    for index, table in enumerate(top.tables("sync_group", _SYNC_GROUP_KEYS)):
        name = _name(table)
        for other, group in enumerate(groups):
            if group.name == name:
                raise ConfigError(
                    f"{table.at('name')}: {_show(name)} is already used by sync_group[{other}]"
                )
        members = table.strings("instances", required=True)
        if len(members) < 2:
            raise ConfigError(
                f"{table.at('instances')}: a sync group needs at least 2 instances, "
                f"got {len(members)}"
            )
        for position, member in enumerate(members):
            at = f"{table.at('instances')}[{position}]"
            if member not in names:
                raise ConfigError(
                    f"{at}: no [[instance]] named {_show(member)}"
                    f"{_name_hint(member, tuple(names), 'instances')}"
                )
            if member in members[:position]:
                raise ConfigError(f"{at}: instance {_show(member)} is listed twice")
            if member in member_of:
                other = member_of[member]
                raise ConfigError(
                    f"{at}: instance {_show(member)} is already in sync_group[{other}] "
                    f"({_show(groups[other].name)}); an instance can be in one group only"
                )
            member_of[member] = index
        groups.append(SyncGroupConfig(name=name, instances=members, notify=_notify(table)))
    return tuple(groups)


def _name_hint(name: str, known: tuple[str, ...], what: str) -> str:
    if not known:
        return f"; no {what} are defined"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    return f"; defined {what}: {', '.join(known)}"


def _interface(table: _Table) -> str:
    name = table.string("interface")
    _check_ifname(name, table.at("interface"))
    return name


def _check_ifname(name: str, key: str) -> None:
    """An interface name the kernel could accept (``dev_valid_name()`` in net/core/dev.c)."""
    if (
        not 1 <= len(name) <= _IFNAME_MAX
        or name in (".", "..")
        or any(c == "/" or c == ":" or c.isspace() for c in name)
    ):
        raise ConfigError(
            f"{key}: not a valid Linux interface name "
            f"(1..{_IFNAME_MAX} characters, no '/', ':' or spaces), got {_show(name)}"
        )


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


def _unicast(
    table: _Table, vips: tuple[IPv4Interface, ...]
) -> tuple[tuple[IPv4Address, ...], IPv4Address | None]:
    """``unicast_peers`` and ``unicast_src``: unicast mode (keepalived.md §2).

    An empty list means multicast, as it does in keepalived >= 2.2.4; ``unicast_src``
    without peers is an error rather than a setting that silently does nothing.
    """
    key = table.at("unicast_peers")
    raw = table.array("unicast_peers")
    if len(raw) > MAX_UNICAST_PEERS:
        raise ConfigError(
            f"{key}: at most {MAX_UNICAST_PEERS} peers (every advert is sent to each), "
            f"got {len(raw)}"
        )
    vip_addresses = {vip.ip for vip in vips}
    peers: list[IPv4Address] = []
    for index, item in enumerate(raw):
        at = f"{key}[{index}]"
        peer = _unicast_address(item, at)
        if peer in peers:
            raise ConfigError(f"{at}: {peer} is already listed as {key}[{peers.index(peer)}]")
        if peer in vip_addresses:
            raise ConfigError(
                f"{at}: {peer} is one of this instance's vips; list the peers' own addresses"
            )
        peers.append(peer)
    if "unicast_src" not in table:
        return tuple(peers), None
    at = table.at("unicast_src")
    if not peers:
        raise ConfigError(
            f"{at}: only applies in unicast mode; list the peers in unicast_peers "
            "(multicast adverts come from the interface's primary address)"
        )
    source = _unicast_address(table.required("unicast_src"), at)
    if source in vip_addresses:
        raise ConfigError(
            f"{at}: {source} is one of this instance's vips; it must be the node's own address"
        )
    if source in peers:
        raise ConfigError(f"{at}: {source} is also listed in unicast_peers[{peers.index(source)}]")
    return tuple(peers), source


def _unicast_address(item: object, key: str) -> IPv4Address:
    """One unicast peer or source: a plain IPv4 unicast address (no prefix)."""
    if not isinstance(item, str):
        raise ConfigError(f'{key}: must be a string such as "10.0.0.2", got {_type_name(item)}')
    try:
        address = IPv4Address(item)
    except ValueError:
        if ":" in item:
            raise ConfigError(f"{key}: IPv6 is not supported yet, got {_show(item)}") from None
        raise ConfigError(
            f'{key}: not an IPv4 address such as "10.0.0.2", got {_show(item)}'
        ) from None
    if (
        address.is_unspecified
        or address.is_loopback
        or address.is_multicast
        or address == IPv4Address("255.255.255.255")
    ):
        raise ConfigError(f"{key}: {address} is not a unicast address")
    return address


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

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def tables(self, key: str, known: tuple[str, ...], required: bool = False) -> list[_Table]:
        """An array of tables written as ``[[key]]``; at least one when ``required``."""
        raw = self._data.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise ConfigError(
                f"{self.at(key)}: must be an array of tables written as [[{key}]], "
                f"got {_type_name(raw)}"
            )
        if required and not raw:
            raise ConfigError(f"{self.at(key)}: at least one [[{key}]] is required")
        return [_Table(item, f"{self.at(key)}[{index}]", known) for index, item in enumerate(raw)]

    def array(self, key: str) -> list[object]:
        """An optional array (empty when absent)."""
        value = self._data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: must be an array, got {_type_name(value)}")
        return value

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        """An array of strings (empty when absent unless ``required``)."""
        if required:
            self.required(key)
        value = self._data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(
                f"{self.at(key)}: must be an array of strings, got {_type_name(value)}"
            )
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(
                    f"{self.at(key)}[{index}]: must be a string, got {_type_name(item)}"
                )
        return tuple(value)

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

    def positive_seconds(self, key: str, default: float) -> float:
        """A duration that must be more than 0 (an interval or a timeout)."""
        value = self.seconds(key, default)
        if value <= 0:
            raise ConfigError(f"{self.at(key)}: must be more than 0 seconds, got {_show(value)}")
        return float(value)

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
