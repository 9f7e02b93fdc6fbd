"""Everything one run of the agent owns, and how it changes on a reload.

:class:`Runtime` wires configuration, kernel and protocol core together: per interface a
raw VRRP socket, a GARP sender and a receiver (:class:`InterfaceRuntime`); per instance a
:class:`~agent.host.driver.RouterDriver`; sync groups, health checks, notify dispatch
and the eBPF filter. :mod:`agent.daemon` runs it as a process.

Reload (:meth:`Runtime.reload`) is a diff by instance name. An instance whose
configuration, tracked scripts and sync group are all unchanged keeps its router: same
state, same VIPs, no transition, no gratuitous ARP. Removed instances are shut down as at
exit (a master hands over with priority 0 and removes its VIPs); added ones start as at
start-up; changed ones are both. Checks whose definition did not change keep their
verdicts. Settings of the process itself (``[global]`` except ``log_level``) need a
restart: a reload that changes them is refused as a whole and the running configuration
stays.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from ipaddress import IPv4Address
from typing import Any

from agent import __version__
from agent.config import AgentConfig, BpfAttach, BpfMode, InstanceConfig
from agent.core.packet import RejectReason
from agent.core.router import State, StateChanged, VirtualRouter
from agent.core.syncgroup import SyncGroup
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
from agent.log import LEVELS

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


class InterfaceRuntime:
    """One interface: its socket, GARP sender, receiver and the routers on it."""

    def __init__(self, runtime: Runtime, info: InterfaceInfo, primary: IPv4Address) -> None:
        self.runtime = runtime
        self.info = info
        self.primary = primary
        self.drivers: dict[str, RouterDriver] = {}
        self.sock = open_vrrp_socket(info.name, info.index, primary, join=False)
        self.garp = GarpSender(info.name, info.mac)
        self.receiver = InterfaceReceiver(
            loop=runtime.loop, ifname=info.name, sock=self.sock, drivers=(), own_addresses=()
        )
        self._tc_close: Callable[[], Awaitable[None]] | None = None

    @property
    def own_addresses(self) -> set[IPv4Address]:
        """This node's addresses on the interface, VIPs of every instance excluded."""
        vips = {vip.ip for driver in self.drivers.values() for vip in driver.router.config.vips}
        return {address.ip for address in self.info.addresses} - vips

    def add(self, instance: InstanceConfig) -> RouterDriver:
        """Build the router and driver of one instance (not started yet)."""
        runtime = self.runtime
        source, peers = _unicast_endpoints(instance, self.info, self.primary, self.own_addresses)
        router = VirtualRouter(replace(instance.router_config(source), unicast_peers=peers))
        driver = RouterDriver(
            router,
            loop=runtime.loop,
            ifname=self.info.name,
            ifindex=self.info.index,
            send_advert=partial(send_advert, self.sock, self.info.index, source),
            send_garp=self.garp.send,
            vips=runtime.netlink,
            kernel_peer=runtime.kernel_peer(self.info.index, instance.vrid),
        )
        driver.observers.append(runtime.on_state_change)
        self.drivers[instance.name] = driver
        log.info(
            "%s: VRRPv%d VRID %d priority %d on %s from %s to %s, VIPs %s",
            instance.name,
            instance.version,
            instance.vrid,
            instance.priority,
            self.info.name,
            source,
            ", ".join(map(str, router.advert_destinations)),
            ", ".join(map(str, instance.vips)),
        )
        return driver

    def refresh_policy(self) -> None:
        """Recompute what this interface accepts, in userspace and in the kernel."""
        self.receiver.update(self.drivers.values(), self.own_addresses)
        self.runtime.configure_filter(self)

    async def open(self) -> None:
        """Filter (eBPF) first, then join 224.0.0.18, then read: nothing unfiltered queues."""
        self.refresh_policy()
        bpf = self.runtime.filter
        if bpf is not None:
            if self.runtime.config.global_.bpf_attach is BpfAttach.TC:
                attachment = await self.runtime.netlink.call(bpf.attach_tc(self.info.name))
                self._tc_close = lambda: self.runtime.netlink.call(attachment.close())
            else:
                bpf.attach(self.sock)
        try:
            join_vrrp_group(self.sock, self.info.index)
        except OSError as error:
            raise HostError(f"{self.info.name}: cannot join 224.0.0.18: {error.strerror}") from None
        self.receiver.start()

    def stop_receiving(self) -> None:
        self.receiver.stop()
        log.info(
            "%s: userspace received %d advert(s), rejected %d datagram(s)",
            self.info.name,
            self.receiver.accepted,
            sum(self.receiver.rejects.totals.values()),
        )

    async def close(self) -> None:
        if self._tc_close is not None:
            await self._tc_close()
        if self.runtime.filter is not None:
            self.runtime.filter.forget_interface(self.info.index)
        self.garp.close()
        self.sock.close()


class Runtime:
    """Everything one run owns; :meth:`stop` undoes whatever :meth:`start` got to."""

    def __init__(
        self, config: AgentConfig, loop: asyncio.AbstractEventLoop, netlink: Netlink
    ) -> None:
        self.config = config
        self.loop = loop
        self.netlink = netlink
        self.interfaces: dict[str, InterfaceRuntime] = {}
        self.filter: VrrpFilter | None = None
        self.bpf_unavailable: str | None = None
        self.health: HealthTracker | None = None
        self.groups: list[SyncGroup] = []
        self.notify = NotifyDispatcher(
            config.notify_scripts(),
            fifo=NotifyFifo(config.global_.notify_fifo) if config.global_.notify_fifo else None,
        )
        self._kernel_drops: ThrottledLog | None = None
        self._events_fd: int | None = None
        self._stopping = False
        self._started_at = time.monotonic()

    @property
    def drivers(self) -> dict[str, RouterDriver]:
        """Every instance's driver, by instance name."""
        return {
            name: driver
            for interface in self.interfaces.values()
            for name, driver in interface.drivers.items()
        }

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        if become_subreaper():
            log.debug("adopting orphaned script processes (child subreaper)")
        await self._choose_receive_path({i.interface for i in self.config.instances})
        new = await self._add_instances(self.config.instances)
        self._build_sync_groups(self.config)
        await self._build_health(previous=None)
        await self.netlink.watch_links(self._link_changed)
        for driver in new:
            driver.start()
        assert self.health is not None
        self.health.start()

    async def _add_instances(self, instances: Iterable[InstanceConfig]) -> list[RouterDriver]:
        """Remove their stale VIPs, open their interfaces if new, build their drivers."""
        new: list[RouterDriver] = []
        touched: dict[str, InterfaceRuntime] = {}
        opened: list[InterfaceRuntime] = []
        for instance in instances:
            interface = self.interfaces.get(instance.interface)
            if interface is None:
                info = await self.netlink.interface(instance.interface)
                vips = {vip for other in self.config.instances for vip in other.vips}
                interface = InterfaceRuntime(self, info, info.primary_address(exclude=vips))
                self.interfaces[info.name] = interface
                opened.append(interface)
            await self._remove_stale_vips(instance, interface.info)
            new.append(interface.add(instance))
            touched[interface.info.name] = interface
        for interface in opened:
            await interface.open()
        for interface in touched.values():
            if interface not in opened:
                interface.refresh_policy()
        return new

    async def _remove_stale_vips(self, instance: InstanceConfig, info: InterfaceInfo) -> None:
        held = await self.netlink.present_vips(info.name, info.index, instance.vips)
        for vip in held:
            await self.netlink.remove_vip(info.name, info.index, vip)
        if held:
            log.warning(
                "%s: removed stale VIP(s) %s from %s (left behind by an earlier run)",
                instance.name,
                ", ".join(map(str, held)),
                info.name,
            )

    # -- receive path ---------------------------------------------------------------------

    async def _choose_receive_path(self, ifnames: set[str]) -> None:
        """Load the eBPF filter as ``[global] bpf`` asks, or explain the fallback."""
        settings = self.config.global_
        if settings.bpf is not BpfMode.OFF:
            try:
                # Compiling runs in a child process (about 0.3 s); keep it off the loop.
                self.filter = await asyncio.to_thread(load_filter)
            except BpfUnavailable as error:
                if settings.bpf is BpfMode.REQUIRED:
                    raise HostError(f'bpf = "required", but {error}') from None
                self.bpf_unavailable = f"{error.cause}: {error}"
                log.warning("eBPF filter unavailable (%s): %s", error.cause, error)
        if self.filter is None:
            reason = "bpf = off" if settings.bpf is BpfMode.OFF else "eBPF unavailable"
            log.info("receive path: userspace (%s)", reason)
            return
        self._kernel_drops = ThrottledLog(
            self.loop, "eBPF: dropped {count} datagram(s) since the last report: {key}"
        )
        self._report_kernel_drops({})
        self._events_fd = self.filter.open_events(self._on_peer_event)
        self.loop.add_reader(self._events_fd, self.filter.consume_events)
        if settings.bpf_attach is BpfAttach.TC:
            for ifname in sorted(ifnames):
                removed = await self.netlink.call(remove_stale_tc_filters(ifname))
                if removed:
                    log.warning("%s: removed %d stale eBPF tc filter(s) of ours", ifname, removed)
            log.info("receive path: userspace, with the eBPF tc ingress observer")
        else:
            log.info("receive path: eBPF socket filter, kernel-only (steady-state adverts "
                     "stay in the kernel)")  # fmt: skip

    @property
    def receive_path(self) -> str:
        """``userspace``, ``ebpf-socket`` or ``ebpf-tc``: for status and metrics."""
        if self.filter is None:
            return "userspace"
        return "ebpf-tc" if self.config.global_.bpf_attach is BpfAttach.TC else "ebpf-socket"

    def _report_kernel_drops(self, previous: dict[RejectReason, int]) -> None:
        """Log what the kernel dropped, as the userspace path logs its rejects."""
        if self.filter is None or self._kernel_drops is None or self._stopping:
            return
        counts = self.filter.drop_counts()
        for reason, count in counts.items():
            delta = count - previous.get(reason, 0)
            if delta > 0:
                level = logging.DEBUG if reason in ROUTINE_REJECTS else logging.WARNING
                self._kernel_drops.record(reason.value, level, delta)
        self.loop.call_later(KERNEL_DROPS_POLL, self._report_kernel_drops, counts)

    @property
    def kernel_only(self) -> bool:
        return self.filter is not None and self.config.global_.bpf_attach is BpfAttach.SOCKET

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

    def configure_filter(self, interface: InterfaceRuntime) -> None:
        """Tell the kernel our VRIDs, priorities and addresses on one interface."""
        if self.filter is None:
            return
        local = {
            driver.router.config.vrid: LocalRouter(
                priority=driver.router.priority,
                preempt=driver.router.config.preempt,
                kernel_only=self.kernel_only,
            )
            for driver in interface.drivers.values()
        }
        self.filter.configure_interface(interface.info.index, interface.receiver.policy, local)
        for driver in interface.drivers.values():
            self.filter.set_master(
                interface.info.index,
                driver.router.config.vrid,
                driver.router.state is State.MASTER,
            )

    def kernel_peer(self, ifindex: int, vrid: int) -> Callable[[], KernelPeer | None] | None:
        if not self.kernel_only:
            return None
        bpf = self.filter
        assert bpf is not None
        return partial(bpf.peer, ifindex, vrid)

    # -- sync groups, health, notify ------------------------------------------------------

    def _build_sync_groups(self, config: AgentConfig) -> None:
        drivers = self.drivers
        for group_config in config.sync_groups:
            members = [drivers[name] for name in group_config.instances]
            if any(self._group_of(driver) is not None for driver in members):
                continue  # unchanged group of kept instances: it is already wired
            group = SyncGroup(group_config.name, [driver.router for driver in members])
            self.groups.append(group)
            observer = partial(self._follow_group, group, members)
            for driver in members:
                driver.observers.append(observer)

    def _group_of(self, driver: RouterDriver) -> SyncGroup | None:
        return next((g for g in self.groups if driver.router in g.members), None)

    def _follow_group(
        self,
        group: SyncGroup,
        members: list[RouterDriver],
        driver: RouterDriver,
        change: StateChanged,
    ) -> None:
        group_change = group.member_changed(driver.router, change, self.loop.time())
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
            self.notify.enqueue(Kind.GROUP, group.name, state, 0)

    async def _build_health(self, previous: HealthTracker | None) -> None:
        infos = {name: interface.info for name, interface in self.interfaces.items()}
        link_states = {name: info.up for name, info in infos.items()}
        for name in tracked_interface_names(self.config.instances) - set(infos):
            try:
                link_states[name] = (await self.netlink.interface(name)).up
            except HostError as error:
                log.warning("tracked interface %s: %s; counted as down", name, error)
                link_states[name] = False
        primaries = {
            name: interface.primary
            for interface in self.interfaces.values()
            for name in interface.drivers
        }
        self.health = HealthTracker(
            self.config,
            self.drivers,
            primaries,
            link_states,
            on_priority=self._priority_changed,
            previous=previous,
        )
        self.health.apply_initial_state()

    def _link_changed(self, ifname: str, up: bool) -> None:
        if self.health is not None:
            self.health.link_changed(ifname, up)

    def _priority_changed(self, driver: RouterDriver) -> None:
        interface = self.interfaces.get(driver.ifname)
        if interface is not None:
            self.configure_filter(interface)

    def on_state_change(self, driver: RouterDriver, change: StateChanged) -> None:
        router = driver.router
        if self.filter is not None and change.new is not State.INITIALIZE:
            self.filter.set_master(driver.ifindex, router.config.vrid, change.new is State.MASTER)
        self.notify.enqueue(
            Kind.INSTANCE, router.config.name, _NOTIFY_STATES[change.new], router.priority
        )

    # -- operator commands ---------------------------------------------------------------

    def set_drained(self, name: str, drained: bool) -> str:
        """Drain (hand over with priority 0, stay backup) or undrain one instance."""
        driver = self.drivers.get(name)
        if driver is None:
            raise KeyError(name)
        driver.update(partial(driver.router.set_drained, drained))
        verb = "drained" if drained else "undrained"
        log.info("%s: %s by operator", name, verb)
        return f"{name}: {verb}; state {driver.router.state}"

    async def reload(self, new: AgentConfig) -> str:
        """Apply ``new`` (already validated); see the module docstring. Returns a summary.

        Raises :class:`ValueError` with the reason, before changing anything, when ``new``
        needs a restart or names an interface this host does not have.
        """
        old = self.config
        if replace(old.global_, log_level=new.global_.log_level) != new.global_:
            raise ValueError(
                "[global] settings other than log_level changed; restart the agent to apply"
            )
        logging.getLogger().setLevel(LEVELS[new.global_.log_level])
        old_instances = {instance.name: instance for instance in old.instances}
        new_instances = {instance.name: instance for instance in new.instances}
        kept = {
            name
            for name, instance in new_instances.items()
            if old_instances.get(name) == instance and _same_context(old, new, name)
        }
        # A sync group moves as one: keep its members only if all of them are kept.
        for group in new.sync_groups:
            if not set(group.instances) <= kept:
                kept -= set(group.instances)
        removed = [name for name in old_instances if name not in kept]
        added = [instance for name, instance in new_instances.items() if name not in kept]
        for ifname in {i.interface for i in added} - set(self.interfaces):
            try:
                await self.netlink.interface(ifname)
            except HostError as error:
                raise ValueError(str(error)) from None
        assert self.health is not None
        previous = self.health
        await previous.aclose()
        started: list[RouterDriver] = []
        try:
            for name in removed:
                await self._remove_instance(name)
            self.config = new
            self.notify.scripts = dict(new.notify_scripts())
            self.groups = [
                group
                for group in self.groups
                if all(member.config.name in kept for member in group.members)
            ]
            started = await self._add_instances(added)
            self._build_sync_groups(new)
        finally:
            # Whatever got applied keeps its health checks, even after a failure.
            await self._build_health(previous=previous)
            for driver in started:
                driver.start()
            self.health.start()
        for ifname in [name for name, i in self.interfaces.items() if not i.drivers]:
            interface = self.interfaces.pop(ifname)
            interface.stop_receiving()
            await interface.close()
        summary = (
            f"reloaded: {len(kept)} unchanged, {len(added)} started, {len(removed)} stopped "
            f"({', '.join(sorted(set(removed) | {a.name for a in added})) or 'none'})"
        )
        log.info("%s", summary)
        return summary

    async def _remove_instance(self, name: str) -> None:
        for interface in self.interfaces.values():
            driver = interface.drivers.pop(name, None)
            if driver is not None:
                await driver.shutdown()
                interface.refresh_policy()
                return

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Everything an operator asks about, as the status contract describes (README)."""
        now = self.loop.time()
        bpf = self.filter
        interfaces = [
            {
                "name": name,
                "userspace_accepted": interface.receiver.accepted,
                "userspace_rejected": dict(interface.receiver.rejects.totals),
            }
            for name, interface in self.interfaces.items()
        ]
        return {
            "agent": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime_seconds": time.monotonic() - self._started_at,
                "event_loop": type(self.loop).__module__.split(".")[0],
                "receive_path": self.receive_path,
                "bpf_mode": self.config.global_.bpf.value,
                "bpf_unavailable_reason": self.bpf_unavailable,
            },
            "instances": [
                _instance_status(interface, driver, now)
                for interface in self.interfaces.values()
                for driver in interface.drivers.values()
            ],
            "sync_groups": [
                {
                    "name": group.name,
                    "state": group.state.value,
                    "instances": [member.config.name for member in group.members],
                }
                for group in self.groups
            ],
            "interfaces": interfaces,
            "bpf": None if bpf is None else _bpf_status(bpf, self.config.global_.bpf_attach),
            "checks": [] if self.health is None else self.health.check_status(),
            "notify": {
                "calls": self.notify.counters.calls,
                "failures": self.notify.counters.failures,
                "timeouts": self.notify.counters.timeouts,
                "dropped": self.notify.counters.dropped,
            },
        }

    # -- shutdown -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving, release every router, wait for the kernel, close everything."""
        self._stopping = True
        for interface in self.interfaces.values():
            interface.stop_receiving()
        if self.filter is not None:
            log.info(
                "eBPF: accepted %d advert(s), %d of them kept in the kernel; dropped %d",
                self.filter.accepted_count(),
                self.filter.absorbed_count(),
                sum(self.filter.drop_counts().values()),
            )
        if self.health is not None:
            await self.health.aclose()
        await asyncio.gather(*(driver.shutdown() for driver in self.drivers.values()))
        await self.notify.aclose(limit=NOTIFY_SHUTDOWN_LIMIT)
        for interface in self.interfaces.values():
            await interface.close()
        if self._kernel_drops is not None:
            self._kernel_drops.close()
        if self._events_fd is not None:
            self.loop.remove_reader(self._events_fd)
        if self.filter is not None:
            self.filter.close()


def _same_context(old: AgentConfig, new: AgentConfig, name: str) -> bool:
    """Whether what surrounds an instance (its scripts and its sync group) is unchanged."""
    old_instance = next(i for i in old.instances if i.name == name)
    scripts = [tracked.name for tracked in old_instance.track_scripts]
    if [old.script(s) for s in scripts] != [new.script(s) for s in scripts]:
        return False
    return old.sync_group_of(name) == new.sync_group_of(name)


def _instance_status(
    interface: InterfaceRuntime, driver: RouterDriver, now: float
) -> dict[str, Any]:
    router = driver.router
    config = router.config
    master = None
    if router.master_address is not None:
        master = {
            "address": str(router.master_address),
            "priority": router.master_priority,
            "last_advert_age_seconds": (
                None if router.last_advert_at is None else max(0.0, now - router.last_advert_at)
            ),
        }
    last = None
    if driver.last_transition is not None:
        change, at = driver.last_transition
        last = {
            "from": change.old.value,
            "to": change.new.value,
            "reason": change.reason,
            "age_seconds": now - at,
        }
    stats = router.stats
    return {
        "name": config.name,
        "interface": interface.info.name,
        "vrid": config.vrid,
        "version": config.version,
        "state": router.state.value,
        "base_priority": config.priority,
        "priority": router.priority,
        "preempt": config.preempt,
        "drained": router.drained,
        "fault_causes": sorted(router.fault_causes),
        "advert_interval_seconds": config.advert_interval_cs / 100,
        "vips": [str(vip) for vip in config.vips],
        "primary_address": str(config.primary_address),
        "master": master,
        "counters": {
            "adverts_sent": stats.adverts_sent,
            "adverts_received": stats.adverts_received,
            "priority_zero_sent": stats.priority_zero_sent,
            "priority_zero_received": stats.priority_zero_received,
            "garps_sent": stats.garps_sent,
            "transitions": stats.transitions,
        },
        "transitions": [
            {"from": old.value, "to": new.value, "cause": cause.value, "count": count}
            for (old, new, cause), count in sorted(driver.transitions.items())
        ],
        "last_transition": last,
        "rejected_by_reason": {
            reason: count
            for (vrid, reason), count in interface.receiver.rejects_by_vrid.items()
            if vrid == config.vrid
        },
    }


def _bpf_status(bpf: VrrpFilter, attach: BpfAttach) -> dict[str, Any]:
    snapshot = bpf.snapshot()
    now = time.monotonic()
    return {
        "attach": attach.value,
        "accepted": snapshot.accepted,
        "absorbed": snapshot.absorbed,
        "dropped": {reason.value: count for reason, count in snapshot.drops.items()},
        "peers": [
            {
                "ifindex": peer.ifindex,
                "vrid": peer.vrid,
                "master": str(peer.master),
                "priority": peer.priority,
                "interval_cs": peer.interval_cs,
                "last_seen_age_seconds": max(0.0, now - peer.last_seen),
                "count": peer.count,
            }
            for peer in snapshot.peers
        ],
    }


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
