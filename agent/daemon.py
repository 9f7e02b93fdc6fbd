"""The agent process: wire configuration, kernel and protocol core together.

Lifecycle of :func:`run`:

1. Resolve every configured interface (index, MAC, addresses, link state). A missing
   interface is a clear error before anything is changed.
2. Startup cleanup: remove configured VIPs this node still holds. After a ``kill -9`` (or
   a crash) they stay in the kernel, and a backup holding a VIP would answer ARP for it
   next to the real master.
3. Choose the receive path (``[global] bpf``): load the eBPF filter in a short-lived child
   process, or fall back to plain userspace receive with one log line saying why.
4. Open one raw VRRP socket and one GARP socket per interface, build one
   :class:`~agent.core.router.VirtualRouter` per instance, sync groups, health checks and
   notify dispatch; start receiving, then start the routers.
5. Run until SIGTERM or SIGINT, then shut every router down (RFC 9568 §6.4.3: a master
   sends a priority-0 advert and removes its VIPs), run the STOP notifications, wait for
   netlink, stop the checks, close sockets and eBPF attachments, return 0. Further
   signals during the shutdown are logged and ignored, so an impatient second Ctrl-C
   cannot leave VIPs behind. SIGHUP is logged; reload is not implemented yet.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from ipaddress import IPv4Address, IPv4Interface

from agent.config import AgentConfig, BpfAttach, BpfMode, InstanceConfig
from agent.core.packet import ReceivePolicy, RejectReason
from agent.core.router import State, StateChanged, VirtualRouter
from agent.core.syncgroup import SyncGroup
from agent.host import sdnotify
from agent.host.bpf import BpfUnavailable, LocalRouter, PeerEvent, VrrpFilter, load_filter
from agent.host.bpf import remove_stale_filters as remove_stale_tc_filters
from agent.host.driver import (
    ROUTINE_REJECTS,
    InterfaceReceiver,
    KernelPeer,
    RouterDriver,
    ThrottledLog,
)
from agent.host.errors import HostError
from agent.host.garp import GarpSender
from agent.host.health import HealthTracker, tracked_interface_names
from agent.host.netlink import InterfaceInfo, Netlink
from agent.host.notify import Kind, NotifyDispatcher, NotifyFifo, NotifyState
from agent.host.scripts import become_subreaper
from agent.host.sockets import join_vrrp_group, open_vrrp_socket, send_advert

log = logging.getLogger("agent")

#: How long the shutdown waits for queued notify calls before killing them.
NOTIFY_SHUTDOWN_LIMIT = 15.0
#: Seconds between reads of the eBPF drop counters for the (rate-limited) drop log.
KERNEL_DROPS_POLL = 1.0

_NOTIFY_STATES = {
    State.MASTER: NotifyState.MASTER,
    State.BACKUP: NotifyState.BACKUP,
    State.FAULT: NotifyState.FAULT,
    State.INITIALIZE: NotifyState.STOP,
}


async def run(config: AgentConfig) -> int:
    """Run the agent until SIGTERM/SIGINT, then return 0 after a clean shutdown.

    Problems found at startup (missing interface, missing capability, no IPv4 address,
    ``bpf = "required"`` without a usable eBPF filter) raise
    :class:`~agent.host.errors.HostError` after undoing whatever was already set up;
    the CLI prints them as ``error: <message>``. Logging is set up by the caller.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    watchdog: _Watchdog | None = None
    _install_signal_handlers(loop, stop)
    try:
        async with Netlink() as netlink:
            agent = _Agent(config, loop, netlink)
            try:
                await agent.start()
                sdnotify.notify(
                    f"{sdnotify.READY}\nSTATUS={len(config.instances)} virtual router(s) running"
                )
                period = sdnotify.watchdog_period()
                watchdog = _Watchdog(loop, period) if period is not None else None
                await stop.wait()
                sdnotify.notify(sdnotify.STOPPING)
                log.info("shutting down")
            finally:
                await agent.stop()
        if watchdog is not None:
            watchdog.cancel()
    finally:
        # The VIPs are released and the process is about to exit: from here on a stray
        # SIGINT or SIGTERM must not turn a clean exit into a KeyboardInterrupt.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    log.info("stopped")
    return 0


def _unicast_endpoints(
    instance: InstanceConfig,
    info: InterfaceInfo,
    primary: IPv4Address,
    own: set[IPv4Address],
) -> tuple[IPv4Address, tuple[IPv4Address, ...]]:
    """The advert source and the unicast peers of one instance on this node.

    The source is ``unicast_src`` (which must be an address of the interface, so the
    kernel can send from it) or the primary address. The node's own addresses are left
    out of the peers, so that one peer list can serve every node, as OpenShift's
    ``OPENSHIFT_HA_UNICAST_PEERS`` does; a list of nothing but our own addresses would
    turn unicast into multicast, so it is an error.
    """
    source = primary
    if instance.unicast_src is not None:
        if instance.unicast_src not in own:
            raise HostError(
                f"{instance.name}: unicast_src {instance.unicast_src} is not an address of "
                f"{info.name} (it has {', '.join(map(str, sorted(own))) or 'none'})"
            )
        source = instance.unicast_src
    peers = tuple(peer for peer in instance.unicast_peers if peer not in own)
    if instance.unicast_peers and not peers:
        raise HostError(
            f"{instance.name}: every unicast peer is an address of this node on "
            f"{info.name}; list the other nodes' addresses"
        )
    skipped = [peer for peer in instance.unicast_peers if peer in own]
    if skipped:
        log.info(
            "%s: unicast peer(s) %s left out: this node's own address(es)",
            instance.name,
            ", ".join(map(str, skipped)),
        )
    return source, peers


class _Watchdog:
    """Pings systemd's watchdog from the event loop itself (``WatchdogSec=``): a stuck
    loop stops the pings, and systemd restarts the agent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = loop
        self._period = period
        self._handle: asyncio.TimerHandle | None = None
        self._ping()

    def _ping(self) -> None:
        sdnotify.notify(sdnotify.WATCHDOG)
        self._handle = self._loop.call_later(self._period, self._ping)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def on_stop(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s: shutdown already in progress", signum.name)
        else:
            log.info("%s received", signum.name)
            stop.set()

    def on_hup() -> None:
        log.warning("SIGHUP: reload not supported yet; restart the agent to apply changes")

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hup)


class _Agent:
    """Everything one run owns; :meth:`stop` undoes whatever :meth:`start` got to."""

    def __init__(
        self, config: AgentConfig, loop: asyncio.AbstractEventLoop, netlink: Netlink
    ) -> None:
        self._config = config
        self._loop = loop
        self._netlink = netlink
        self._drivers: dict[str, RouterDriver] = {}
        self._receivers: list[InterfaceReceiver] = []
        self._closers: list[Callable[[], object]] = []
        self._async_closers: list[Callable[[], Awaitable[None]]] = []
        self._filter: VrrpFilter | None = None
        self._health: HealthTracker | None = None
        self._notify = NotifyDispatcher(
            config.notify_scripts(),
            fifo=NotifyFifo(config.global_.notify_fifo) if config.global_.notify_fifo else None,
        )
        self._primaries: dict[str, IPv4Address] = {}
        self._stopping = False

    async def start(self) -> None:
        if become_subreaper():
            log.debug("adopting orphaned script processes (child subreaper)")
        instances = self._config.instances
        by_interface: dict[str, list[InstanceConfig]] = {}
        for instance in instances:
            by_interface.setdefault(instance.interface, []).append(instance)
        infos = {name: await self._netlink.interface(name) for name in by_interface}
        for instance in instances:
            await self._remove_stale_vips(instance, infos[instance.interface])
        await self._choose_receive_path(by_interface)
        for ifname, group in by_interface.items():
            await self._start_interface(infos[ifname], group)
        self._start_sync_groups()
        await self._start_health(infos)
        for driver in self._drivers.values():
            driver.start()
        if self._health is not None:
            self._health.start()

    async def _remove_stale_vips(self, instance: InstanceConfig, info: InterfaceInfo) -> None:
        held = await self._netlink.present_vips(info.name, info.index, instance.vips)
        for vip in held:
            await self._netlink.remove_vip(info.name, info.index, vip)
        if held:
            log.warning(
                "%s: removed stale VIP(s) %s from %s (left behind by an earlier run)",
                instance.name,
                ", ".join(map(str, held)),
                info.name,
            )

    # -- receive path ---------------------------------------------------------------------

    async def _choose_receive_path(self, by_interface: dict[str, list[InstanceConfig]]) -> None:
        """Load the eBPF filter as ``[global] bpf`` asks, or explain the fallback."""
        settings = self._config.global_
        if settings.bpf is not BpfMode.OFF:
            try:
                # Compiling runs in a child process (about 0.3 s); keep it off the loop.
                self._filter = await asyncio.to_thread(load_filter)
            except BpfUnavailable as error:
                if settings.bpf is BpfMode.REQUIRED:
                    raise HostError(f'bpf = "required", but {error}') from None
                log.warning("eBPF filter unavailable (%s): %s", error.cause, error)
        if self._filter is None:
            reason = "bpf = off" if settings.bpf is BpfMode.OFF else "eBPF unavailable"
            log.info("receive path: userspace (%s)", reason)
            return
        self._closers.append(self._filter.close)
        self._kernel_drops = ThrottledLog(
            self._loop, "eBPF: dropped {count} datagram(s) since the last report: {key}"
        )
        self._closers.append(self._kernel_drops.close)
        self._report_kernel_drops({})
        events_fd = self._filter.open_events(self._on_peer_event)
        self._loop.add_reader(events_fd, self._filter.consume_events)
        self._closers.append(partial(self._loop.remove_reader, events_fd))
        if settings.bpf_attach is BpfAttach.TC:
            for ifname in by_interface:
                removed = await self._netlink.call(remove_stale_tc_filters(ifname))
                if removed:
                    log.warning("%s: removed %d stale eBPF tc filter(s) of ours", ifname, removed)
            log.info("receive path: userspace, with the eBPF tc ingress observer")
        else:
            log.info("receive path: eBPF socket filter, kernel-only (steady-state adverts "
                     "stay in the kernel)")  # fmt: skip

    def _report_kernel_drops(self, previous: dict[RejectReason, int]) -> None:
        """Log what the kernel dropped, as the userspace path logs its rejects."""
        if self._filter is None or self._stopping:
            return
        counts = self._filter.drop_counts()
        for reason, count in counts.items():
            delta = count - previous.get(reason, 0)
            if delta > 0:
                level = logging.DEBUG if reason in ROUTINE_REJECTS else logging.WARNING
                self._kernel_drops.record(reason.value, level, delta)
        self._loop.call_later(KERNEL_DROPS_POLL, self._report_kernel_drops, counts)

    @property
    def _kernel_only(self) -> bool:
        return self._filter is not None and self._config.global_.bpf_attach is BpfAttach.SOCKET

    def _on_peer_event(self, event: PeerEvent) -> None:
        log.debug(
            "eBPF: VRID %d on ifindex %d: %s from %s (priority %d, interval %d cs)",
            event.vrid,
            event.ifindex,
            event.what,
            event.source,
            event.priority,
            event.interval_cs,
        )

    def _configure_filter(self, ifindex: int, policy: ReceivePolicy) -> None:
        """Tell the kernel our VRIDs, priorities and addresses on one interface."""
        assert self._filter is not None
        local = {
            driver.router.config.vrid: LocalRouter(
                priority=driver.router.priority,
                preempt=driver.router.config.preempt,
                kernel_only=self._kernel_only,
            )
            for driver in self._drivers.values()
            if driver.ifindex == ifindex
        }
        self._filter.configure_interface(ifindex, policy, local)

    # -- interfaces and routers ---------------------------------------------------------

    async def _start_interface(
        self, info: InterfaceInfo, instances: Sequence[InstanceConfig]
    ) -> None:
        vips: set[IPv4Interface] = {vip for instance in instances for vip in instance.vips}
        primary = info.primary_address(exclude=vips)
        sock = open_vrrp_socket(info.name, info.index, primary, join=False)
        self._closers.append(sock.close)
        garp = GarpSender(info.name, info.mac)
        self._closers.append(garp.close)
        own = {address.ip for address in info.addresses} - {vip.ip for vip in vips}
        drivers = []
        for instance in instances:
            source, peers = _unicast_endpoints(instance, info, primary, own)
            router = VirtualRouter(replace(instance.router_config(source), unicast_peers=peers))
            driver = RouterDriver(
                router,
                loop=self._loop,
                ifname=info.name,
                ifindex=info.index,
                send_advert=partial(send_advert, sock, info.index, source),
                send_garp=garp.send,
                vips=self._netlink,
                kernel_peer=self._kernel_peer(info.index, instance.vrid),
            )
            driver.observers.append(self._on_state_change)
            drivers.append(driver)
            self._drivers[instance.name] = driver
            self._primaries[instance.name] = primary
            log.info(
                "%s: VRRPv%d VRID %d priority %d on %s from %s to %s, VIPs %s",
                instance.name,
                instance.version,
                instance.vrid,
                instance.priority,
                info.name,
                source,
                ", ".join(map(str, router.advert_destinations)),
                ", ".join(map(str, instance.vips)),
            )
        receiver = InterfaceReceiver(
            loop=self._loop, ifname=info.name, sock=sock, drivers=drivers, own_addresses=own
        )
        await self._attach_filter(info, sock, receiver.policy)
        try:
            join_vrrp_group(sock, info.index)
        except OSError as error:
            raise HostError(f"{info.name}: cannot join 224.0.0.18: {error.strerror}") from None
        receiver.start()
        self._receivers.append(receiver)

    async def _attach_filter(
        self, info: InterfaceInfo, sock: socket.socket, policy: ReceivePolicy
    ) -> None:
        if self._filter is None:
            return
        self._configure_filter(info.index, policy)
        if self._config.global_.bpf_attach is BpfAttach.TC:
            attachment = await self._netlink.call(self._filter.attach_tc(info.name))
            self._async_closers.append(lambda: self._netlink.call(attachment.close()))
        else:
            self._filter.attach(sock)

    def _kernel_peer(self, ifindex: int, vrid: int) -> Callable[[], KernelPeer | None] | None:
        if not self._kernel_only:
            return None
        bpf = self._filter
        assert bpf is not None
        return partial(bpf.peer, ifindex, vrid)

    # -- sync groups, health, notify ------------------------------------------------------

    def _start_sync_groups(self) -> None:
        for group_config in self._config.sync_groups:
            members = [self._drivers[name] for name in group_config.instances]
            group = SyncGroup(group_config.name, [driver.router for driver in members])
            observer = partial(self._follow_group, group, members)
            for driver in members:
                driver.observers.append(observer)

    def _follow_group(
        self,
        group: SyncGroup,
        members: list[RouterDriver],
        driver: RouterDriver,
        change: StateChanged,
    ) -> None:
        group_change = group.member_changed(driver.router, change, self._loop.time())
        for other in members:
            if other is not driver:
                # The group fed the other members inputs: run their actions now.
                other.update(lambda now: None)
        if self._stopping and group_change is not None and group_change.new is not State.INITIALIZE:
            # Members stop one after another: a group that is half stopped looks BACKUP
            # for an instant, which is no transition to report. keepalived too sends the
            # group only STOP at shutdown (vrrp_notify.c notify_shutdown).
            group_change = None
        if group_change is not None:
            log.info("sync group %s: %s -> %s", group.name, group_change.old, group_change.new)
            state = _NOTIFY_STATES[group_change.new]
            self._notify.enqueue(Kind.GROUP, group.name, state, 0)

    async def _start_health(self, infos: dict[str, InterfaceInfo]) -> None:
        link_states = {name: info.up for name, info in infos.items()}
        for name in tracked_interface_names(self._config.instances) - set(infos):
            try:
                link_states[name] = (await self._netlink.interface(name)).up
            except HostError as error:
                log.warning("tracked interface %s: %s; counted as down", name, error)
                link_states[name] = False
        self._health = HealthTracker(
            self._config,
            self._drivers,
            self._primaries,
            link_states,
            on_priority=self._priority_changed,
        )
        self._health.apply_initial_state()
        await self._netlink.watch_links(self._health.link_changed)

    def _priority_changed(self, driver: RouterDriver) -> None:
        if self._filter is None:
            return
        for receiver in self._receivers:
            if receiver.ifname == driver.ifname:
                self._configure_filter(driver.ifindex, receiver.policy)

    def _on_state_change(self, driver: RouterDriver, change: StateChanged) -> None:
        router = driver.router
        if self._filter is not None:
            self._filter.set_master(driver.ifindex, router.config.vrid, change.new is State.MASTER)
        self._notify.enqueue(
            Kind.INSTANCE, router.config.name, _NOTIFY_STATES[change.new], router.priority
        )

    # -- shutdown -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving, release every router, wait for the kernel, close everything."""
        self._stopping = True
        for receiver in self._receivers:
            receiver.stop()
            log.info(
                "%s: userspace received %d advert(s), rejected %d datagram(s)",
                receiver.ifname,
                receiver.accepted,
                sum(receiver.rejects.totals.values()),
            )
        if self._filter is not None:
            log.info(
                "eBPF: accepted %d advert(s), %d of them kept in the kernel; dropped %d",
                self._filter.accepted_count(),
                self._filter.absorbed_count(),
                sum(self._filter.drop_counts().values()),
            )
        if self._health is not None:
            await self._health.aclose()
        await asyncio.gather(*(driver.shutdown() for driver in self._drivers.values()))
        await self._notify.aclose(limit=NOTIFY_SHUTDOWN_LIMIT)
        for close_async in reversed(self._async_closers):
            await close_async()
        for close in reversed(self._closers):
            close()
