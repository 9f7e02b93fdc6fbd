"""The eBPF receive filter (``bpf/vrrp_filter.c``): loading, maps, events, attaching.

Theory of operation
-------------------
The C program mirrors :func:`agent.core.packet.classify` check by check, drops (socket
filter) or merely counts (tc observer) every packet that ``classify()`` would reject, each
under the same :class:`~agent.core.packet.RejectReason`, and records the last advert of
each (interface, VRID) in the ``peers`` map, writing a ring-buffer event only when
something the state machine cares about changed (bpf/README.md).

**No LLVM in the agent.** BCC compiles C with LLVM inside the calling process, and LLVM
stays resident (about 125 MiB). :func:`load_filter` therefore runs
:mod:`agent.host.bpf_loader` as a short-lived child, which compiles and loads with BCC and
hands back the program and map file descriptors over a unix socket (``SCM_RIGHTS``) with a
JSON description, then exits. This module never imports bcc: it talks to the kernel
objects through the raw fds with the ``bpf(2)`` syscall (via ctypes) and reads the ring
buffer through ``mmap``, as libbpf does.

**One definition of the structs.** The ctypes layouts below are the only Python copy of
``bpf/vrrp_structs.h``. The child reports the layouts BCC generated from the C source,
and :func:`load_filter` refuses to run (``BpfUnavailable``, cause ``load_failed``) when a
size, field name or offset differs, so the two can never drift silently.

**Modes.** By default accepted adverts go up to the socket and the driver's single advert
entry point handles them. With :attr:`LocalRouter.kernel_only` the program keeps a valid
advert that changes nothing in the kernel (it still updates ``peers`` and the counters):
userspace sleeps until the master-down deadline computed from :meth:`VrrpFilter.peer` and
is woken early by ring-buffer events. Adverts that write an event are still passed up, so
the same state machine sees every change through the same entry point.

Addresses in the maps are the raw network-order ``u32`` read from the packet, so they
convert with the host's byte order. Timestamps are ``bpf_ktime_get_ns()``, i.e.
``CLOCK_MONOTONIC`` nanoseconds, the clock of ``time.monotonic_ns()`` and ``loop.time()``.
"""

from __future__ import annotations

import ctypes as ct
import errno
import json
import mmap
import os
import platform
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Final, Generic, TypeAlias, TypeVar

from agent.core.constants import PRIORITY_OWNER, V2_AUTH_DATA_LEN, V3_MAX_INTERVAL_CS
from agent.core.packet import AuthType, ReceivePolicy, RejectReason, VridPolicy
from agent.core.timers import master_down_interval, skew_time
from agent.host.errors import HostError

#: The program's source; its headers sit next to it.
DEFAULT_SOURCE: Final = Path(__file__).resolve().parents[2] / "bpf" / "vrrp_filter.c"
#: Entry points in the C source and their BCC program types.
SOCKET_PROGRAM: Final = "vrrp_sock"
TC_PROGRAM: Final = "vrrp_tc"
_PROGRAMS: Final = {SOCKET_PROGRAM: "SOCKET_FILTER", TC_PROGRAM: "SCHED_CLS"}

#: ``setsockopt(SOL_SOCKET, ...)`` options from <asm-generic/socket.h>; Python's socket
#: module does not export them.
SO_ATTACH_BPF: Final = 50
SO_DETACH_BPF: Final = 27

_CAP_SYS_ADMIN: Final = 21
_CAP_BPF: Final = 39

#: ``vrid_cfg.flags`` and ``vrid_cfg.auth_type`` values (bpf/vrrp_consts.h).
_F_PREEMPT: Final = 1
_F_KERNEL_ONLY: Final = 2
_F_MASTER: Final = 4
_F_UNICAST: Final = 8
_AUTH_CODE: Final = {AuthType.NONE: 0, AuthType.SIMPLE: 1}
#: Index of the valid-advert counter in ``stats``: right after the reject reasons.
ACCEPTED_INDEX: Final = len(RejectReason)
#: Index of the counter of valid adverts kept in the kernel (kernel-only mode).
ABSORBED_INDEX: Final = ACCEPTED_INDEX + 1
_STATS_SLOTS: Final = ABSORBED_INDEX + 1

#: How our tc filter is recognised, also after a ``kill -9``: clsact ingress, this
#: priority and handle (0x7672 is "vr"), and this TCA_BPF_NAME.
TC_FILTER_NAME: Final = "vrrp_agent"
TC_FILTER_PRIORITY: Final = 0x7672
TC_FILTER_HANDLE: Final = 0x7672
_TC_INGRESS_PARENT: Final = "ffff:fff2"
_TC_INGRESS_PARENT_ID: Final = 0xFFFFFFF2
_ETH_P_IP: Final = 0x0800

#: How long the loader child may take (LLVM compile + verifier; about 0.4 s measured).
_LOADER_TIMEOUT_S: Final = 120.0


class UnavailableCause(StrEnum):
    """Why the filter could not be loaded; the daemon logs it when it falls back."""

    BCC_MISSING = "bcc_missing"
    HEADERS_MISSING = "headers_missing"
    NO_PRIVILEGE = "no_privilege"
    #: The program did not compile, the verifier refused it, or its layout drifted: a bug,
    #: not the host.
    LOAD_FAILED = "load_failed"


class BpfUnavailable(HostError):
    """The eBPF filter cannot be used on this host; ``cause`` says why, the message how to fix."""

    def __init__(self, cause: UnavailableCause, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class PeerEventKind(IntFlag):
    """Why the program wrote an event; the ``EV_*`` bits of bpf/vrrp_consts.h."""

    NEW = 1
    NEW_MASTER = 2
    PRIORITY_CHANGE = 4
    #: The master resigned (RFC 9568 §6.4.2: Master_Down_Timer becomes Skew_Time).
    PRIORITY_ZERO = 8
    INTERVAL_CHANGE = 16
    #: The new master or new priority is above our local priority.
    ABOVE_LOCAL = 32


@dataclass(frozen=True, slots=True)
class LocalRouter:
    """Our side of one virtual router: decides which adverts matter.

    Defaults are the configuration defaults (priority 100, preempt on) and pass mode.
    """

    priority: int = 100
    preempt: bool = True
    #: Keep valid adverts that change nothing in the kernel (issue 3 kernel-only mode).
    kernel_only: bool = False


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """The last accepted advert of one (interface, VRID): normally its current master."""

    ifindex: int
    vrid: int
    master: IPv4Address
    priority: int
    version: int
    interval_cs: int
    #: CLOCK_MONOTONIC ns of the last accepted advert.
    last_seen_ns: int
    #: CLOCK_MONOTONIC ns of the last advert that reset Master_Down_Timer (RFC 9568
    #: §6.4.2), 0 if none did. A priority-0 advert also sets it: with ``priority == 0``
    #: the deadline is this plus Skew_Time, otherwise plus Master_Down_Interval.
    last_reset_ns: int
    count: int

    @property
    def last_seen(self) -> float:
        """:attr:`last_seen_ns` in seconds on the ``loop.time()`` clock."""
        return self.last_seen_ns / 1e9

    @property
    def last_reset(self) -> float | None:
        """:attr:`last_reset_ns` in seconds on the ``loop.time()`` clock; None if never."""
        return self.last_reset_ns / 1e9 if self.last_reset_ns else None

    def master_down_deadline(self, local_priority: int) -> float | None:
        """When a Backup of ``local_priority`` declares this master down (``loop.time()``).

        RFC 9568 §6.4.2: Master_Down_Interval after the last timer-resetting advert, or
        Skew_Time after a priority-0 one; both use the master's advertised interval
        (Master_Adver_Interval). None while no advert has reset the timer.
        """
        if not self.last_reset_ns:
            return None
        if self.priority == 0:
            wait = skew_time(self.version, local_priority, self.interval_cs)
        else:
            wait = master_down_interval(self.version, local_priority, self.interval_cs)
        return self.last_reset_ns / 1e9 + wait


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """One ring-buffer event: a change in a :class:`PeerRecord` that matters."""

    ts_ns: int
    ifindex: int
    vrid: int
    what: PeerEventKind
    source: IPv4Address
    priority: int
    interval_cs: int
    version: int
    #: The previous values; meaningless (zero) when ``what`` has NEW.
    old_source: IPv4Address
    old_priority: int
    old_interval_cs: int


@dataclass(frozen=True, slots=True)
class FilterSnapshot:
    """Everything the metrics and status code read from the kernel, as plain data."""

    #: Packets dropped in the kernel, per reason (every reason present, zeros included).
    drops: Mapping[RejectReason, int]
    #: Valid adverts (passed up or kept in the kernel).
    accepted: int
    #: Of those, kept in the kernel by kernel-only mode (never copied to a socket).
    absorbed: int
    peers: tuple[PeerRecord, ...]


# -- the struct layouts: the one Python copy of bpf/vrrp_structs.h ---------------------------


class VridKey(ct.Structure):
    """``struct vrid_key``: one virtual router on one interface."""

    _fields_ = (("ifindex", ct.c_uint32), ("vrid", ct.c_uint32))


class VridCfg(ct.Structure):
    """``struct vrid_cfg``: what a configured virtual router accepts."""

    _fields_ = (
        ("version", ct.c_uint8),
        ("flags", ct.c_uint8),
        ("local_prio", ct.c_uint8),
        ("auth_type", ct.c_uint8),
        ("interval_cs", ct.c_uint16),
        ("pad", ct.c_uint16),
        ("auth_data", ct.c_uint64),
    )


class OwnKey(ct.Structure):
    """``struct own_key``: one address this node owns on one interface."""

    _fields_ = (("ifindex", ct.c_uint32), ("addr", ct.c_uint32))


class UnicastPeerKey(ct.Structure):
    """``struct unicast_peer_key``: one unicast peer of one virtual router on one interface."""

    _fields_ = (("ifindex", ct.c_uint32), ("vrid", ct.c_uint32), ("addr", ct.c_uint32))


class Peer(ct.Structure):
    """``struct peer``: the last accepted advert of a (ifindex, VRID)."""

    _fields_ = (
        ("src", ct.c_uint32),
        ("prio", ct.c_uint8),
        ("version", ct.c_uint8),
        ("interval_cs", ct.c_uint16),
        ("last_seen_ns", ct.c_uint64),
        ("last_reset_ns", ct.c_uint64),
        ("count", ct.c_uint64),
    )


class Event(ct.Structure):
    """``struct event``: one ring-buffer record."""

    _fields_ = (
        ("ts_ns", ct.c_uint64),
        ("ifindex", ct.c_uint32),
        ("src", ct.c_uint32),
        ("old_src", ct.c_uint32),
        ("interval_cs", ct.c_uint16),
        ("old_interval_cs", ct.c_uint16),
        ("vrid", ct.c_uint8),
        ("prio", ct.c_uint8),
        ("old_prio", ct.c_uint8),
        ("what", ct.c_uint8),
        ("version", ct.c_uint8),
        ("pad", ct.c_uint8 * 7),
    )


_CType: TypeAlias = "type[ct.Structure] | type[ct._SimpleCData[Any]]"

#: Every map the agent uses, with its key and value layout (None: a ring buffer has no key).
MAP_LAYOUTS: Final[Mapping[str, tuple[_CType | None, _CType]]] = {
    "vrid_cfg": (VridKey, VridCfg),
    "own_addrs": (OwnKey, ct.c_uint8),
    "unicast_peers": (UnicastPeerKey, ct.c_uint8),
    "stats": (ct.c_uint32, ct.c_uint64),
    "peers": (VridKey, Peer),
    "events": (None, Event),
}


def ctype_layout(ctype: _CType | None) -> dict[str, Any]:
    """The layout of one of our ctypes types, in the form the loader child reports."""
    if ctype is None:
        return {"size": 0, "fields": []}
    fields = [
        [name, getattr(ctype, name).offset, getattr(ctype, name).size]
        for name, *_ in getattr(ctype, "_fields_", ())
    ]
    return {"size": ct.sizeof(ctype), "fields": fields}


def check_layouts(maps: Mapping[str, Any]) -> None:
    """Raise ``BpfUnavailable`` if the C layouts the child reported differ from ours."""
    for name, (key_type, value_type) in MAP_LAYOUTS.items():
        reported = maps.get(name)
        if reported is None:
            raise BpfUnavailable(
                UnavailableCause.LOAD_FAILED, f"eBPF filter: the loader returned no map {name!r}"
            )
        for part, ctype in (("key", key_type), ("value", value_type)):
            ours = ctype_layout(ctype)
            if reported[part] != ours:
                raise BpfUnavailable(
                    UnavailableCause.LOAD_FAILED,
                    f"eBPF filter: the {part} of map {name!r} is {reported[part]} in "
                    f"bpf/vrrp_structs.h but {ours} in agent/host/bpf.py; update the ctypes "
                    "layout to match the C struct",
                )


# -- bpf(2) through ctypes --------------------------------------------------------------------

_BPF_SYSCALL: Final = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280}
_BPF_MAP_LOOKUP_ELEM: Final = 1
_BPF_MAP_UPDATE_ELEM: Final = 2
_BPF_MAP_DELETE_ELEM: Final = 3
_BPF_MAP_GET_NEXT_KEY: Final = 4
_BPF_ANY: Final = 0


class _MapElemAttr(ct.Structure):
    """The ``union bpf_attr`` member used by the BPF_MAP_*_ELEM and GET_NEXT_KEY commands."""

    _fields_ = (
        ("map_fd", ct.c_uint32),
        ("pad", ct.c_uint32),
        ("key", ct.c_uint64),
        ("value", ct.c_uint64),  # next_key for GET_NEXT_KEY
        ("flags", ct.c_uint64),
    )


class _Syscall:
    """``bpf(2)``; opened lazily so that importing this module never touches libc."""

    def __init__(self) -> None:
        number = _BPF_SYSCALL.get(platform.machine())
        if number is None:
            raise BpfUnavailable(
                UnavailableCause.LOAD_FAILED,
                f"eBPF filter: bpf(2) syscall number unknown on {platform.machine()}",
            )
        self._number = number
        libc = ct.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ct.c_long

    def map_elem(self, command: int, fd: int, key: Any, value: Any, flags: int = 0) -> int:
        """Run a map command; returns 0 or the errno (the caller decides what is normal)."""
        attr = _MapElemAttr(
            map_fd=fd,
            key=ct.addressof(key) if key is not None else 0,
            value=ct.addressof(value) if value is not None else 0,
            flags=flags,
        )
        result = self._syscall(
            ct.c_long(self._number), ct.c_int(command), ct.byref(attr), ct.c_uint(ct.sizeof(attr))
        )
        return ct.get_errno() if result < 0 else 0


_K = TypeVar("_K", bound="ct.Structure | ct._SimpleCData[Any]")
_V = TypeVar("_V", bound="ct.Structure | ct._SimpleCData[Any] | ct.Array[Any]")


class _Map(Generic[_K, _V]):
    """A BPF map behind a raw fd, with typed keys and values."""

    def __init__(
        self, syscall: _Syscall, name: str, fd: int, key_type: type[_K], value_type: type[_V]
    ) -> None:
        self._sys = syscall
        self.name = name
        self.fd = fd
        self._key_type = key_type
        self._value_type = value_type

    def _fail(self, doing: str, error: int) -> HostError:
        return HostError(f"eBPF map {self.name}: {doing} failed: {os.strerror(error)}")

    def lookup(self, key: _K) -> _V | None:
        value = self._value_type()
        error = self._sys.map_elem(_BPF_MAP_LOOKUP_ELEM, self.fd, key, value)
        if error == errno.ENOENT:
            return None
        if error:
            raise self._fail("lookup", error)
        return value

    def update(self, key: _K, value: _V) -> None:
        error = self._sys.map_elem(_BPF_MAP_UPDATE_ELEM, self.fd, key, value, _BPF_ANY)
        if error:
            raise self._fail("update", error)

    def delete(self, key: _K) -> None:
        error = self._sys.map_elem(_BPF_MAP_DELETE_ELEM, self.fd, key, None)
        if error and error != errno.ENOENT:
            raise self._fail("delete", error)

    def all_keys(self) -> list[_K]:
        """Every key, read fully before returning (callers may delete while looping)."""
        keys: list[_K] = []
        current: _K | None = None
        while True:
            following = self._key_type()
            error = self._sys.map_elem(_BPF_MAP_GET_NEXT_KEY, self.fd, current, following)
            if error == errno.ENOENT:
                return keys
            if error:
                raise self._fail("key iteration", error)
            keys.append(following)
            current = following

    def items(self) -> Iterator[tuple[_K, _V]]:
        for key in self.all_keys():
            value = self.lookup(key)
            if value is not None:  # deleted meanwhile
                yield key, value


def possible_cpus() -> int:
    """How many per-CPU slots the kernel uses: the CPUs in /sys/.../cpu/possible."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


# -- the ring buffer, consumed through mmap (the kernel's BPF_MAP_TYPE_RINGBUF ABI) ------------

_RINGBUF_BUSY_BIT: Final = 1 << 31
_RINGBUF_DISCARD_BIT: Final = 1 << 30
_RINGBUF_HEADER: Final = 8  # u32 length (+ busy/discard bits), u32 page offset


class _RingBuffer:
    """Consumer side of a BPF ring buffer, as libbpf's ``ring_buffer__consume`` does it.

    Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (we write it), page 1
    the producer position (read-only), then the data area mapped twice in a row so that a
    record wrapping around the end reads contiguously. The fd is pollable: readable while
    unconsumed records exist, so it goes straight into ``loop.add_reader``.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self._mask = size - 1
        page = mmap.PAGESIZE
        self._consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._producer = mmap.mmap(
            fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._data = page  # offset of the data area in the producer mapping

    def consume(self, deliver: Callable[[bytes], None]) -> int:
        """Hand every committed record to ``deliver``; returns how many."""
        (consumer,) = struct.unpack_from("=Q", self._consumer, 0)
        (producer,) = struct.unpack_from("=Q", self._producer, 0)
        delivered = 0
        while consumer < producer:
            offset = self._data + (consumer & self._mask)
            (header,) = struct.unpack_from("=I", self._producer, offset)
            if header & _RINGBUF_BUSY_BIT:
                break  # reserved but not committed yet: the producer finishes it soon
            length = header & ~(_RINGBUF_BUSY_BIT | _RINGBUF_DISCARD_BIT)
            if not header & _RINGBUF_DISCARD_BIT:
                start = offset + _RINGBUF_HEADER
                deliver(self._producer[start : start + length])
                delivered += 1
            consumer += (length + _RINGBUF_HEADER + 7) & ~7
            struct.pack_into("=Q", self._consumer, 0, consumer)
        return delivered

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()


# -- the filter -----------------------------------------------------------------------------


def _address_to_u32(address: IPv4Address) -> int:
    """The raw network-order u32 the program compares with (host byte order view)."""
    return int.from_bytes(address.packed, sys.byteorder)


def _u32_to_address(value: int) -> IPv4Address:
    return IPv4Address(value.to_bytes(4, sys.byteorder))


class VrrpFilter:
    """The loaded programs and their maps, behind a domain API (katran's ``KatranLb`` style).

    Obtain it from :func:`load_filter`; callers never see map keys or ctypes.
    """

    def __init__(self, programs: Mapping[str, int], maps: Mapping[str, tuple[int, int]]) -> None:
        """Take ownership of the program fds and of the map (fd, max_entries) pairs."""
        syscall = _Syscall()
        #: File descriptor of the socket-filter program (SO_ATTACH_BPF, test runs).
        self.prog_fd = programs[SOCKET_PROGRAM]
        #: File descriptor of the tc ingress program (clsact, test runs).
        self.tc_prog_fd = programs[TC_PROGRAM]
        self._fds = [*programs.values(), *(fd for fd, _ in maps.values())]
        self._vrid_cfg = _Map(syscall, "vrid_cfg", maps["vrid_cfg"][0], VridKey, VridCfg)
        self._own_addrs = _Map(syscall, "own_addrs", maps["own_addrs"][0], OwnKey, ct.c_uint8)
        self._unicast_peers = _Map(
            syscall, "unicast_peers", maps["unicast_peers"][0], UnicastPeerKey, ct.c_uint8
        )
        cpus = possible_cpus()
        self._stats = _Map(syscall, "stats", maps["stats"][0], ct.c_uint32, ct.c_uint64 * cpus)
        self._peers = _Map(syscall, "peers", maps["peers"][0], VridKey, Peer)
        events_fd, events_size = maps["events"]
        self._ring = _RingBuffer(events_fd, events_size)
        self._on_event: Callable[[PeerEvent], None] | None = None

    # -- configuration ----------------------------------------------------------------

    def configure_interface(
        self,
        ifindex: int,
        policy: ReceivePolicy,
        local: Mapping[int, LocalRouter] | None = None,
    ) -> None:
        """Make the kernel enforce ``policy`` on ``ifindex``, replacing what was there.

        ``local`` gives our priority, preempt and receive mode per VRID (default
        :class:`LocalRouter`). A VRID with ``unicast_peers`` runs in unicast mode
        (``F_UNICAST``, its peers in the ``unicast_peers`` map). Every VRID starts as
        non-Master (see :meth:`set_master`). Peer records of VRIDs no longer configured are
        forgotten.
        """
        local = local or {}
        wanted = {}
        for vrid, vrid_policy in policy.vrids.items():
            mine = local.get(vrid, LocalRouter())
            _check_fits(vrid, vrid_policy, mine)
            password = vrid_policy.auth_password.ljust(V2_AUTH_DATA_LEN, b"\0")
            wanted[vrid] = VridCfg(
                version=vrid_policy.version,
                flags=(_F_PREEMPT if mine.preempt else 0)
                | (_F_KERNEL_ONLY if mine.kernel_only else 0)
                | (_F_UNICAST if vrid_policy.unicast_peers else 0),
                local_prio=mine.priority,
                auth_type=_AUTH_CODE[vrid_policy.auth_type],
                interval_cs=vrid_policy.advert_interval_cs,
                auth_data=int.from_bytes(password, sys.byteorder),
            )
        for key in self._vrid_cfg.all_keys():
            if key.ifindex == ifindex and key.vrid not in wanted:
                self._vrid_cfg.delete(key)
        for key in self._peers.all_keys():
            if key.ifindex == ifindex and key.vrid not in wanted:
                self._peers.delete(key)
        # Peers before the flag: a VRID never runs in unicast mode with a partial list.
        peers = {
            (vrid, _address_to_u32(peer))
            for vrid, vrid_policy in policy.vrids.items()
            for peer in vrid_policy.unicast_peers
        }
        for peer_key in self._unicast_peers.all_keys():
            if peer_key.ifindex == ifindex and (peer_key.vrid, peer_key.addr) not in peers:
                self._unicast_peers.delete(peer_key)
        for vrid, address in peers:
            self._unicast_peers.update(UnicastPeerKey(ifindex, vrid, address), ct.c_uint8(1))
        for vrid, cfg in wanted.items():
            self._vrid_cfg.update(VridKey(ifindex, vrid), cfg)

        addresses = {_address_to_u32(address) for address in policy.own_addresses}
        for own in self._own_addrs.all_keys():
            if own.ifindex == ifindex and own.addr not in addresses:
                self._own_addrs.delete(own)
        for address in addresses:
            self._own_addrs.update(OwnKey(ifindex, address), ct.c_uint8(1))

    def forget_interface(self, ifindex: int) -> None:
        """Remove the configuration and the peer records of ``ifindex``."""
        self.configure_interface(ifindex, ReceivePolicy(vrids={}))

    def set_master(self, ifindex: int, vrid: int, master: bool) -> None:
        """Tell the program whether we are Master of ``vrid`` (call on every transition).

        Only matters in kernel-only mode: a Master must see every advert that may preempt
        it (RFC 9568 §6.4.3: priority above ours, or equal), even one identical to the last
        recorded, so those are always passed up while Master.
        """
        key = VridKey(ifindex, vrid)
        cfg = self._vrid_cfg.lookup(key)
        if cfg is None:
            raise HostError(f"eBPF filter: VRID {vrid} is not configured on ifindex {ifindex}")
        cfg.flags = (cfg.flags | _F_MASTER) if master else (cfg.flags & ~_F_MASTER)
        self._vrid_cfg.update(key, cfg)

    # -- attaching --------------------------------------------------------------------

    def attach(self, sock: socket.socket | int) -> None:
        """Attach the program to an existing raw IPPROTO_VRRP socket (or its fd).

        Attach before joining 224.0.0.18, so that no unfiltered packet is queued. The
        filter lives as long as the socket: a crashed agent leaves nothing behind.
        """
        _set_socket_option(sock, SO_ATTACH_BPF, self.prog_fd, "attach the eBPF filter to")

    @staticmethod
    def detach(sock: socket.socket | int) -> None:
        """Remove the filter from ``sock``; packets flow unfiltered again."""
        _set_socket_option(sock, SO_DETACH_BPF, 0, "detach the eBPF filter from")

    async def attach_tc(self, ifname: str) -> TcAttachment:
        """Attach the tc program as an observer on ``ifname``'s clsact ingress.

        It counts and records exactly like the socket filter but never drops anything
        (TC_ACT_OK), so other consumers (keepalived, tcpdump, the agent's own unfiltered
        socket) see all traffic. Unlike a socket filter it outlives the process: call
        :func:`remove_stale_filters` at start and :meth:`TcAttachment.close` at exit.
        """
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        async with AsyncIPRoute() as ipr:
            ifindex = await _ifindex(ipr, ifname)
            created_clsact = True
            try:
                await ipr.tc("add", "clsact", ifindex)
            except NetlinkError as error:
                if error.code != errno.EEXIST:
                    raise HostError(f"{ifname}: cannot add the clsact qdisc: {error}") from None
                created_clsact = False
            try:
                await ipr.tc(
                    "add-filter",
                    "bpf",
                    ifindex,
                    TC_FILTER_HANDLE,
                    fd=self.tc_prog_fd,
                    name=TC_FILTER_NAME,
                    parent=_TC_INGRESS_PARENT,
                    classid=1,
                    direct_action=True,
                    prio=TC_FILTER_PRIORITY,
                    protocol=_ETH_P_IP,
                )
            except NetlinkError as error:
                hint = " (a stale one? call remove_stale_filters first)"
                raise HostError(
                    f"{ifname}: cannot add the tc filter: {error}"
                    + (hint if error.code == errno.EEXIST else "")
                ) from None
        return TcAttachment(ifname, ifindex, created_clsact)

    # -- read side --------------------------------------------------------------------

    def _counter(self, index: int) -> int:
        values = self._stats.lookup(ct.c_uint32(index))
        return sum(values) if values is not None else 0

    def drop_counts(self) -> dict[RejectReason, int]:
        """Kernel drops per reason, summed over CPUs (every reason present)."""
        return {reason: self._counter(index) for index, reason in enumerate(RejectReason)}

    def accepted_count(self) -> int:
        """Valid adverts, whether passed up to the socket or kept in the kernel."""
        return self._counter(ACCEPTED_INDEX)

    def absorbed_count(self) -> int:
        """Valid adverts kept in the kernel by kernel-only mode (never copied to a socket)."""
        return self._counter(ABSORBED_INDEX)

    def peer(self, ifindex: int, vrid: int) -> PeerRecord | None:
        """The last accepted advert of ``vrid`` on ``ifindex``, if any (one syscall)."""
        key = VridKey(ifindex, vrid)
        value = self._peers.lookup(key)
        return None if value is None else _peer_record(key, value)

    def peers(self) -> tuple[PeerRecord, ...]:
        """Every peer record, ordered by (ifindex, VRID)."""
        records = (_peer_record(key, value) for key, value in self._peers.items())
        return tuple(sorted(records, key=lambda record: (record.ifindex, record.vrid)))

    def snapshot(self) -> FilterSnapshot:
        """Counters and peer records in one call, for metrics and status."""
        return FilterSnapshot(
            self.drop_counts(), self.accepted_count(), self.absorbed_count(), self.peers()
        )

    # -- events -----------------------------------------------------------------------

    def open_events(self, callback: Callable[[PeerEvent], None]) -> int:
        """Deliver ring-buffer events to ``callback``; returns the fd to watch.

        The fd becomes readable when events are pending: hand it to ``loop.add_reader``
        with :meth:`consume_events` (no thread, no blocking poll). Can be called once.
        """
        if self._on_event is not None:
            raise RuntimeError("the event ring buffer is already open")
        self._on_event = callback
        return self._ring.fd

    def consume_events(self) -> int:
        """Run the callback for every pending event, without blocking; returns how many."""
        callback = self._on_event
        if callback is None:
            raise RuntimeError("open_events() first")
        return self._ring.consume(lambda data: callback(_peer_event(Event.from_buffer_copy(data))))

    def close(self) -> None:
        """Release the programs, maps and ring buffer (attached sockets and tc filters keep
        the program alive until they go)."""
        for key in [key for key, value in _LOADED.items() if value is self]:
            del _LOADED[key]
        self._ring.close()
        for fd in self._fds:
            os.close(fd)
        self._fds = []


@dataclass(slots=True)
class TcAttachment:
    """Our filter on one interface's clsact ingress; :meth:`close` removes it."""

    ifname: str
    ifindex: int
    #: Whether we added the clsact qdisc (then we remove it when it holds nothing else).
    created_clsact: bool

    async def close(self) -> None:
        """Remove our filter, and the clsact qdisc if we added it and it is now empty."""
        from pyroute2 import AsyncIPRoute

        async with AsyncIPRoute() as ipr:
            await _delete_our_filters(ipr, self.ifindex)
            if self.created_clsact and not await _ingress_filters(ipr, self.ifindex):
                await ipr.tc("del", "clsact", self.ifindex)


async def remove_stale_filters(ifname: str) -> int:
    """Remove tc filters of ours left on ``ifname`` (e.g. by a ``kill -9``); returns how many.

    Ours means: on clsact ingress, kind bpf, our priority, handle and TCA_BPF_NAME. The
    clsact qdisc itself stays (another program may use it).
    """
    from pyroute2 import AsyncIPRoute

    async with AsyncIPRoute() as ipr:
        return await _delete_our_filters(ipr, await _ifindex(ipr, ifname))


async def _ifindex(ipr: Any, ifname: str) -> int:
    indices = await ipr.link_lookup(ifname=ifname)
    if not indices:
        raise HostError(f"{ifname}: no such interface")
    return int(indices[0])


async def _ingress_filters(ipr: Any, ifindex: int) -> list[Any]:
    """Filters on clsact ingress of ``ifindex`` (none, not an error, without clsact)."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return [
            message
            async for message in await ipr.get_filters(index=ifindex, parent=_TC_INGRESS_PARENT)
            if message.get("handle")  # handle 0 is the per-priority header, not a filter
        ]
    except NetlinkError as error:
        if error.code in (errno.EINVAL, errno.ENOENT):
            return []
        raise


async def _delete_our_filters(ipr: Any, ifindex: int) -> int:
    removed = 0
    for message in await _ingress_filters(ipr, ifindex):
        options = message.get_attr("TCA_OPTIONS")
        if (
            message.get_attr("TCA_KIND") == "bpf"
            and message.get("parent") == _TC_INGRESS_PARENT_ID
            and message.get("handle") == TC_FILTER_HANDLE
            and message.get("info") >> 16 == TC_FILTER_PRIORITY
            and options is not None
            and options.get_attr("TCA_BPF_NAME") == TC_FILTER_NAME
        ):
            await ipr.tc(
                "del-filter",
                "bpf",
                ifindex,
                TC_FILTER_HANDLE,
                parent=_TC_INGRESS_PARENT,
                prio=TC_FILTER_PRIORITY,
                protocol=_ETH_P_IP,
            )
            removed += 1
    return removed


def _check_fits(vrid: int, policy: VridPolicy, local: LocalRouter) -> None:
    """Refuse values the C fields would silently truncate (ctypes does not check)."""
    problems = [
        f"{name} must be {low}..{high}, got {value}"
        for name, value, low, high in (
            ("vrid", vrid, 1, 255),
            ("version", policy.version, 2, 3),
            ("advert_interval_cs", policy.advert_interval_cs, 1, V3_MAX_INTERVAL_CS),
            ("local priority", local.priority, 1, PRIORITY_OWNER),
        )
        if not low <= value <= high
    ]
    if len(policy.auth_password) > V2_AUTH_DATA_LEN:
        problems.append(f"auth_password is at most {V2_AUTH_DATA_LEN} bytes")
    if problems:
        raise ValueError(f"VRID {vrid}: " + "; ".join(problems))


def _set_socket_option(sock: socket.socket | int, option: int, value: int, doing: str) -> None:
    """``setsockopt(SOL_SOCKET, option, value)`` on a socket object or a borrowed fd."""
    try:
        borrowed = sock if isinstance(sock, socket.socket) else socket.socket(fileno=sock)
    except OSError as error:
        raise HostError(f"cannot {doing} fd {sock}: {error.strerror}") from None
    try:
        borrowed.setsockopt(socket.SOL_SOCKET, option, value)
    except OSError as error:
        raise HostError(f"cannot {doing} socket {borrowed.fileno()}: {error.strerror}") from None
    finally:
        if borrowed is not sock:
            borrowed.detach()  # the fd belongs to the caller: do not close it


def _peer_record(key: VridKey, value: Peer) -> PeerRecord:
    return PeerRecord(
        ifindex=int(key.ifindex),
        vrid=int(key.vrid),
        master=_u32_to_address(value.src),
        priority=int(value.prio),
        version=int(value.version),
        interval_cs=int(value.interval_cs),
        last_seen_ns=int(value.last_seen_ns),
        last_reset_ns=int(value.last_reset_ns),
        count=int(value.count),
    )


def _peer_event(raw: Event) -> PeerEvent:
    return PeerEvent(
        ts_ns=int(raw.ts_ns),
        ifindex=int(raw.ifindex),
        vrid=int(raw.vrid),
        what=PeerEventKind(raw.what),
        source=_u32_to_address(raw.src),
        priority=int(raw.prio),
        interval_cs=int(raw.interval_cs),
        version=int(raw.version),
        old_source=_u32_to_address(raw.old_src),
        old_priority=int(raw.old_prio),
        old_interval_cs=int(raw.old_interval_cs),
    )


# -- loading through the child ----------------------------------------------------------------

#: One loaded filter per (source, cflags) in this process: every load compiles anew.
_LOADED: dict[tuple[str, tuple[str, ...]], VrrpFilter] = {}


def load_filter(
    source: Path = DEFAULT_SOURCE,
    *,
    max_routers: int = 1024,
    max_own_addresses: int = 1024,
    max_unicast_peers: int = 4096,
    ringbuf_pages: int = 8,
) -> VrrpFilter:
    """Compile and load the filter in a child process, once per process and parameters.

    Blocks for the compile (about 0.4 s): from a running event loop call it through
    ``asyncio.to_thread``. ``max_routers`` sizes the (ifindex, VRID) maps,
    ``max_own_addresses`` the map of this node's addresses, ``max_unicast_peers`` the map
    of (interface, VRID, peer) entries of unicast mode, ``ringbuf_pages`` (a power of
    two) the event ring buffer. Raises :class:`BpfUnavailable` for every reason the filter
    cannot be had.
    """
    source = source.resolve()
    cflags = (
        f"-I{source.parent}",
        f"-DVRRP_MAX_ROUTERS={max_routers}",
        f"-DVRRP_MAX_OWN_ADDRESSES={max_own_addresses}",
        f"-DVRRP_MAX_UNICAST_PEERS={max_unicast_peers}",
        f"-DVRRP_RINGBUF_PAGES={ringbuf_pages}",
    )
    key = (str(source), cflags)
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = _LOADED[key] = _load_in_child(source, cflags)
    return loaded


def _load_in_child(source: Path, cflags: tuple[str, ...]) -> VrrpFilter:
    if not _has_bpf_capability():
        raise BpfUnavailable(
            UnavailableCause.NO_PRIVILEGE,
            "loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN), "
            "which this process does not have",
        )
    if not source.is_file():
        raise BpfUnavailable(UnavailableCause.LOAD_FAILED, f"{source} does not exist")
    description, fds, diagnostics = run_loader(source, cflags)
    try:
        if not description.get("ok"):
            raise _explain(description, diagnostics)
        check_layouts(description["maps"])
        programs = {name: fds[index] for name, index in description["programs"].items()}
        maps = {
            name: (fds[entry["fd"]], int(entry["max_entries"]))
            for name, entry in description["maps"].items()
        }
        vrrp_filter = VrrpFilter(programs, maps)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    # Compiler warnings the child printed are not lost.
    if diagnostics:
        sys.stderr.write(diagnostics)
    return vrrp_filter


def run_loader(source: Path, cflags: tuple[str, ...]) -> tuple[dict[str, Any], list[int], str]:
    """Run :mod:`agent.host.bpf_loader`; returns (description, fds, its stdout + stderr)."""
    request = {
        "source": str(source),
        "cflags": list(cflags),
        "programs": _PROGRAMS,
        "maps": list(MAP_LAYOUTS),
    }
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours:
        with theirs:
            try:
                child = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "agent.host.bpf_loader",
                        str(theirs.fileno()),
                        json.dumps(request),
                    ],
                    pass_fds=(theirs.fileno(),),
                    capture_output=True,
                    text=True,
                    timeout=_LOADER_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise BpfUnavailable(
                    UnavailableCause.LOAD_FAILED, f"eBPF filter: the loader did not run: {error}"
                ) from None
        diagnostics = child.stdout + child.stderr
        try:
            message, fds, flags, _ = socket.recv_fds(ours, 1 << 16, 64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            message, fds, flags = b"", [], 0
    if not message or flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in fds:
            os.close(fd)
        tail = "\n".join(diagnostics.strip().splitlines()[-20:])
        raise BpfUnavailable(
            UnavailableCause.LOAD_FAILED,
            f"eBPF filter: the loader exited with status {child.returncode} without "
            "handing back the program" + (f"\n{tail}" if tail else ""),
        )
    description: dict[str, Any] = json.loads(message)
    return description, fds, diagnostics


def _explain(description: Mapping[str, Any], diagnostics: str) -> BpfUnavailable:
    """Turn the child's error and its compiler chatter into a cause and a clear message."""
    error = str(description.get("message", ""))
    if description.get("cause") == UnavailableCause.BCC_MISSING:
        return BpfUnavailable(
            UnavailableCause.BCC_MISSING,
            f"bcc is not importable ({error}); install Debian's "
            "python3-bpfcc and use a venv made with --system-site-packages "
            "(never `pip install bcc`, an unrelated project)",
        )
    if "kernel headers" in diagnostics.lower():
        release = platform.release()
        return BpfUnavailable(
            UnavailableCause.HEADERS_MISSING,
            f"BCC found no kernel headers for {release}; install "
            f"linux-headers-{release} or link any header tree to /lib/modules/{release}/build "
            "(deploy/kernel-headers.sh)",
        )
    if "Operation not permitted" in diagnostics or "super-user" in error:
        return BpfUnavailable(
            UnavailableCause.NO_PRIVILEGE,
            f"the kernel refused to create the maps or load the program (needs CAP_BPF): {error}",
        )
    tail = "\n".join(diagnostics.strip().splitlines()[-20:])
    return BpfUnavailable(
        UnavailableCause.LOAD_FAILED,
        f"{error}" + (f"\n{tail}" if tail else ""),
    )


def _has_bpf_capability() -> bool:
    """Whether the effective capability set holds CAP_BPF or CAP_SYS_ADMIN."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
            return bool(effective & (1 << _CAP_BPF | 1 << _CAP_SYS_ADMIN))
    return os.geteuid() == 0
