"""Sync groups: virtual routers that change state together (keepalived's vrrp_sync_group).

A typical use is a router with one VIP on the inside and one on the outside network: if
only one of them moved, traffic would enter one node and leave through another. keepalived
semantics, which our users' configurations assume (keepalived.conf(5), "VRRP
synchronization group(s)"):

* a member that goes FAULT takes every other member to FAULT, until it recovers;
* a member that becomes MASTER takes the others to MASTER;
* a member that drops from MASTER to BACKUP takes the others to BACKUP.

Like the router, this is pure: the host reports each member's :class:`StateChanged` to
:meth:`SyncGroup.member_changed`, which calls into the other members; the host then
drains their actions as for any other input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.core.router import State, StateChanged, VirtualRouter


@dataclass(frozen=True, slots=True)
class GroupStateChanged:
    """The group as a whole changed state (for GROUP notifications)."""

    group: str
    old: State
    new: State


class SyncGroup:
    """A set of routers that move together. See the module docstring."""

    def __init__(self, name: str, members: Sequence[VirtualRouter]) -> None:
        self.name = name
        self.members = tuple(members)
        self.state = self._aggregate_state()

    @property
    def fault_cause(self) -> str:
        """The fault cause this group raises on members that follow a faulted peer."""
        return f"sync group {self.name}"

    def member_changed(
        self, member: VirtualRouter, change: StateChanged, now: float
    ) -> GroupStateChanged | None:
        """Make the other members follow ``member``; report a change of the group state."""
        others = [router for router in self.members if router is not member]
        own_fault = any(self._own_faults(router) for router in self.members)
        if change.new is State.FAULT and self._own_faults(member):
            for router in others:
                if self.fault_cause not in router.fault_causes:
                    router.set_fault(self.fault_cause, True, now)
        elif change.old is State.FAULT and not own_fault:
            for router in others:
                router.set_fault(self.fault_cause, False, now)
        elif change.new is State.MASTER:
            reason = f"sync group {self.name}: {member.config.name} became MASTER"
            for router in others:
                router.force_state(State.MASTER, reason, now)
        elif change.old is State.MASTER and change.new is State.BACKUP:
            reason = f"sync group {self.name}: {member.config.name} became BACKUP"
            for router in others:
                router.force_state(State.BACKUP, reason, now)
        old, self.state = self.state, self._aggregate_state()
        return GroupStateChanged(self.name, old, self.state) if old is not self.state else None

    def _own_faults(self, router: VirtualRouter) -> frozenset[str]:
        return router.fault_causes - {self.fault_cause}

    def _aggregate_state(self) -> State:
        states = {router.state for router in self.members}
        if State.FAULT in states:
            return State.FAULT
        if states == {State.MASTER}:
            return State.MASTER
        if states == {State.INITIALIZE}:
            return State.INITIALIZE
        return State.BACKUP
