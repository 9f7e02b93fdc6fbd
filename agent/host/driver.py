"""The asyncio driver: feeds the pure core its inputs and executes its actions.

Theory of operation (the aioquic pattern, style.md §2.3 and §7):

- :class:`InterfaceReceiver` owns the raw VRRP socket of one interface. On each wake-up
  of ``loop.add_reader`` it reads at most :data:`RECEIVE_BATCH` datagrams, so that a flood
  cannot keep the loop inside the reader and starve the timers. Every datagram goes
  through :func:`~agent.core.packet.classify` with the interface's
  :class:`~agent.core.packet.ReceivePolicy`; rejects are counted by reason and logged
  rate-limited (RFC 9568 §7.1 asks for rate-limited logging), accepted adverts go to the
  :class:`RouterDriver` of their VRID.
- :class:`RouterDriver` owns one :class:`~agent.core.router.VirtualRouter`. Its
  :meth:`RouterDriver.receive_advertisement` is the single entry point for adverts, whichever
  receive path (userspace socket or eBPF) produced them. After every input the driver
  executes ``pop_actions()`` in order and re-arms its one ``TimerHandle`` from
  ``next_deadline()``. A timer callback uses ``now = max(deadline, loop.time())`` so an
  early wake-up never looks like "before the deadline" to the core.
- Netlink work (adding and removing VIPs) and the GARPs that announce those VIPs run in a
  per-router chain of tasks: their order is preserved, and the protocol (adverts, timers)
  never waits for the kernel to answer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Interface
from typing import Final, Protocol

from agent.core.packet import Advertisement, ChecksumForm, ReceivePolicy, RejectReason, classify
from agent.core.router import (
    Action,
    AddVips,
    Cause,
    RemoveVips,
    SendAdvertisement,
    SendGratuitousArp,
    State,
    StateChanged,
    VirtualRouter,
)
from agent.host.errors import HostError

log = logging.getLogger("agent")

#: Datagrams read per reader wake-up; then the loop gets to run timers and other readers.
RECEIVE_BATCH: Final = 64
#: Large enough for the biggest advert (60-byte IP header, 8 + 255 x 4 + 8 bytes of VRRP);
#: a longer datagram arrives truncated and is rejected as a bad IP header.
RECEIVE_BUFFER: Final = 2048
#: At most one log line per reject reason (or send failure) per interface in this many seconds.
LOG_INTERVAL: Final = 10.0
#: Rejects that are routine on a shared LAN (other VRRP groups, our own looped adverts):
#: logged at DEBUG; everything else points at a misconfiguration or an attack: WARNING.
ROUTINE_REJECTS: Final = frozenset({RejectReason.UNKNOWN_VRID, RejectReason.OWN_ADVERT})


class KernelPeer(Protocol):
    """The part of an eBPF peer record the driver needs in kernel-only mode."""

    @property
    def master(self) -> IPv4Address: ...

    @property
    def priority(self) -> int: ...

    @property
    def interval_cs(self) -> int: ...

    @property
    def last_reset(self) -> float | None: ...


#: Called after every state change of a router, once its actions have run.
StateObserver = Callable[["RouterDriver", StateChanged], None]


class VipTable(Protocol):
    """The part of :class:`agent.host.netlink.Netlink` the driver uses."""

    async def add_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None: ...

    async def remove_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None: ...


class ThrottledLog:
    """Counts events per key and logs at most one line per key per :data:`LOG_INTERVAL`.

    The first event logs at once; later ones within the interval are summed and reported
    by a single line when the interval ends ("N since the last report").
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, template: str) -> None:
        """``template`` is a ``str.format`` string with the fields ``count`` and ``key``."""
        self._loop = loop
        self._template = template
        #: Every event ever recorded, per key: the numbers for metrics.
        self.totals: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._last_line: dict[str, float] = {}
        self._flush: dict[str, tuple[asyncio.TimerHandle, int]] = {}

    def record(self, key: str, level: int = logging.WARNING, count: int = 1) -> None:
        self.totals[key] += count
        self._pending[key] += count
        last = self._last_line.get(key)
        now = self._loop.time()
        if last is None or now - last >= LOG_INTERVAL:
            self._emit(key, level)
        elif key not in self._flush:
            handle = self._loop.call_at(last + LOG_INTERVAL, self._emit, key, level)
            self._flush[key] = (handle, level)

    def _emit(self, key: str, level: int) -> None:
        pending = self._flush.pop(key, None)
        if pending is not None:
            pending[0].cancel()
        count = self._pending.pop(key, 0)
        self._last_line[key] = self._loop.time()
        if count:
            log.log(level, self._template.format(count=count, key=key))

    def close(self) -> None:
        """Report what is still pending now instead of at the end of its interval."""
        for key, (_handle, level) in list(self._flush.items()):
            self._emit(key, level)


class RouterDriver:
    """Runs one virtual router on the event loop: inputs in, actions out, one timer.

    ``send_advert(message, destination)`` puts one encoded VRRP message on the wire, to
    224.0.0.18 or to one unicast peer (:func:`agent.host.sockets.send_advert`).
    """

    def __init__(
        self,
        router: VirtualRouter,
        *,
        loop: asyncio.AbstractEventLoop,
        ifname: str,
        ifindex: int,
        send_advert: Callable[[bytes, IPv4Address], None],
        send_garp: Callable[[Sequence[IPv4Interface], int], None],
        vips: VipTable,
        kernel_peer: Callable[[], KernelPeer | None] | None = None,
    ) -> None:
        self.router = router
        #: Observers of state changes (notify scripts, sync groups, the eBPF filter):
        #: critical work lives in the core's actions, observers only follow.
        self.observers: list[StateObserver] = []
        #: Transitions by (from, to, cause), and the last one with its loop time: status
        #: and metrics.
        self.transitions: Counter[tuple[State, State, Cause]] = Counter()
        self.last_transition: tuple[StateChanged, float] | None = None
        #: In kernel-only mode, the eBPF peer record of this VRID (None otherwise).
        self._kernel_peer = kernel_peer
        self.ifname = ifname
        self.ifindex = ifindex
        self._loop = loop
        self._send_advert = send_advert
        self._send_garp = send_garp
        self._vips = vips
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: Tail of the per-router chain of netlink/GARP tasks (see module docstring).
        self._chain: asyncio.Task[None] | None = None
        self._stopped = False
        self.send_failures = ThrottledLog(
            loop, f"{router.config.name}: {{count}} advert(s) not sent: {{key}}"
        )

    @property
    def name(self) -> str:
        return self.router.config.name

    @property
    def timer_deadline(self) -> float | None:
        """When the armed timer fires (None when no timer is armed)."""
        return self._timer_at if self._timer is not None else None

    def start(self) -> None:
        """Start the router (RFC 9568 §6.4.1: Initialize -> Backup or Master)."""
        self.router.start(self._loop.time())
        self._after_input()

    def receive_advertisement(self, advert: Advertisement) -> None:
        """The single entry point of accepted adverts, from any receive path."""
        if self._stopped:
            return
        self.router.receive(advert, self._loop.time())
        self._after_input()

    def update(self, change: Callable[[float], None]) -> None:
        """Apply any other input (fault, priority, sync group) and run its actions.

        ``change`` receives ``now``; e.g. ``driver.update(partial(router.set_fault, c, True))``.
        """
        if self._stopped:
            return
        change(self._loop.time())
        self._after_input()

    async def shutdown(self) -> None:
        """Give up the router (priority-0 advert, VIPs removed) and wait for the kernel."""
        if not self._stopped:
            self._stopped = True
            self.router.shutdown(self._loop.time())
            self._execute_actions()
            self._cancel_timer()
        await self.drain()
        self.send_failures.close()

    async def drain(self) -> None:
        """Wait until every queued netlink/GARP step has run."""
        while self._chain is not None and not self._chain.done():
            await asyncio.wait({self._chain})

    def _on_timer(self) -> None:
        deadline = self._timer_at
        self._timer = None
        self._timer_at = None
        if self._stopped or deadline is None:
            return
        now = max(deadline, self._loop.time())
        if self._catch_up_with_kernel():
            self._after_input()
            next_deadline = self.router.next_deadline()
            if next_deadline is not None and next_deadline > now:
                return
        self.router.handle_timer(now)
        self._after_input()

    def _catch_up_with_kernel(self) -> bool:
        """Kernel-only mode: feed the core the last timer-resetting advert the kernel kept.

        The eBPF program absorbs adverts that change nothing, so a backup's userspace
        sleeps until its Master_Down_Timer; before acting on it we read the peer map and,
        if an advert reset the timer meanwhile (RFC 9568 §6.4.2), replay it at the time
        the kernel saw it, which moves the deadline exactly where per-packet processing
        would have put it. Returns True when something was fed.
        """
        if self._kernel_peer is None or self.router.state is not State.BACKUP:
            return False
        record = self._kernel_peer()
        if record is None or record.last_reset is None:
            return False
        last_fed = self.router.last_advert_at
        if last_fed is not None and record.last_reset <= last_fed:
            return False
        # The record holds the newest accepted advert; the one that reset the timer had
        # priority 0, at least ours, or arrived with preempt off (the kernel's rule).
        priority = (
            record.priority if record.priority == 0 else max(record.priority, self.router.priority)
        )
        self.router.receive(
            Advertisement(
                version=self.router.config.version,
                vrid=self.router.config.vrid,
                priority=priority,
                interval_cs=record.interval_cs,
                addresses=(),
                source=record.master,
                checksum_form=ChecksumForm.PSEUDO_HEADER,
            ),
            record.last_reset,
        )
        return True

    def _after_input(self) -> None:
        self._execute_actions()
        self._rearm()

    def _rearm(self) -> None:
        """One TimerHandle per router, replaced only when the deadline moved (aioquic)."""
        deadline = None if self._stopped else self.router.next_deadline()
        if self._timer is not None and deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _execute_actions(self) -> None:
        # Observers may feed this router again (a sync group), so drain until empty.
        while actions := self.router.pop_actions():
            for action in actions:
                self._execute(action)

    def _execute(self, action: Action) -> None:
        match action:
            case SendAdvertisement(priority=priority):
                # Unicast mode: one copy per peer, each checksummed for its destination.
                for destination in self.router.advert_destinations:
                    self._send(self.router.encode_advertisement(priority, destination), destination)
            case AddVips(vips=vips):
                self._enqueue(self._add_vips(vips))
            case RemoveVips(vips=vips):
                self._enqueue(self._remove_vips(vips))
            case SendGratuitousArp(vips=vips, count=count):
                self._enqueue(self._garp(vips, count))
            case StateChanged(old=old, new=new, reason=reason, cause=cause):
                log.info(
                    "%s: %s -> %s (%s)",
                    self.name,
                    old,
                    new,
                    reason,
                    extra={
                        "instance": self.name,
                        "old": old.value,
                        "new": new.value,
                        "reason": reason,
                        "cause": cause.value,
                    },
                )
                self.transitions[old, new, cause] += 1
                self.last_transition = (action, self._loop.time())
                for observer in self.observers:
                    observer(self, action)

    def _send(self, message: bytes, destination: IPv4Address) -> None:
        try:
            self._send_advert(message, destination)
        except OSError as exc:
            self.send_failures.record(exc.strerror or type(exc).__name__)

    def _enqueue(self, step: Awaitable[None]) -> None:
        previous = self._chain
        self._chain = self._loop.create_task(self._run_after(previous, step))

    async def _run_after(self, previous: asyncio.Task[None] | None, step: Awaitable[None]) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        try:
            await step
        except HostError as exc:
            log.error("%s: %s", self.name, exc)

    async def _add_vips(self, vips: Iterable[IPv4Interface]) -> None:
        for vip in vips:
            await self._vips.add_vip(self.ifname, self.ifindex, vip)

    async def _remove_vips(self, vips: Iterable[IPv4Interface]) -> None:
        for vip in vips:
            await self._vips.remove_vip(self.ifname, self.ifindex, vip)

    async def _garp(self, vips: Sequence[IPv4Interface], count: int) -> None:
        self._send_garp(vips, count)


class InterfaceReceiver:
    """Reads one interface's raw VRRP socket and hands accepted adverts to their router."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        ifname: str,
        sock: socket.socket,
        drivers: Iterable[RouterDriver],
        own_addresses: Iterable[IPv4Address],
    ) -> None:
        self.ifname = ifname
        self._loop = loop
        self._sock = sock
        self._drivers: dict[int, RouterDriver] = {}
        self.policy = ReceivePolicy(vrids={})
        self.update(drivers, own_addresses)
        self.accepted = 0
        #: Rejected datagrams per (VRID, reason), for per-instance error counters; only
        #: those whose header was long enough to carry a VRID.
        self.rejects_by_vrid: Counter[tuple[int, str]] = Counter()
        #: Rejected datagrams by :class:`RejectReason` value (the metric label).
        self.rejects = ThrottledLog(
            loop, f"{ifname}: dropped {{count}} datagram(s) since the last report: {{key}}"
        )
        self.read_errors = ThrottledLog(loop, f"{ifname}: {{count}} receive error(s): {{key}}")
        self._reading = False

    def update(self, drivers: Iterable[RouterDriver], own_addresses: Iterable[IPv4Address]) -> None:
        """Serve these routers (at start, and after a reload added or removed some)."""
        self._drivers = {driver.router.config.vrid: driver for driver in drivers}
        self.policy = ReceivePolicy(
            vrids={vrid: d.router.receive_policy() for vrid, d in self._drivers.items()},
            own_addresses=frozenset(own_addresses),
        )

    def start(self) -> None:
        self._loop.add_reader(self._sock.fileno(), self.read_batch)
        self._reading = True

    def stop(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False
        self.rejects.close()
        self.read_errors.close()

    def read_batch(self) -> int:
        """The reader callback: handle up to :data:`RECEIVE_BATCH` datagrams; return how many.

        Stopping after a batch returns control to the loop, which runs due timers before
        it calls us again for the rest of a flood.
        """
        for handled in range(RECEIVE_BATCH):
            try:
                datagram = self._sock.recv(RECEIVE_BUFFER)
            except BlockingIOError:
                return handled
            except OSError as exc:
                self.read_errors.record(exc.strerror or type(exc).__name__)
                return handled
            self.datagram_received(datagram)
        return RECEIVE_BATCH

    def datagram_received(self, datagram: bytes) -> None:
        """Classify one full IPv4 datagram; count a reject or deliver the advert."""
        verdict = classify(datagram, self.policy)
        if isinstance(verdict, Advertisement):
            self.accepted += 1
            self._drivers[verdict.vrid].receive_advertisement(verdict)
            return
        reason = verdict.reason
        level = logging.DEBUG if reason in ROUTINE_REJECTS else logging.WARNING
        self.rejects.record(reason.value, level)
        if verdict.vrid is not None:
            self.rejects_by_vrid[verdict.vrid, reason.value] += 1
