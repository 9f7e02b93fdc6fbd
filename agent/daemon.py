"""The agent process: wire configuration, kernel and protocol core together.

Lifecycle of :func:`run`:

1. Resolve every configured interface (index, MAC, addresses). A missing interface is a
   clear error before anything is changed.
2. Startup cleanup: remove configured VIPs this node still holds. After a ``kill -9`` (or
   a crash) they stay in the kernel, and a backup holding a VIP would answer ARP for it
   next to the real master.
3. Open one raw VRRP socket and one GARP socket per interface, build one
   :class:`~agent.core.router.VirtualRouter` per instance, start receiving, start routers.
4. Run until SIGTERM or SIGINT, then shut every router down (RFC 9568 §6.4.3: a master
   sends a priority-0 advert and removes its VIPs), wait for netlink, close sockets,
   return 0. Further signals during the shutdown are logged and ignored, so an impatient
   second Ctrl-C cannot leave VIPs behind. SIGHUP is logged; reload is not implemented.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from functools import partial
from ipaddress import IPv4Interface

from agent.config import AgentConfig, InstanceConfig
from agent.core.router import VirtualRouter
from agent.host.driver import InterfaceReceiver, RouterDriver
from agent.host.garp import GarpSender
from agent.host.netlink import InterfaceInfo, Netlink
from agent.host.sockets import open_vrrp_socket, send_to_vrrp_group

log = logging.getLogger("agent")

#: How the agent receives adverts. The eBPF path (agent.host.bpf) will add a second value.
RECEIVE_PATH = "userspace"


async def run(config: AgentConfig) -> int:
    """Run the agent until SIGTERM/SIGINT, then return 0 after a clean shutdown.

    Problems found at startup (missing interface, missing capability, no IPv4 address)
    raise :class:`~agent.host.errors.HostError` after undoing whatever was already set
    up; the CLI prints them as ``error: <message>``. Logging is set up by the caller
    (:mod:`agent.cli`).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    _install_signal_handlers(loop, stop)
    try:
        async with Netlink() as netlink:
            agent = _Agent(config, loop, netlink)
            try:
                await agent.start()
                await stop.wait()
                log.info("shutting down")
            finally:
                await agent.stop()
    finally:
        # The VIPs are released and the process is about to exit: from here on a stray
        # SIGINT or SIGTERM must not turn a clean exit into a KeyboardInterrupt.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    log.info("stopped")
    return 0


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
        self._drivers: list[RouterDriver] = []
        self._receivers: list[InterfaceReceiver] = []
        self._closers: list[partial[None]] = []

    async def start(self) -> None:
        instances = self._config.instances
        by_interface: dict[str, list[InstanceConfig]] = {}
        for instance in instances:
            by_interface.setdefault(instance.interface, []).append(instance)
        infos = {name: await self._netlink.interface(name) for name in by_interface}
        for instance in instances:
            await self._remove_stale_vips(instance, infos[instance.interface])
        for ifname, group in by_interface.items():
            self._start_interface(infos[ifname], group)
        log.info("event loop: %s", type(self._loop).__module__.split(".")[0])
        log.info("receive path: %s", RECEIVE_PATH)
        for driver in self._drivers:
            driver.start()

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

    def _start_interface(self, info: InterfaceInfo, instances: Sequence[InstanceConfig]) -> None:
        vips: set[IPv4Interface] = {vip for instance in instances for vip in instance.vips}
        primary = info.primary_address(exclude=vips)
        sock = open_vrrp_socket(info.name, info.index, primary)
        self._closers.append(partial(sock.close))
        garp = GarpSender(info.name, info.mac)
        self._closers.append(partial(garp.close))
        drivers = []
        for instance in instances:
            router = VirtualRouter(instance.router_config(primary))
            drivers.append(
                RouterDriver(
                    router,
                    loop=self._loop,
                    ifname=info.name,
                    ifindex=info.index,
                    send_advert=partial(send_to_vrrp_group, sock),
                    send_garp=garp.send,
                    vips=self._netlink,
                )
            )
            log.info(
                "%s: VRRPv%d VRID %d priority %d on %s from %s, VIPs %s",
                instance.name,
                instance.version,
                instance.vrid,
                instance.priority,
                info.name,
                primary,
                ", ".join(map(str, instance.vips)),
            )
        own = {address.ip for address in info.addresses} - {vip.ip for vip in vips}
        receiver = InterfaceReceiver(
            loop=self._loop, ifname=info.name, sock=sock, drivers=drivers, own_addresses=own
        )
        receiver.start()
        self._receivers.append(receiver)
        self._drivers.extend(drivers)

    async def stop(self) -> None:
        """Stop receiving, release every router, wait for the kernel, close sockets."""
        for receiver in self._receivers:
            receiver.stop()
        await asyncio.gather(*(driver.shutdown() for driver in self._drivers))
        for close in reversed(self._closers):
            close()
