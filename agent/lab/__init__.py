"""Network-namespace lab: build a segment, run agents and keepalived on it, break things.

Used by ``tests/netns``, ``bench/failover.py`` and ``python -m agent.lab demo``.
"""

from agent.lab.netns import (
    AddressEvent,
    AddressMonitor,
    Capture,
    Lab,
    LabError,
    Node,
    Proc,
    sweep_stale,
    wait_for,
)

__all__ = [
    "AddressEvent",
    "AddressMonitor",
    "Capture",
    "Lab",
    "LabError",
    "Node",
    "Proc",
    "sweep_stale",
    "wait_for",
]
