"""Load the eBPF receive filter (``bpf/vrrp_filter.c``) with BCC and talk to its maps.

Theory of operation
-------------------
The C program mirrors :func:`agent.core.packet.classify` check by check and drops every
packet that ``classify()`` would reject, before the kernel copies it to the raw socket; each
drop is counted per CPU under the same :class:`~agent.core.packet.RejectReason`. Accepted
adverts are still passed up (the driver's single advert entry point handles them as
before); on the way the program records the last advert of each (ifindex, VRID) in a map
and writes a ring-buffer event when something the state machine cares about changed.

BCC compiles the C source with LLVM inside this process (about 0.25 s and 60 MiB resident
on top of the 65 MiB that ``import bcc`` costs, bpf/README.md), so :func:`load_filter`
compiles once per process and returns the same :class:`VrrpFilter` to every caller.
``import bcc`` happens there, not at import time, so the agent runs without bcc
installed. Every reason the filter cannot be had (no bcc, no kernel headers, no
privilege, a compile or verifier error) is one :class:`BpfUnavailable` whose message says
which, so the daemon can fall back to the pure userspace path and log why.

Keys and values are the ctypes ``Key``/``Leaf`` classes BCC generates from the C structs
(``bpf/vrrp_structs.h``): nothing is declared twice. Addresses in the maps are the raw
network-order ``u32`` the program reads from the packet, so they convert with the host's
byte order. Timestamps are ``bpf_ktime_get_ns()``, i.e. ``CLOCK_MONOTONIC`` nanoseconds,
the clock of ``time.monotonic_ns()`` and of ``loop.time()``.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import platform
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Final

from agent.core.constants import PRIORITY_OWNER, V2_AUTH_DATA_LEN, V3_MAX_INTERVAL_CS
from agent.core.packet import AuthType, ReceivePolicy, RejectReason, VridPolicy
from agent.host.errors import HostError

#: The program's source; its headers sit next to it.
DEFAULT_SOURCE: Final = Path(__file__).resolve().parents[2] / "bpf" / "vrrp_filter.c"
#: The socket-filter entry point in the C source.
PROGRAM_NAME: Final = b"vrrp_sock"

#: ``setsockopt(SOL_SOCKET, ...)`` options from <asm-generic/socket.h>; Python's socket
#: module does not export them.
SO_ATTACH_BPF: Final = 50
SO_DETACH_BPF: Final = 27

_CAP_SYS_ADMIN: Final = 21
_CAP_BPF: Final = 39

#: ``vrid_cfg.flags`` and ``vrid_cfg.auth_type`` values (bpf/vrrp_consts.h).
_F_PREEMPT: Final = 1
_AUTH_CODE: Final = {AuthType.NONE: 0, AuthType.SIMPLE: 1}
#: Index of the accepted-advert counter in ``stats``: right after the reject reasons.
ACCEPTED_INDEX: Final = len(RejectReason)


class UnavailableCause(StrEnum):
    """Why the filter could not be loaded; the daemon logs it when it falls back."""

    BCC_MISSING = "bcc_missing"
    HEADERS_MISSING = "headers_missing"
    NO_PRIVILEGE = "no_privilege"
    #: The program did not compile or the verifier refused it: a bug, not the host.
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
    """Our side of one virtual router: decides which adverts reset Master_Down_Timer.

    Defaults are the configuration defaults (priority 100, preempt on).
    """

    priority: int = 100
    preempt: bool = True


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
    #: Adverts accepted and passed up to the socket.
    accepted: int
    peers: tuple[PeerRecord, ...]


def _address_to_u32(address: IPv4Address) -> int:
    """The raw network-order u32 the program compares with (host byte order view)."""
    return int.from_bytes(address.packed, sys.byteorder)


def _u32_to_address(value: int) -> IPv4Address:
    return IPv4Address(value.to_bytes(4, sys.byteorder))


class VrrpFilter:
    """The loaded program and its maps, behind a domain API (katran's ``KatranLb`` style).

    Obtain it from :func:`load_filter`; callers never see map keys or ctypes.
    """

    def __init__(self, bpf: Any, prog_fd: int) -> None:
        """Wrap a ``bcc.BPF`` object whose socket-filter function is loaded as ``prog_fd``."""
        self._bpf = bpf
        #: File descriptor of the loaded socket-filter program (for SO_ATTACH_BPF, test runs).
        self.prog_fd = prog_fd
        self._vrid_cfg = bpf[b"vrid_cfg"]
        self._own_addrs = bpf[b"own_addrs"]
        self._stats = bpf[b"stats"]
        self._peers = bpf[b"peers"]
        self._events = bpf[b"events"]
        self._events_open = False

    # -- configuration ----------------------------------------------------------------

    def configure_interface(
        self,
        ifindex: int,
        policy: ReceivePolicy,
        local: Mapping[int, LocalRouter] | None = None,
    ) -> None:
        """Make the kernel enforce ``policy`` on ``ifindex``, replacing what was there.

        ``local`` gives our priority and preempt mode per VRID (default
        :class:`LocalRouter`). Peer records of VRIDs no longer configured are forgotten.
        """
        local = local or {}
        wanted = {}
        for vrid, vrid_policy in policy.vrids.items():
            mine = local.get(vrid, LocalRouter())
            _check_fits(vrid, vrid_policy, mine)
            password = vrid_policy.auth_password.ljust(V2_AUTH_DATA_LEN, b"\0")
            wanted[vrid] = self._vrid_cfg.Leaf(
                version=vrid_policy.version,
                flags=_F_PREEMPT if mine.preempt else 0,
                local_prio=mine.priority,
                auth_type=_AUTH_CODE[vrid_policy.auth_type],
                interval_cs=vrid_policy.advert_interval_cs,
                auth_data=int.from_bytes(password, sys.byteorder),
            )
        for key in list(self._vrid_cfg.keys()):
            if key.ifindex == ifindex and key.vrid not in wanted:
                del self._vrid_cfg[key]
        for key in list(self._peers.keys()):
            if key.ifindex == ifindex and key.vrid not in wanted:
                del self._peers[key]
        for vrid, leaf in wanted.items():
            self._vrid_cfg[self._vrid_cfg.Key(ifindex=ifindex, vrid=vrid)] = leaf

        addresses = {_address_to_u32(address) for address in policy.own_addresses}
        for key in list(self._own_addrs.keys()):
            if key.ifindex == ifindex and key.addr not in addresses:
                del self._own_addrs[key]
        for address in addresses:
            key = self._own_addrs.Key(ifindex=ifindex, addr=address)
            self._own_addrs[key] = self._own_addrs.Leaf(1)

    def forget_interface(self, ifindex: int) -> None:
        """Remove the configuration and the peer records of ``ifindex``."""
        self.configure_interface(ifindex, ReceivePolicy(vrids={}))

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

    # -- read side --------------------------------------------------------------------

    def drop_counts(self) -> dict[RejectReason, int]:
        """Kernel drops per reason, summed over CPUs (every reason present)."""
        return {
            reason: int(self._stats.sum(self._stats.Key(index)).value)
            for index, reason in enumerate(RejectReason)
        }

    def accepted_count(self) -> int:
        """Adverts the program accepted and passed up to the socket."""
        return int(self._stats.sum(self._stats.Key(ACCEPTED_INDEX)).value)

    def peer(self, ifindex: int, vrid: int) -> PeerRecord | None:
        """The last accepted advert of ``vrid`` on ``ifindex``, if any."""
        key = self._peers.Key(ifindex=ifindex, vrid=vrid)
        try:
            leaf = self._peers[key]
        except KeyError:
            return None
        return _peer_record(key, leaf)

    def peers(self) -> tuple[PeerRecord, ...]:
        """Every peer record, ordered by (ifindex, VRID)."""
        records = (_peer_record(key, leaf) for key, leaf in self._peers.items())
        return tuple(sorted(records, key=lambda record: (record.ifindex, record.vrid)))

    def snapshot(self) -> FilterSnapshot:
        """Counters and peer records in one call, for metrics and status."""
        return FilterSnapshot(self.drop_counts(), self.accepted_count(), self.peers())

    # -- events -----------------------------------------------------------------------

    def open_events(self, callback: Callable[[PeerEvent], None]) -> int:
        """Deliver ring-buffer events to ``callback``; returns the fd to watch.

        The fd becomes readable when events are pending: hand it to ``loop.add_reader``
        with :meth:`consume_events` (no thread, no blocking poll). Can be called once.
        """
        if self._events_open:
            raise RuntimeError("the event ring buffer is already open")

        def deliver(_ctx: Any, data: Any, _size: int) -> int:
            callback(_peer_event(self._events.event(data)))
            return 0

        self._events.open_ring_buffer(deliver)
        self._events_open = True
        return int(self._events.map_fd)

    def consume_events(self) -> None:
        """Run the callback for every pending event, without blocking."""
        self._bpf.ring_buffer_consume()

    def close(self) -> None:
        """Release the program, maps and ring buffer (attached sockets keep the program)."""
        for key in [key for key, value in _LOADED.items() if value is self]:
            del _LOADED[key]
        self._bpf.cleanup()


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


def _peer_record(key: Any, leaf: Any) -> PeerRecord:
    return PeerRecord(
        ifindex=int(key.ifindex),
        vrid=int(key.vrid),
        master=_u32_to_address(leaf.src),
        priority=int(leaf.prio),
        version=int(leaf.version),
        interval_cs=int(leaf.interval_cs),
        last_seen_ns=int(leaf.last_seen_ns),
        last_reset_ns=int(leaf.last_reset_ns),
        count=int(leaf.count),
    )


def _peer_event(raw: Any) -> PeerEvent:
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


#: One loaded filter per (source, cflags) in this process: BCC compiles on every load.
_LOADED: dict[tuple[str, tuple[str, ...]], VrrpFilter] = {}


def load_filter(
    source: Path = DEFAULT_SOURCE,
    *,
    max_routers: int = 1024,
    max_own_addresses: int = 1024,
    ringbuf_pages: int = 8,
) -> VrrpFilter:
    """Compile and load the filter, once per process and set of parameters.

    ``max_routers`` sizes the (ifindex, VRID) maps, ``max_own_addresses`` the map of this
    node's addresses, ``ringbuf_pages`` (a power of two) the event ring buffer. Raises
    :class:`BpfUnavailable` for every reason the filter cannot be had.
    """
    source = source.resolve()
    cflags = (
        f"-I{source.parent}",
        f"-DVRRP_MAX_ROUTERS={max_routers}",
        f"-DVRRP_MAX_OWN_ADDRESSES={max_own_addresses}",
        f"-DVRRP_RINGBUF_PAGES={ringbuf_pages}",
    )
    key = (str(source), cflags)
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = _LOADED[key] = _compile_and_load(source, cflags)
    return loaded


def _compile_and_load(source: Path, cflags: tuple[str, ...]) -> VrrpFilter:
    try:
        import bcc
    except ImportError as error:
        raise BpfUnavailable(
            UnavailableCause.BCC_MISSING,
            f"eBPF filter unavailable: bcc is not importable ({error}); install Debian's "
            "python3-bpfcc and use a venv made with --system-site-packages "
            "(never `pip install bcc`, an unrelated project)",
        ) from None
    if not _has_bpf_capability():
        raise BpfUnavailable(
            UnavailableCause.NO_PRIVILEGE,
            "eBPF filter unavailable: loading BPF programs needs CAP_BPF (or CAP_SYS_ADMIN), "
            "which this process does not have",
        )
    if not source.is_file():
        raise BpfUnavailable(
            UnavailableCause.LOAD_FAILED, f"eBPF filter unavailable: {source} does not exist"
        )
    with _captured_output() as diagnostics:
        try:
            bpf = bcc.BPF(src_file=str(source).encode(), cflags=list(cflags))
            prog_fd = int(bpf.load_func(PROGRAM_NAME, bcc.BPF.SOCKET_FILTER).fd)
        except Exception as error:  # bcc raises bare Exception for everything
            failure: Exception | None = error
        else:
            failure = None
    if failure is not None:
        raise _explain(failure, diagnostics.text) from None
    # Compiler warnings that went to the captured output are not lost.
    if diagnostics.text:
        sys.stderr.write(diagnostics.text)
    return VrrpFilter(bpf, prog_fd)


def _explain(error: Exception, diagnostics: str) -> BpfUnavailable:
    """Turn BCC's bare exception plus its stderr chatter into a cause and a clear message."""
    detail = diagnostics.strip().splitlines()[-20:]
    tail = "\n".join(detail)
    if "kernel headers" in diagnostics.lower():
        release = platform.release()
        return BpfUnavailable(
            UnavailableCause.HEADERS_MISSING,
            f"eBPF filter unavailable: BCC found no kernel headers for {release}; install "
            f"linux-headers-{release} or link any header tree to /lib/modules/{release}/build "
            "(deploy/kernel-headers.sh)",
        )
    if "Operation not permitted" in diagnostics or "super-user" in str(error):
        return BpfUnavailable(
            UnavailableCause.NO_PRIVILEGE,
            f"eBPF filter unavailable: the kernel refused to create the maps or load the "
            f"program (needs CAP_BPF): {error}",
        )
    return BpfUnavailable(
        UnavailableCause.LOAD_FAILED,
        f"eBPF filter unavailable: {error}" + (f"\n{tail}" if tail else ""),
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


class _Captured:
    text = ""


@contextlib.contextmanager
def _captured_output() -> Iterator[_Captured]:
    """Capture file descriptors 1 and 2 while libbcc runs: its diagnostics only go there.

    libbcc prints "Unable to find kernel headers" on stdout and compiler and verifier
    messages on stderr. Used once per process, at start-up; whatever else was written
    meanwhile is in ``text`` and is re-emitted by the caller on success or quoted in the
    error.
    """
    captured = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield captured
        finally:
            ct.CDLL(None).fflush(None)  # libc's buffered streams, if any
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
