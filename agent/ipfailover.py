"""The agent's configuration from OpenShift ipfailover's ``OPENSHIFT_HA_*`` environment.

OpenShift IP failover runs keepalived in a pod per node and generates ``keepalived.conf``
from environment variables (ipfailover.md §2-§5). ``vrrp-agent run --from-env`` reads the
same variables, so the agent can replace the image in an existing Deployment without
rewriting it; ``vrrp-agent config --from-env`` prints the configuration it builds, as
TOML, so that the translation can be reviewed and, if wanted, kept as a file.

The translation is pure: :func:`read_environment` turns the variables into
:class:`IpfailoverSettings`, and :func:`build_document` adds what only the node knows
(:class:`NodeFacts`: the interface VRRP runs on and the node's own IPv4 address on it,
looked up by :func:`agent.host.nodefacts.lookup_node`) and returns the same document shape
a TOML file has, which :func:`agent.config.parse_config` validates like any other.

What the image generates, and what we generate instead (ipfailover.md §4):

* one instance ``<name>_VIP_<n>`` per VIP group, VRID ``offset + n`` skipping
  ``HA_EXCLUDED_VRRP_IDS``, VRRP version 2 with advert interval 1 s and a simple password
  (``auth_type PASS``), which is what the image's keepalived sends, so agents and image
  pods can run side by side during a migration;
* one shared check: the user's ``OPENSHIFT_HA_CHECK_SCRIPT``, else a TCP connect to the
  node's own address on ``OPENSHIFT_HA_MONITOR_PORT``, every
  ``OPENSHIFT_HA_CHECK_INTERVAL`` seconds, weight 0 (a failure means FAULT);
* ``OPENSHIFT_HA_NOTIFY_SCRIPT`` as every instance's generic ``notify`` script;
* the replica-based priorities of :func:`priorities`.

Image bugs fixed here (each is a clear error or a documented change, never a silent
difference):

* VIP lists: the image deletes every character outside ``[0-9a-fA-F:.,-]`` before
  splitting on commas, so ``"10.0.0.5-7 10.0.0.250-252"`` became one bogus range and
  ``10.0.0.1/24`` became ``10.0.0.124`` (ipfailover.md §4.2). Here commas and white space
  both separate entries, and a ``/prefix`` is kept as the VIP's prefix length. A range
  whose end lies before its start, an unparsable entry or a VIP listed twice is an error
  (the image silently generated nothing or a duplicate).
* VRIDs above 255: the image emits them and keepalived drops the instance with a log line
  (§4.3); here the whole configuration is refused, naming the offset.
* Priorities: ``$RANDOM`` made backup priorities differ from one pod start to the next, a
  slave priority could be 0 and a node whose address ends in .0 or .128 bid 255, the
  address-owner value that keepalived forces to MASTER (§4.4). See :func:`priorities`.
* ``OPENSHIFT_HA_NETWORK_INTERFACE`` naming a missing interface silently fell through to
  another NIC (§3); here it is an error (:func:`choose_interface`).
* ``OPENSHIFT_HA_USE_UNICAST`` was documented but never read (§3, §7): unicast was on
  exactly when ``OPENSHIFT_HA_UNICAST_PEERS`` was non-empty. Here it is read: ``true``
  without peers is an error (the image multicast quietly), and ``false`` with peers is
  an error too (the image ignored it and unicast), so neither reading is ever guessed.
  Unset, the peers decide, as in the image.
* ``OPENSHIFT_HA_UNICAST_PEERS``: the Deployment passes one list to every pod, so each
  node's keepalived had itself among its peers. The node's own address (and the
  ``UNICAST_SOURCE_IPADDRESS``) is left out of each instance's ``unicast_peers``; bad
  or repeated entries are errors (the image pasted them into keepalived.conf).
* IPv6 VIPs: the image half-supported them (§4.2, §6.5); the agent speaks IPv4 only so
  far, and says so.
* ``preempt_delay`` was cleared by keepalived on the instances the image started with
  ``state MASTER`` (§4.5), so the delay applied only to some VIPs. The agent has no
  initial state: the delay applies to every instance.
* ``OPENSHIFT_HA_MONITOR_PORT`` had its non-digits deleted (``"80/tcp"`` gave 80 and
  ``"8o"`` gave 8); here it must be a port number.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, NetmaskValueError
from typing import Any, Final

from agent.config import (
    DEFAULT_CHECK_INTERVAL,
    AgentConfig,
    ConfigError,
    executable_path,
    parse_config,
)
from agent.core.constants import MAX_ADDRESSES, V2_AUTH_DATA_LEN

#: ``OPENSHIFT_HA_CONFIG_NAME`` when unset (conf/settings.sh).
DEFAULT_CONFIG_NAME: Final = "OpenShift-IPFailover"
#: ``OPENSHIFT_HA_VRRP_ID_OFFSET`` when unset (openshift/images#206 raised it from 0 to 10).
DEFAULT_VRRP_ID_OFFSET: Final = 10
#: ``OPENSHIFT_HA_MONITOR_PORT`` when unset.
DEFAULT_MONITOR_PORT: Final = 80
#: ``OPENSHIFT_HA_PREEMPTION`` when unset.
DEFAULT_PREEMPTION: Final = "preempt_delay 300"
#: Interfaces the image tries, in order, when ``OPENSHIFT_HA_NETWORK_INTERFACE`` is unset,
#: before the interface of the route to :data:`ROUTE_PROBE` (utils.sh ``VBOX_INTERFACES``).
PROBED_INTERFACES: Final = ("enp0s3", "enp0s8", "eth1", "ens3")
#: The destination whose route gives the interface when no other one is found
#: (``ip route get 8.8.8.8`` in the image); no packet is sent to it.
ROUTE_PROBE: Final = IPv4Address("8.8.8.8")
#: VRRP version the image's keepalived speaks (its default; the image never sets one).
VERSION: Final = 2
#: Advertisement interval of the image's keepalived, seconds (its default).
ADVERT_INTERVAL: Final = 1
#: Highest VRID (RFC 9568 §5.2.3: an 8-bit field; 0 is not a valid VRID).
MAX_VRID: Final = 255
#: Most VIPs the variables may expand to: 255 instances of 255 addresses each.
MAX_VIPS: Final = MAX_VRID * MAX_ADDRESSES
#: Instance names are ``<name>_VIP_<n>``; our names are at most 64 characters.
_MAX_SCRUBBED_NAME: Final = 64 - len("_VIP_255")

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("", "false", "no", "0", "off")
_SEPARATORS = re.compile(r"[\s,]+")

#: Reads one variable: ``get(name, default="")``, white space stripped.
_Getter = Callable[..., str]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the configuration needs to know about the node it runs on."""

    #: The interface VRRP runs on and the VIPs are added to.
    interface: str
    #: The node's own primary IPv4 address on it: target of the default TCP check and
    #: the input of the priority computation.
    address: IPv4Address


@dataclass(frozen=True, slots=True)
class IpfailoverSettings:
    """The ``OPENSHIFT_HA_*`` variables, parsed and validated, before any node facts."""

    #: ``OPENSHIFT_HA_CONFIG_NAME`` as given (the password is taken from it).
    config_name: str
    #: The name with everything but ``A-Z a-z 0-9 _ -`` removed and ``-`` made ``_``:
    #: prefix of the instance and check names (utils.sh ``scrub``).
    scrubbed_name: str
    #: ``OPENSHIFT_HA_VIRTUAL_IPS`` expanded, in order; a VIP without a prefix is /32.
    vips: tuple[IPv4Interface, ...]
    #: ``OPENSHIFT_HA_VIP_GROUPS``: number of instances to spread the VIPs over; 0 = one
    #: instance per VIP.
    vip_groups: int
    #: ``OPENSHIFT_HA_NETWORK_INTERFACE``, or None to pick one as the image does.
    interface: str | None
    #: ``OPENSHIFT_HA_MONITOR_PORT``, 0 = no TCP check.
    monitor_port: int
    #: ``OPENSHIFT_HA_REPLICA_COUNT``, at least 1.
    replica_count: int
    #: ``OPENSHIFT_HA_VRRP_ID_OFFSET``: the first VRID is offset + 1.
    vrrp_id_offset: int
    #: ``HA_EXCLUDED_VRRP_IDS``: VRIDs to skip.
    excluded_vrids: frozenset[int]
    #: ``OPENSHIFT_HA_CHECK_SCRIPT`` split into path and arguments, or None.
    check_script: tuple[str, ...] | None
    #: ``OPENSHIFT_HA_CHECK_INTERVAL``, seconds.
    check_interval: float
    #: ``OPENSHIFT_HA_NOTIFY_SCRIPT`` split into path and arguments, or None.
    notify_script: tuple[str, ...] | None
    #: From ``OPENSHIFT_HA_PREEMPTION``: whether to preempt, and the delay in seconds.
    preempt: bool
    preempt_delay: float
    #: ``OPENSHIFT_HA_UNICAST_PEERS``: unicast mode when non-empty (every pod gets the
    #: same list; :func:`build_document` leaves the node's own address out).
    unicast_peers: tuple[IPv4Address, ...] = ()
    #: ``UNICAST_SOURCE_IPADDRESS``: the advert source in unicast mode, or None.
    unicast_src: IPv4Address | None = None
    #: Variables that were set but have no effect on the agent, one sentence each.
    warnings: tuple[str, ...] = ()

    @property
    def auth_pass(self) -> str:
        """The VRRPv2 password the image's keepalived sends: its ``auth_pass <name>`` line
        is cut at the first white space by keepalived's parser and at 8 characters by the
        packet format (RFC 2338 §5.3.10)."""
        return self.config_name.split()[0][:V2_AUTH_DATA_LEN]

    @property
    def check_name(self) -> str:
        """The shared check's name, ``chk_<name>`` as in the image."""
        return f"chk_{self.scrubbed_name}"


def read_environment(environ: Mapping[str, str]) -> IpfailoverSettings:
    """Parse and validate the variables; :class:`~agent.config.ConfigError` names the
    variable at fault. An empty variable means the same as an unset one (the image's
    ``${VAR:-default}``)."""

    def get(name: str, default: str = "") -> str:
        return environ.get(name, "").strip() or default

    config_name = get("OPENSHIFT_HA_CONFIG_NAME", DEFAULT_CONFIG_NAME)
    scrubbed = re.sub(r"[^A-Za-z0-9_-]", "", config_name).replace("-", "_")
    if not scrubbed or len(scrubbed) > _MAX_SCRUBBED_NAME:
        raise ConfigError(
            f"OPENSHIFT_HA_CONFIG_NAME: must contain 1..{_MAX_SCRUBBED_NAME} characters "
            f"from A-Z a-z 0-9 _ - (the others are dropped), got {config_name!r}"
        )
    if not config_name.isascii():
        raise ConfigError(
            "OPENSHIFT_HA_CONFIG_NAME: must be ASCII: its first 8 characters are the VRRPv2 "
            f"password, got {config_name!r}"
        )
    unicast_peers = _unicast_peers(get)
    if get("MULTICAST_SOURCE_IPADDRESS"):
        raise ConfigError(
            "MULTICAST_SOURCE_IPADDRESS: choosing the multicast advert source address is not "
            "supported yet; the agent sends from the interface's primary IPv4 address"
        )
    warnings = []
    unicast_src = _address(get, "UNICAST_SOURCE_IPADDRESS")
    if unicast_src is not None and not unicast_peers:
        warnings.append(
            "UNICAST_SOURCE_IPADDRESS is set, but without OPENSHIFT_HA_UNICAST_PEERS the "
            "agent multicasts, from the interface's primary address"
        )
        unicast_src = None
    allow = "from the unicast peers" if unicast_peers else "to 224.0.0.18"
    for name in ("OPENSHIFT_HA_NFTABLES_RULE", "OPENSHIFT_HA_IPTABLES_CHAIN"):
        if get(name):
            warnings.append(
                f"{name} is set, but the agent does not add firewall rules: allow IP "
                f"protocol 112 {allow} on the VRRP interface yourself"
            )
    preempt, preempt_delay = parse_preemption(get("OPENSHIFT_HA_PREEMPTION", DEFAULT_PREEMPTION))
    return IpfailoverSettings(
        config_name=config_name,
        scrubbed_name=scrubbed,
        vips=expand_vips(get("OPENSHIFT_HA_VIRTUAL_IPS")),
        vip_groups=_integer(get, "OPENSHIFT_HA_VIP_GROUPS", 0, minimum=0),
        interface=get("OPENSHIFT_HA_NETWORK_INTERFACE") or None,
        monitor_port=_integer(
            get, "OPENSHIFT_HA_MONITOR_PORT", DEFAULT_MONITOR_PORT, minimum=0, maximum=65535
        ),
        replica_count=_integer(get, "OPENSHIFT_HA_REPLICA_COUNT", 1, minimum=1),
        vrrp_id_offset=_integer(
            get, "OPENSHIFT_HA_VRRP_ID_OFFSET", DEFAULT_VRRP_ID_OFFSET, minimum=0, maximum=254
        ),
        excluded_vrids=_excluded_vrids(get("HA_EXCLUDED_VRRP_IDS")),
        check_script=_command(get, "OPENSHIFT_HA_CHECK_SCRIPT"),
        check_interval=_seconds(get, "OPENSHIFT_HA_CHECK_INTERVAL", DEFAULT_CHECK_INTERVAL),
        notify_script=_command(get, "OPENSHIFT_HA_NOTIFY_SCRIPT"),
        preempt=preempt,
        preempt_delay=preempt_delay,
        unicast_peers=unicast_peers,
        unicast_src=unicast_src,
        warnings=tuple(warnings),
    )


def build_document(settings: IpfailoverSettings, node: NodeFacts) -> dict[str, Any]:
    """The configuration document (the shape :func:`tomllib.loads` returns for a TOML
    file) for this node."""
    groups = split_groups(settings.vips, settings.vip_groups)
    vrids = assign_vrids(len(groups), settings.vrrp_id_offset, settings.excluded_vrids)
    bids = priorities(node.address, vrids, settings.replica_count, preempt=settings.preempt)
    peers = _peers_of_node(settings, node)
    document: dict[str, Any] = {}
    if settings.check_script is not None:
        path, *args = settings.check_script
        script: dict[str, Any] = {"name": settings.check_name, "path": path}
        if args:
            script["args"] = args
        script["interval"] = settings.check_interval
        document["script"] = [script]
    instances = []
    for number, (vips, vrid, priority) in enumerate(zip(groups, vrids, bids, strict=True), 1):
        instance: dict[str, Any] = {
            "name": f"{settings.scrubbed_name}_VIP_{number}",
            "interface": node.interface,
            "vrid": vrid,
            "priority": priority,
            "version": VERSION,
            "advert_interval": ADVERT_INTERVAL,
            "preempt": settings.preempt,
        }
        if settings.preempt:
            instance["preempt_delay"] = settings.preempt_delay
        instance["auth_type"] = "pass"
        instance["auth_pass"] = settings.auth_pass
        instance["vips"] = [str(vip) for vip in vips]
        if peers:
            instance["unicast_peers"] = [str(peer) for peer in peers]
        if settings.unicast_src is not None:
            instance["unicast_src"] = str(settings.unicast_src)
        if settings.check_script is not None:
            instance["track_scripts"] = [settings.check_name]
        elif settings.monitor_port:
            instance["monitor_port"] = settings.monitor_port
            instance["monitor_interval"] = settings.check_interval
        if settings.notify_script is not None:
            notify = settings.notify_script
            instance["notify"] = notify[0] if len(notify) == 1 else list(notify)
        instances.append(instance)
    document["instance"] = instances
    return document


def config_from_env(environ: Mapping[str, str], node: NodeFacts) -> AgentConfig:
    """:func:`read_environment`, :func:`build_document` and validation in one call."""
    return parse_config(build_document(read_environment(environ), node))


def choose_interface(
    requested: str | None, existing: Collection[str], default_route_interface: str | None
) -> str:
    """The VRRP interface, chosen as the image's ``get_network_device`` does, except that
    a requested interface that does not exist is an error: the image silently fell
    through to the next candidate, i.e. to another network (ipfailover.md §3).

    Without ``OPENSHIFT_HA_NETWORK_INTERFACE``: the first of :data:`PROBED_INTERFACES`
    that exists, else the interface of the route to :data:`ROUTE_PROBE` (the image never
    defaults to ``eth0``, whatever its documentation says).
    """
    if requested is not None:
        if requested not in existing:
            raise ConfigError(
                f"OPENSHIFT_HA_NETWORK_INTERFACE: interface {requested!r} does not exist "
                f"on this node (it has {', '.join(sorted(existing)) or 'none'})"
            )
        return requested
    for candidate in PROBED_INTERFACES:
        if candidate in existing:
            return candidate
    if default_route_interface is None:
        raise ConfigError(
            f"OPENSHIFT_HA_NETWORK_INTERFACE: not set, none of {', '.join(PROBED_INTERFACES)} "
            f"exists and there is no route to {ROUTE_PROBE} to take the interface from; "
            "set it"
        )
    return default_route_interface


def expand_vips(text: str) -> tuple[IPv4Interface, ...]:
    """``OPENSHIFT_HA_VIRTUAL_IPS``: addresses and ranges separated by commas or white
    space, in order.

    An entry is ``10.0.0.5``, ``10.0.0.5-7`` (last octet), ``10.0.0.5-10.0.0.7`` (a full
    end address; the range may then cross octet boundaries), each optionally with a
    ``/prefix`` that every address of the entry gets on the interface (default /32, what
    the image's keepalived uses).
    """
    key = "OPENSHIFT_HA_VIRTUAL_IPS"
    entries = [entry for entry in _SEPARATORS.split(text) if entry]
    if not entries:
        raise ConfigError(f"{key}: required: the virtual IPs, e.g. 10.0.0.5-7,10.0.0.20")
    vips: list[IPv4Interface] = []
    seen: set[IPv4Address] = set()
    for entry in entries:
        start, end, prefix = _parse_vip_entry(entry)
        if len(vips) + int(end) - int(start) + 1 > MAX_VIPS:
            raise ConfigError(
                f"{key}: more than {MAX_VIPS} addresses ({MAX_VRID} VRRP instances of "
                f"{MAX_ADDRESSES} addresses)"
            )
        for value in range(int(start), int(end) + 1):
            vip = IPv4Interface((value, prefix))
            if vip.ip in seen:
                raise ConfigError(f"{key}: {vip.ip} is listed twice")
            seen.add(vip.ip)
            vips.append(vip)
    return tuple(vips)


def split_groups(vips: Sequence[IPv4Interface], groups: int) -> list[tuple[IPv4Interface, ...]]:
    """VIPs per VRRP instance, as the image splits them (config-generators.sh): ``groups``
    contiguous chunks, the first ``len(vips) % groups`` one VIP larger; with 0 groups, or
    more groups than VIPs, one VIP per instance."""
    if groups <= 0 or groups >= len(vips):
        return [(vip,) for vip in vips]
    size, extra = divmod(len(vips), groups)
    chunks: list[tuple[IPv4Interface, ...]] = []
    start = 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        chunks.append(tuple(vips[start:end]))
        start = end
    if size + (1 if extra else 0) > MAX_ADDRESSES:
        raise ConfigError(
            f"OPENSHIFT_HA_VIP_GROUPS: {len(vips)} VIPs in {groups} groups puts "
            f"{len(chunks[0])} VIPs in one instance, but an advert carries at most "
            f"{MAX_ADDRESSES} (RFC 9568 §5.2.5); use at least "
            f"{-(-len(vips) // MAX_ADDRESSES)} groups"
        )
    return chunks


def assign_vrids(count: int, offset: int, excluded: Collection[int]) -> list[int]:
    """VRIDs of ``count`` instances: ``offset + n`` for instance n = 1, 2, ..., where an
    excluded VRID shifts the offset up for this and every later instance, exactly as the
    image does (offset 10, excluded 11 12: VRIDs 13, 14, 15), so mixed clusters agree.

    Unlike the image, a VRID above 255 is an error for the whole configuration instead of
    an instance keepalived drops with a log line (ipfailover.md §4.3).
    """
    vrids = []
    for number in range(1, count + 1):
        while offset + number in excluded:
            offset += 1
        vrids.append(offset + number)
    if vrids and vrids[-1] > MAX_VRID:
        skipped = " (after skipping HA_EXCLUDED_VRRP_IDS)" if excluded else ""
        raise ConfigError(
            f"OPENSHIFT_HA_VRRP_ID_OFFSET: {count} VRRP instance{'s' if count > 1 else ''} "
            f"need VRIDs up to {vrids[-1]}{skipped}, but a VRID is at most {MAX_VRID} "
            "(RFC 9568 §5.2.3); lower the offset, exclude fewer IDs or put several VIPs "
            "in one instance with OPENSHIFT_HA_VIP_GROUPS"
        )
    return vrids


def priorities(
    address: IPv4Address, vrids: Sequence[int], replica_count: int, *, preempt: bool = True
) -> list[int]:
    """Priority of this node in each instance: the image's replica-based scheme
    (config-generators.sh, ipfailover.md §4.4), made deterministic and kept in 1..254.

    With ``slot`` = last octet of the node address mod 128 and ``idx`` = slot mod
    replicas + 1, instance number n (from 1) is "master-type" on this node when
    n mod idx = 0. A master-type instance bids ``255 - slot``, except right after another
    master-type bid of that value, when it bids ``slot + 1`` ("flip-flop", so one node does
    not win every instance); with ``preempt`` false the image disables the flip-flop and
    so do we. Every other instance bids ``slot mod 64 + r`` with r in 0..31.

    Differences from the image, all deliberate:

    * r was ``$RANDOM % 32``, new at every pod start, so which backup took over a VIP
      changed from one restart to the next. Here r is the first 4 bytes of
      SHA-256(``"<node address>/<VRID>"``) mod 32: the same on every start, different
      between nodes and between instances, and computable by anyone.
    * A backup bid of 0 (slot mod 64 = 0 and r = 0; keepalived then used 100) becomes 1.
    * A master bid of 255 (slot 0: addresses ending in .0 or .128), the address-owner
      priority keepalived forces to MASTER regardless of preemption, becomes 254.
    """
    slot = address.packed[3] % 128
    idx = slot % max(replica_count, 1) + 1
    bids = []
    previous_master = False
    for number, vrid in enumerate(vrids, 1):
        if number % idx == 0:
            if previous_master:
                bid = slot + 1
                previous_master = False
            else:
                bid = min(255 - slot, 254)
                previous_master = preempt
        else:
            bid = max(slot % 64 + _stable_offset(address, vrid), 1)
        bids.append(bid)
    return bids


def parse_preemption(text: str) -> tuple[bool, float]:
    """``OPENSHIFT_HA_PREEMPTION``: (preempt, delay in seconds).

    The image pastes the value into keepalived.conf verbatim, so any keepalived directive
    went; the ones that mean something here are ``preempt_delay N`` (0..1000 s, the
    default being 300), ``nopreempt`` and ``preempt_nodelay`` (take over at once).
    """
    key = "OPENSHIFT_HA_PREEMPTION"
    words = text.split()
    if words in (["nopreempt"],):
        return False, 0.0
    if words in (["preempt_nodelay"], ["preempt"]):
        return True, 0.0
    if len(words) == 2 and words[0] == "preempt_nodelay":
        raise ConfigError(
            f'{key}: "{text}" is a typo in the OpenShift documentation; write '
            f'"preempt_delay {words[1]}" to wait {words[1]} s before taking over, or '
            '"preempt_nodelay" to take over at once'
        )
    if len(words) == 2 and words[0] == "preempt_delay":
        try:
            delay = float(words[1])
        except ValueError:
            delay = -1.0
        if not 0 <= delay <= 1000:
            raise ConfigError(f"{key}: the preempt_delay must be 0..1000 seconds, got {words[1]!r}")
        return True, delay
    raise ConfigError(
        f'{key}: must be "preempt_delay N" (seconds, 0..1000), "nopreempt" or '
        f'"preempt_nodelay", got {text!r}'
    )


def _stable_offset(address: IPv4Address, vrid: int) -> int:
    """The deterministic replacement of the image's ``$RANDOM % 32``."""
    digest = hashlib.sha256(f"{address}/{vrid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 32


def _parse_vip_entry(entry: str) -> tuple[IPv4Address, IPv4Address, int]:
    """(first, last, prefix length) of one ``OPENSHIFT_HA_VIRTUAL_IPS`` entry."""
    key = "OPENSHIFT_HA_VIRTUAL_IPS"
    if ":" in entry:
        raise ConfigError(f"{key}: IPv6 is not supported yet, got {entry!r}")
    body, slash, prefix_text = entry.partition("/")
    start_text, dash, end_text = body.partition("-")
    try:
        prefix = IPv4Interface(f"0.0.0.0/{prefix_text}").network.prefixlen if slash else 32
        start = IPv4Address(start_text)
        if not dash:
            end = start
        elif "." in end_text:
            end = IPv4Address(end_text)
        else:
            last = int(end_text) if end_text.isdigit() else 256
            if last > 255:
                raise AddressValueError(end_text)
            end = IPv4Address(int(start) & ~0xFF | last)
    except (AddressValueError, NetmaskValueError, ValueError):
        raise ConfigError(
            f"{key}: not an IPv4 address or range such as 10.0.0.5, 10.0.0.5-7 or "
            f"10.0.0.5-10.0.0.7 (optionally followed by /prefix), got {entry!r}"
        ) from None
    if end < start:
        raise ConfigError(f"{key}: range {entry!r} ends before it starts")
    for address in (start, end):
        if (
            address.is_unspecified
            or address.is_loopback
            or address.is_multicast
            or address == IPv4Address("255.255.255.255")
        ):
            raise ConfigError(f"{key}: {address} cannot be a virtual address (not unicast)")
    return start, end, prefix


def _unicast_peers(get: _Getter) -> tuple[IPv4Address, ...]:
    """``OPENSHIFT_HA_UNICAST_PEERS`` (commas or white space), checked against
    ``OPENSHIFT_HA_USE_UNICAST``; never a silent fall-back to multicast (which keepalived
    before 2.2.4 did with an empty peer list, keepalived.md §2)."""
    key = "OPENSHIFT_HA_UNICAST_PEERS"
    use_text = get("OPENSHIFT_HA_USE_UNICAST").lower()
    if use_text not in _TRUE + _FALSE:
        raise ConfigError(f"OPENSHIFT_HA_USE_UNICAST: must be true or false, got {use_text!r}")
    peers: list[IPv4Address] = []
    for entry in _SEPARATORS.split(get(key)):
        if not entry:
            continue
        try:
            peer = IPv4Address(entry)
        except AddressValueError:
            raise ConfigError(
                f"{key}: not an IPv4 address such as 10.0.0.2, got {entry!r} (list the "
                "nodes' addresses separated by commas or spaces)"
            ) from None
        if peer.is_unspecified or peer.is_loopback or peer.is_multicast or peer.is_reserved:
            raise ConfigError(f"{key}: {peer} is not a unicast address")
        if peer in peers:
            raise ConfigError(f"{key}: {peer} is listed twice")
        peers.append(peer)
    if use_text in _TRUE and not peers:
        raise ConfigError(
            "OPENSHIFT_HA_USE_UNICAST: true, but OPENSHIFT_HA_UNICAST_PEERS is empty; list "
            "the addresses of the nodes running IP failover (the same list on every node)"
        )
    if use_text and use_text in _FALSE and peers:
        raise ConfigError(
            "OPENSHIFT_HA_USE_UNICAST: false, but OPENSHIFT_HA_UNICAST_PEERS lists peers, "
            "which the image used for unicast anyway (it never read USE_UNICAST); set it "
            "to true (or unset it) for unicast, or unset the peers for multicast"
        )
    return tuple(peers)


def _peers_of_node(settings: IpfailoverSettings, node: NodeFacts) -> tuple[IPv4Address, ...]:
    """The unicast peers without this node itself: every pod gets the same list."""
    ours = {node.address, settings.unicast_src}
    peers = tuple(peer for peer in settings.unicast_peers if peer not in ours)
    if settings.unicast_peers and not peers:
        raise ConfigError(
            f"OPENSHIFT_HA_UNICAST_PEERS: lists only this node's own address "
            f"({', '.join(map(str, settings.unicast_peers))}); list every IP failover node"
        )
    return peers


def _address(get: _Getter, name: str) -> IPv4Address | None:
    text = get(name)
    if not text:
        return None
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise ConfigError(f"{name}: not an IPv4 address, got {text!r}") from None


def _integer(
    get: _Getter, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    text = get(name)
    if not text:
        return default
    value = int(text) if re.fullmatch(r"[0-9]{1,9}", text) else -1
    if value < minimum or (maximum is not None and value > maximum):
        limits = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name}: must be an integer {limits}, got {text!r}")
    return value


def _seconds(get: _Getter, name: str, default: float) -> float:
    text = get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise ConfigError(f"{name}: must be a number of seconds more than 0, got {text!r}")
    return value


def _excluded_vrids(text: str) -> frozenset[int]:
    """``HA_EXCLUDED_VRRP_IDS``: VRIDs separated by white space (or commas)."""
    excluded = set()
    for word in _SEPARATORS.split(text):
        if not word:
            continue
        if not re.fullmatch(r"[0-9]{1,3}", word) or not 1 <= int(word) <= MAX_VRID:
            raise ConfigError(
                f"HA_EXCLUDED_VRRP_IDS: each ID must be an integer 1..{MAX_VRID}, got {word!r}"
            )
        excluded.add(int(word))
    return frozenset(excluded)


def _command(get: _Getter, name: str) -> tuple[str, ...] | None:
    """A check or notify script: a path, optionally followed by arguments.

    keepalived splits its ``script "..."`` string into words (honouring quotes), and the
    image passes the variable through, so ``/etc/keepalive/check.sh --port 8080`` worked
    there; :func:`shlex.split` does the same splitting here, and nothing is ever run by a
    shell. The path must be absolute and executable, checked now.
    """
    text = get(name)
    if not text:
        return None
    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(f"{name}: cannot split into words: {error}") from None
    executable_path(argv[0], name)
    return argv
