"""A fake LAN of virtual routers on a fake clock, for deterministic state-machine tests.

Every advert a router sends is really encoded, wrapped in an IPv4 header and passed
through :func:`agent.core.packet.classify` for each other router, so the tests exercise
the codec and the state machine together, as the host does. Time only moves when a test
says so, and jumps exactly to the next deadline (aioquic's testing style).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from agent.core.packet import (
    Advertisement,
    ReceivePolicy,
    classify,
    encode_ipv4_datagram,
)
from agent.core.router import (
    AddVips,
    GarpSettings,
    RemoveVips,
    RouterConfig,
    SendAdvertisement,
    SendGratuitousArp,
    State,
    StateChanged,
    VirtualRouter,
)
from agent.core.syncgroup import GroupStateChanged, SyncGroup

VIP = IPv4Interface("10.0.0.100/24")


def make_config(
    address: str,
    priority: int,
    *,
    version: int = 3,
    interval_cs: int = 100,
    preempt: bool = True,
    preempt_delay: float = 0.0,
    garp: GarpSettings | None = None,
    vrid: int = 51,
) -> RouterConfig:
    """A router configuration with the test VIP; only what a test varies is a parameter."""
    return RouterConfig(
        name=f"r{address}",
        vrid=vrid,
        priority=priority,
        version=version,
        advert_interval_cs=interval_cs,
        vips=(VIP,),
        primary_address=IPv4Address(address),
        preempt=preempt,
        preempt_delay=preempt_delay,
        garp=garp or GarpSettings(),
    )


@dataclass
class Transition:
    """One state change seen on the LAN."""

    at: float
    router: str
    old: State
    new: State
    reason: str


@dataclass
class Delivery:
    """One advert that was on the wire."""

    at: float
    sender: str
    priority: int


@dataclass
class FakeLan:
    """Routers on one segment; a test drives them with :meth:`run_until`."""

    now: float = 0.0
    routers: dict[str, VirtualRouter] = field(default_factory=dict)
    #: Routers whose adverts are currently lost (unplugged cable, dead process).
    silenced: set[str] = field(default_factory=set)
    transitions: list[Transition] = field(default_factory=list)
    wire: list[Delivery] = field(default_factory=list)
    #: Which VIPs each router has configured, as the kernel would show them.
    vips: dict[str, set[IPv4Interface]] = field(default_factory=dict)
    garps: list[tuple[float, str, int]] = field(default_factory=list)
    groups: list[SyncGroup] = field(default_factory=list)
    group_changes: list[GroupStateChanged] = field(default_factory=list)

    def add_group(self, name: str, members: list[str]) -> SyncGroup:
        group = SyncGroup(name, [self.routers[member] for member in members])
        self.groups.append(group)
        return group

    def add(
        self, config: RouterConfig, *, start: bool = True, key: str | None = None
    ) -> VirtualRouter:
        """Add a router, known by its address unless ``key`` names it otherwise."""
        router = VirtualRouter(config)
        name = key or str(config.primary_address)
        self.routers[name] = router
        self.vips[name] = set()
        if start:
            self.start(name)
        return router

    def start(self, name: str) -> None:
        self.routers[name].start(self.now)
        self._flush(name)

    def shutdown(self, name: str) -> None:
        self.routers[name].shutdown(self.now)
        self._flush(name)

    def kill(self, name: str) -> None:
        """``kill -9``: the router vanishes without a word; its VIPs stay where they were."""
        del self.routers[name]

    def set_fault(self, name: str, faulted: bool, cause: str = "test check") -> None:
        self.routers[name].set_fault(cause, faulted, self.now)
        self._flush(name)

    def set_priority(self, name: str, priority: int) -> None:
        self.routers[name].set_priority(priority, self.now)
        self._flush(name)

    def set_drained(self, name: str, drained: bool) -> None:
        self.routers[name].set_drained(drained, self.now)
        self._flush(name)

    def advance(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, end: float) -> None:
        """Fire every deadline up to ``end`` in order, then leave the clock at ``end``."""
        if end < self.now:
            raise ValueError("the fake clock cannot go backwards")
        while True:
            due = [
                (deadline, name)
                for name, router in self.routers.items()
                if (deadline := router.next_deadline()) is not None and deadline <= end
            ]
            if not due:
                break
            deadline, name = min(due)
            self.now = max(self.now, deadline)
            self.routers[name].handle_timer(self.now)
            self._flush(name)
        self.now = end

    def run_until_state(self, name: str, state: State, limit: float) -> float:
        """Advance deadline by deadline until ``name`` reaches ``state``; return that time."""
        while self.routers[name].state is not state:
            deadlines = [d for r in self.routers.values() if (d := r.next_deadline()) is not None]
            if not deadlines or min(deadlines) > limit:
                raise AssertionError(f"{name} did not reach {state} by t={limit}")
            self.run_until(min(deadlines))
        return self.now

    def masters(self) -> list[str]:
        return [name for name, r in self.routers.items() if r.state is State.MASTER]

    def holders(self) -> list[str]:
        return [name for name, vips in self.vips.items() if vips]

    def inject(self, name: str, advert: Advertisement) -> None:
        """Deliver a hand-made advert to one router (a foreign peer on the LAN)."""
        self.routers[name].receive(advert, self.now)
        self._flush(name)

    def _flush(self, name: str) -> None:
        router = self.routers[name]
        for action in router.pop_actions():
            if isinstance(action, StateChanged):
                self.transitions.append(
                    Transition(self.now, name, action.old, action.new, action.reason)
                )
                self._follow_groups(router, action)
            elif isinstance(action, AddVips):
                self.vips[name] |= set(action.vips)
            elif isinstance(action, RemoveVips):
                self.vips[name] -= set(action.vips)
            elif isinstance(action, SendGratuitousArp):
                self.garps.append((self.now, name, action.count))
            elif isinstance(action, SendAdvertisement) and name not in self.silenced:
                self._deliver(router, action.priority)

    def _follow_groups(self, router: VirtualRouter, change: StateChanged) -> None:
        for group in self.groups:
            if router in group.members:
                group_change = group.member_changed(router, change, self.now)
                if group_change is not None:
                    self.group_changes.append(group_change)
                for other_name, other in list(self.routers.items()):
                    if other is not router and other in group.members:
                        self._flush(other_name)

    def _deliver(self, sender: VirtualRouter, priority: int) -> None:
        source = sender.config.primary_address
        self.wire.append(Delivery(self.now, str(source), priority))
        datagram = encode_ipv4_datagram(sender.encode_advertisement(priority), source=source)
        for name, receiver in list(self.routers.items()):
            if receiver is sender:
                continue
            policy = ReceivePolicy(
                vrids={receiver.config.vrid: receiver.receive_policy()},
                own_addresses=frozenset({receiver.config.primary_address}),
            )
            verdict = classify(datagram, policy)
            if isinstance(verdict, Advertisement):
                receiver.receive(verdict, self.now)
                self._flush(name)
