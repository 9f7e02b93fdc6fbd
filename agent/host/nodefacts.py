"""Look up the node facts :mod:`agent.ipfailover` needs: which interface, which address.

The OpenShift image runs ``ip addr show dev X`` for each candidate interface and
``ip route get 8.8.8.8`` (utils.sh ``get_network_device``), then takes the first ``inet``
address of ``ifconfig <dev>``. The same questions go to rtnetlink here; the choice itself
is :func:`agent.ipfailover.choose_interface`, pure and tested on its own.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from ipaddress import IPv4Interface
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.host.errors import HostError
from agent.host.netlink import Netlink
from agent.ipfailover import ROUTE_PROBE, NodeFacts, choose_interface


async def lookup_node(requested: str | None, vips: Iterable[IPv4Interface] = ()) -> NodeFacts:
    """The VRRP interface and this node's primary IPv4 address on it.

    ``requested`` is ``OPENSHIFT_HA_NETWORK_INTERFACE`` (None when unset). ``vips`` are
    left out when picking the address: after a crash the node may still hold one, and a
    VIP must never become the node's own address. Raises
    :class:`~agent.config.ConfigError` when no interface fits and
    :class:`~agent.host.errors.HostError` when netlink fails or the interface has no
    IPv4 address.
    """
    ipr = AsyncIPRoute()
    try:
        await ipr.setup_endpoint()
    except OSError as exc:
        raise HostError(f"cannot open a netlink socket: {exc.strerror}") from None
    try:
        names = {int(link["index"]): str(link.get("IFLA_IFNAME")) async for link in _dump(ipr)}
        route_interface = names.get(await _route_interface(ipr))
    finally:
        ipr.close()
    interface = choose_interface(requested, set(names.values()), route_interface)
    async with Netlink() as netlink:
        info = await netlink.interface(interface)
    return NodeFacts(interface=interface, address=info.primary_address(exclude=vips))


async def _dump(ipr: Any) -> Any:
    try:
        async for link in await ipr.link("dump"):
            yield link
    except NetlinkError as exc:
        raise HostError(f"cannot list the interfaces: {exc}") from None


async def _route_interface(ipr: Any) -> int:
    """Index of the interface the route to :data:`ROUTE_PROBE` leaves by; 0 if none."""
    try:
        result = await ipr.route("get", dst=str(ROUTE_PROBE))
    except NetlinkError as exc:
        if exc.code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return 0
        raise HostError(f"cannot look up the route to {ROUTE_PROBE}: {exc}") from None
    routes = [route async for route in result] if hasattr(result, "__aiter__") else list(result)
    return int(routes[0].get("RTA_OIF") or 0) if routes else 0
