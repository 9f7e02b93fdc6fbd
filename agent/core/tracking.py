"""Health tracking: rise/fall hysteresis and weights, turned into FAULT or a priority.

keepalived's semantics (keepalived.conf(5), "VRRP script(s)" and "track_interface"),
which our users' configurations assume:

* a tracked item with weight 0 that is down puts the instance in FAULT;
* a positive weight is added to the priority while the item is up;
* a negative weight is subtracted from it while the item is down;
* the result is clamped to 1..254, and priority 255 (the address owner) never moves,
  so tracking can neither demote an owner nor promote anybody to owner.

Check results arrive one by one; :class:`Hysteresis` turns ``rise`` consecutive
successes into "up" and ``fall`` consecutive failures into "down", so a single slow run
does not move a VIP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.core.constants import PRIORITY_OWNER

#: Bounds of a tracked priority (keepalived clamps the same way).
MIN_TRACKED_PRIORITY = 1
MAX_TRACKED_PRIORITY = 254


@dataclass(slots=True)
class Hysteresis:
    """Rise/fall counting for one tracked check.

    It starts up, as keepalived does without ``init_fail``: a node that has just started
    has no evidence of failure, and starting in FAULT would delay the first election by
    ``rise`` intervals.
    """

    rise: int = 1
    fall: int = 1
    up: bool = True
    _streak: int = 0

    def record(self, ok: bool) -> bool:
        """Add one result; return True when the up/down verdict changed."""
        if ok == self.up:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= (self.rise if ok else self.fall):
            self.up = ok
            self._streak = 0
            return True
        return False


@dataclass(frozen=True, slots=True)
class TrackedState:
    """One tracked item as the priority arithmetic sees it."""

    weight: int
    up: bool


def is_faulted(items: Iterable[TrackedState]) -> bool:
    """A down item with weight 0 faults the instance."""
    return any(item.weight == 0 and not item.up for item in items)


def effective_priority(base: int, items: Iterable[TrackedState]) -> int:
    """The priority to advertise, from the configured one and the weights."""
    if base == PRIORITY_OWNER:
        return base
    adjusted = base
    for item in items:
        # A positive weight counts while up, a negative one while down.
        if (item.weight > 0) == item.up and item.weight != 0:
            adjusted += item.weight
    return max(MIN_TRACKED_PRIORITY, min(MAX_TRACKED_PRIORITY, adjusted))
