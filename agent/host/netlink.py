"""Interface lookups and VIP changes over rtnetlink (pyroute2 ``AsyncIPRoute``).

pyroute2 0.9's synchronous ``IPRoute`` drives an event loop of its own and raises inside a
running one (bpf.md §9), so the agent uses ``AsyncIPRoute`` only. VIP changes are
idempotent: after a crash, a restart or a lost race the kernel may already be in the
wanted state, and that is success, not an error.

``AsyncIPRoute`` runs on a standard-library event loop in a thread of its own, and the
agent's loop awaits its results. Two reasons: uvloop (the agent's loop when installed)
refuses pyroute2's ``AF_NETLINK`` datagram endpoint ("invalid family 16",
svinota/pyroute2#1335), and a slow netlink answer can then never delay an advert.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from types import TracebackType
from typing import Any, Self, TypeVar

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

from agent.host.errors import HostError

#: ``IFA_F_SECONDARY`` from ``<linux/if_addr.h>``: a further address in an already
#: covered subnet. The primary address is the first one without it.
IFA_F_SECONDARY = 0x01
#: ``IFF_UP`` and ``IFF_LOWER_UP`` from ``<linux/if.h>``: administratively up, and the
#: driver reports carrier. A link counts as up only with both.
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def link_is_up(flags: int) -> bool:
    """Up for VRRP: configured up and with carrier (a veth whose peer is down has none)."""
    return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """What the agent needs to know about one interface at startup."""

    name: str
    index: int
    #: Link-layer address: the sender MAC of our gratuitous ARPs.
    mac: bytes
    #: IPv4 addresses on the interface, each with its prefix, in kernel order.
    addresses: tuple[IPv4Interface, ...]
    #: Addresses not flagged secondary, in kernel order.
    primaries: tuple[IPv4Interface, ...]
    #: Whether the link is up with carrier (:func:`link_is_up`).
    up: bool = True

    def primary_address(self, exclude: Iterable[IPv4Interface] = ()) -> IPv4Address:
        """Our own address: the first primary that is not a VIP (a VIP may be a primary
        when it is outside every other subnet). Raises HostError when there is none."""
        excluded = {vip.ip for vip in exclude}
        for address in self.primaries:
            if address.ip not in excluded:
                return address.ip
        raise HostError(
            f"{self.name}: no IPv4 address (other than a VIP) to send adverts from; "
            f"add one, e.g. `ip address add 192.0.2.1/24 dev {self.name}`"
        )


_T = TypeVar("_T")


class _LoopThread:
    """A standard-library asyncio loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.SelectorEventLoop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the thread's loop and await its result from the caller's."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Netlink:
    """An rtnetlink session; use as ``async with Netlink() as netlink``."""

    def __init__(self) -> None:
        self._ipr: Any = None
        self._thread: _LoopThread | None = None
        self._link_watch: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._thread = _LoopThread("netlink")
        try:
            self._ipr = await self._thread.call(self._open())
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise
        return self

    @staticmethod
    async def _open() -> Any:
        try:
            ipr = AsyncIPRoute()
        except OSError as exc:
            raise HostError(f"cannot open a netlink socket: {exc.strerror}") from None
        try:
            await ipr.setup_endpoint()
        except OSError as exc:
            ipr.close()
            raise HostError(f"cannot open a netlink socket: {exc.strerror}") from None
        return ipr

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            if self._link_watch is not None:
                await self._thread.call(_cancel_and_wait(self._link_watch))
                self._link_watch = None
            ipr, self._ipr = self._ipr, None
            if ipr is not None:
                self._thread.loop.call_soon_threadsafe(ipr.close)
            self._thread.stop()
            self._thread = None

    async def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run any pyroute2 coroutine (e.g. the eBPF tc attachment) on the netlink thread,
        where pyroute2 works whatever the agent's own event loop is."""
        if self._thread is None:
            coroutine.close()
            raise RuntimeError("Netlink used outside its `async with` block")
        return await self._thread.call(coroutine)

    @property
    def _route(self) -> Any:
        if self._ipr is None:
            raise RuntimeError("Netlink used outside its `async with` block")
        return self._ipr

    async def interface(self, ifname: str) -> InterfaceInfo:
        """Index, MAC and IPv4 addresses of ``ifname``; HostError if it does not exist."""
        return await self.call(self._interface(ifname))

    async def _interface(self, ifname: str) -> InterfaceInfo:
        try:
            links = await self._route.link("get", ifname=ifname)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                raise HostError(f"{ifname}: no such interface") from None
            raise _error(f"{ifname}: cannot look up the interface", exc) from None
        link = links[0]
        index = int(link["index"])
        mac_text = link.get("IFLA_ADDRESS") or "00:00:00:00:00:00"
        addresses: list[IPv4Interface] = []
        primaries: list[IPv4Interface] = []
        for address in await self._ipv4_addresses(ifname, index):
            addresses.append(address[0])
            if not address[1] & IFA_F_SECONDARY:
                primaries.append(address[0])
        return InterfaceInfo(
            name=ifname,
            index=index,
            mac=bytes.fromhex(mac_text.replace(":", "")),
            addresses=tuple(addresses),
            primaries=tuple(primaries),
            up=link_is_up(int(link["flags"])),
        )

    async def _ipv4_addresses(self, ifname: str, index: int) -> list[tuple[IPv4Interface, int]]:
        try:
            dump = await self._route.addr("dump", index=index, family=socket.AF_INET)
            return [
                (
                    IPv4Interface(f"{message.get('IFA_ADDRESS')}/{message['prefixlen']}"),
                    int(message.get("IFA_FLAGS") or message["flags"]),
                )
                async for message in dump
                if message["index"] == index and message["family"] == socket.AF_INET
            ]
        except NetlinkError as exc:
            raise _error(f"{ifname}: cannot list addresses", exc) from None

    async def add_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        """Add ``vip`` to the interface; already present is success."""
        return await self.call(self._add_vip(ifname, index, vip))

    async def _add_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        try:
            await self._route.addr(
                "add", index=index, address=str(vip.ip), prefixlen=vip.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _error(f"{ifname}: cannot add VIP {vip}", exc) from None

    async def remove_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        """Remove ``vip`` from the interface; already absent is success."""
        return await self.call(self._remove_vip(ifname, index, vip))

    async def _remove_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        try:
            await self._route.addr(
                "del", index=index, address=str(vip.ip), prefixlen=vip.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT):
                raise _error(f"{ifname}: cannot remove VIP {vip}", exc) from None

    async def present_vips(
        self, ifname: str, index: int, vips: Iterable[IPv4Interface]
    ) -> tuple[IPv4Interface, ...]:
        """Which of ``vips`` the interface holds now (same address and prefix length)."""
        return await self.call(self._present_vips(ifname, index, tuple(vips)))

    async def _present_vips(
        self, ifname: str, index: int, vips: tuple[IPv4Interface, ...]
    ) -> tuple[IPv4Interface, ...]:
        held = {address for address, _flags in await self._ipv4_addresses(ifname, index)}
        return tuple(vip for vip in vips if vip in held)

    async def watch_links(self, on_change: Callable[[str, bool], None]) -> None:
        """Report every link going up or down as ``on_change(ifname, up)``.

        Kernel link events (RTMGRP_LINK), not polling: a pulled cable is seen within
        milliseconds. The callback runs on the caller's event loop.
        """
        caller = asyncio.get_running_loop()
        await self.call(self._start_link_watch(caller, on_change))

    async def _start_link_watch(
        self, caller: asyncio.AbstractEventLoop, on_change: Callable[[str, bool], None]
    ) -> None:
        events = AsyncIPRoute()
        try:
            await events.bind(groups=RTMGRP_LINK)
        except OSError as exc:
            events.close()
            raise HostError(f"cannot subscribe to link events: {exc.strerror}") from None
        self._link_watch = asyncio.create_task(self._forward_link_events(events, caller, on_change))

    @staticmethod
    async def _forward_link_events(
        events: Any, caller: asyncio.AbstractEventLoop, on_change: Callable[[str, bool], None]
    ) -> None:
        try:
            while True:
                async for message in events.get():
                    kind = message.get("event")
                    if kind not in ("RTM_NEWLINK", "RTM_DELLINK"):
                        continue
                    up = kind == "RTM_NEWLINK" and link_is_up(int(message["flags"]))
                    caller.call_soon_threadsafe(on_change, message.get("IFLA_IFNAME"), up)
        finally:
            events.close()


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})


def _error(what: str, exc: NetlinkError) -> HostError:
    """A HostError whose message says what failed and why, in words."""
    code = exc.code if isinstance(exc.code, int) else 0
    reason = f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"
    if code == errno.EPERM:
        reason += "; the agent needs the CAP_NET_ADMIN capability"
    return HostError(f"{what}: {reason}")
