"""A hand-written ``status()`` dict in the contract's shape (coord/contract.md, issue 5).

Shared by the metrics, control-socket and CLI tests: every value is distinct where it
can be, so that a test can tell which field ended up in which metric or column.
"""

from __future__ import annotations

import copy
from typing import Any

_STATUS: dict[str, Any] = {
    "agent": {
        "version": "0.1.0",
        "pid": 4242,
        "uptime_seconds": 3600.5,
        "event_loop": "uvloop",
        "receive_path": "ebpf-socket",
        "bpf_mode": "auto",
        "bpf_unavailable_reason": None,
    },
    "instances": [
        {
            "name": "VI_1",
            "interface": "eth0",
            "vrid": 51,
            "version": 3,
            "state": "MASTER",
            "base_priority": 150,
            "priority": 140,
            "preempt": True,
            "drained": False,
            "fault_causes": [],
            "advert_interval_seconds": 1.0,
            "vips": ["10.0.0.100/24", "10.0.0.101/32"],
            "primary_address": "10.0.0.1",
            "master": {"address": "10.0.0.1", "priority": 140, "last_advert_age_seconds": None},
            "counters": {
                "adverts_sent": 3590,
                "adverts_received": 12,
                "priority_zero_sent": 1,
                "priority_zero_received": 2,
                "garps_sent": 20,
                "transitions": 4,
            },
            "transitions": [
                {"from": "INITIALIZE", "to": "BACKUP", "cause": "startup", "count": 1},
                {"from": "BACKUP", "to": "MASTER", "cause": "master_down", "count": 2},
                {"from": "MASTER", "to": "BACKUP", "cause": "higher_priority", "count": 1},
            ],
            "last_transition": {
                "from": "BACKUP",
                "to": "MASTER",
                "reason": "no advert for 3.6 s (master down)",
                "age_seconds": 95.25,
            },
            "rejected_by_reason": {
                "bad_ttl": 3,
                "short_packet": 1,
                "bad_length": 2,
                "bad_type": 4,
                "interval_mismatch": 5,
                "auth_mismatch": 6,
                "bad_checksum": 7,
            },
        },
        {
            "name": "VI_2",
            "interface": "eth1",
            "vrid": 52,
            "version": 2,
            "state": "BACKUP",
            "base_priority": 100,
            "priority": 0,
            "preempt": False,
            "drained": True,
            "fault_causes": ["chk_http failed"],
            "advert_interval_seconds": 2.0,
            "vips": ["192.168.1.10/24"],
            "primary_address": "192.168.1.2",
            "master": {
                "address": "192.168.1.3",
                "priority": 200,
                "last_advert_age_seconds": 0.75,
            },
            "counters": {
                "adverts_sent": 0,
                "adverts_received": 1800,
                "priority_zero_sent": 0,
                "priority_zero_received": 0,
                "garps_sent": 0,
                "transitions": 1,
            },
            "transitions": [
                {"from": "INITIALIZE", "to": "BACKUP", "cause": "startup", "count": 1},
            ],
            "last_transition": None,
            "rejected_by_reason": {},
        },
    ],
    "sync_groups": [{"name": "G1", "state": "MASTER", "instances": ["VI_1"]}],
    "interfaces": [
        {"name": "eth0", "userspace_accepted": 12, "userspace_rejected": {"bad_ttl": 3}},
        {"name": "eth1", "userspace_accepted": 1800, "userspace_rejected": {}},
    ],
    "bpf": {
        "attach": "socket",
        "accepted": 5000,
        "absorbed": 4900,
        "dropped": {"bad_checksum": 9, "unknown_vrid": 11},
        "peers": [
            {
                "ifindex": 2,
                "vrid": 51,
                "master": "10.0.0.1",
                "priority": 140,
                "interval_cs": 100,
                "last_seen_age_seconds": 0.5,
                "count": 4900,
            }
        ],
    },
    "checks": [
        {
            "name": "chk_http",
            "kind": "script",
            "up": False,
            "runs": 100,
            "failures": 7,
            "timeouts": 2,
            "skipped": 1,
            "last_duration_seconds": 0.02,
            "last_exit": 1,
            "duration_buckets": {
                "le": [0.01, 0.1, 1.0],
                "counts": [60, 95, 98, 100],
                "sum": 4.5,
            },
        },
        {
            "name": "tcp_VI_1",
            "kind": "tcp",
            "up": True,
            "runs": 10,
            "failures": 0,
            "timeouts": 0,
            "skipped": 0,
            "last_duration_seconds": None,
            "last_exit": None,
            "duration_buckets": {"le": [0.01, 0.1, 1.0], "counts": [10, 10, 10, 10], "sum": 0.03},
        },
    ],
    "notify": {"calls": 8, "failures": 1, "timeouts": 2, "dropped": 3},
}


def status_example() -> dict[str, Any]:
    """A fresh deep copy, so that a test may change it."""
    return copy.deepcopy(_STATUS)
