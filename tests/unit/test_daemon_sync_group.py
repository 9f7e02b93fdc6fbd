"""The runtime's sync-group wiring: which group transitions reach the notify dispatcher.

Real routers, drivers and :class:`~agent.core.syncgroup.SyncGroup` on a real event loop;
the kernel edges (adverts, VIPs, GARPs) and the notify dispatcher are recorders. The
end-to-end version is tests/netns/test_notify_sync.py.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from agent.config import parse_config
from agent.core.router import State, VirtualRouter
from agent.host.driver import RouterDriver
from agent.host.notify import Kind, NotifyState
from agent.runtime import Runtime

PRIMARY = IPv4Address("192.0.2.1")


class _Kernel:
    async def add_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        pass

    async def remove_vip(self, ifname: str, index: int, vip: IPv4Interface) -> None:
        pass


class _Interface:
    """Stands in for an InterfaceRuntime: only its routers matter here."""

    def __init__(self) -> None:
        self.drivers: dict[str, RouterDriver] = {}


class _Notify:
    def __init__(self) -> None:
        self.calls: list[tuple[Kind, str, NotifyState, int]] = []

    def enqueue(self, kind: Kind, name: str, state: NotifyState, priority: int) -> None:
        self.calls.append((kind, name, state, priority))


def _group_calls(notify: _Notify) -> list[NotifyState]:
    return [state for kind, _name, state, _prio in notify.calls if kind is Kind.GROUP]


def test_a_stopping_group_reports_only_stop_not_a_half_stopped_backup() -> None:
    """Regression: members shut down one after another, and the group looked BACKUP
    between the first and the last one, so a group notify script saw MASTER, BACKUP,
    STOP at every shutdown of a master. keepalived sends the group only STOP."""
    config = parse_config(
        {
            "instance": [
                {"name": f"VI_{n}", "interface": "eth0", "vrid": 50 + n, "vips": [f"192.0.2.{n}0"]}
                for n in (1, 2)
            ],
            "sync_group": [{"name": "G1", "instances": ["VI_1", "VI_2"]}],
        }
    )

    async def scenario() -> list[NotifyState]:
        loop = asyncio.get_running_loop()
        runtime = Runtime(config, loop, netlink=None)  # type: ignore[arg-type]
        notify = _Notify()
        runtime.notify = notify  # type: ignore[assignment]
        interface = _Interface()
        runtime.interfaces["eth0"] = interface  # type: ignore[assignment]
        sent: list[Any] = []
        drivers: list[RouterDriver] = []
        for instance in config.instances:
            driver = RouterDriver(
                VirtualRouter(instance.router_config(PRIMARY)),
                loop=loop,
                ifname="eth0",
                ifindex=2,
                send_advert=lambda *args: sent.append(args),
                send_garp=lambda vips, count: None,
                vips=_Kernel(),
            )
            driver.observers.append(runtime.on_state_change)
            interface.drivers[instance.name] = driver
            drivers.append(driver)
        runtime._build_sync_groups(config)
        for driver in drivers:
            driver.start()
        drivers[0].update(lambda now: drivers[0].router.force_state(State.MASTER, "test", now))
        assert {d.router.state for d in drivers} == {State.MASTER}
        runtime._stopping = True
        for driver in drivers:
            await driver.shutdown()
        return _group_calls(notify)

    assert asyncio.run(scenario()) == [NotifyState.BACKUP, NotifyState.MASTER, NotifyState.STOP]
