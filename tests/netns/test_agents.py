"""Agents against agents on a real bridge: election, crash failover, return, graceful handover.

Times are measured from real events: the instant a signal is sent and the kernel's
RTM_NEWADDR for the VIP on the new master, or capture timestamps on the wire. Bounds are the
RFC 9568 §6 timers (protocol.md §5) plus a scheduling margin sized for a busy two-core machine,
and each margin stays below the quantity it must tell apart (e.g. a graceful handover must
be faster than the crash path, or the priority-0 advert did nothing).

Every test runs twice (the ``receive_path`` fixture, tests/conftest.py): with the eBPF socket
filter in kernel-only mode, where a backup times the master from the kernel's peer map and
steady-state adverts never reach userspace, and with BPF off. The assertions are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.lab import Lab
from agent.lab.pcap import dissection_problems, frames
from agent.lab.runners import (
    AgentSpeaker,
    Instance,
    master_down_interval,
    skew_time,
    start_agent,
)
from tests.conftest import ReceivePath

pytestmark = pytest.mark.netns

INTERVAL = 0.2
#: Allowed lateness on top of a protocol timer (wake-up, netlink, process scheduling).
MARGIN = 0.5


def _instance(lab: Lab, priority: int) -> Instance:
    return Instance(
        vrid=51, priority=priority, vips=(lab.vip(),), version=3, advert_interval=INTERVAL
    )


def _holders(lab: Lab) -> list[int]:
    return [node.index for node in lab.nodes if node.has_address(lab.vip())]


def _start(lab: Lab, priorities: tuple[int, ...], path: ReceivePath) -> list[AgentSpeaker]:
    """Start one agent per node, the highest priority first, and wait for the election."""
    agents = [
        start_agent(node, _instance(lab, p), global_options=path.options)
        for node, p in zip(lab.nodes, priorities, strict=False)
    ]
    agents[0].wait_state("MASTER", timeout=10)
    for agent in agents[1:]:
        agent.wait_state("BACKUP", timeout=10)
    path.check(*agents)
    return agents


def test_election_crash_failover_and_return(lab: Lab, receive_path: ReceivePath) -> None:
    vip = lab.vip().ip
    agents = _start(lab, (150, 100, 50), receive_path)
    # RFC 9568 §6.4.2: the highest priority wins, and only the master holds the VIP.
    assert _holders(lab) == [0]
    # Backups that accept the master's adverts stay backups for several master-down intervals
    # (an observation window: absence of a transition can only be watched for, not awaited).
    before = [a.states() for a in agents]
    time.sleep(3 * master_down_interval(_instance(lab, 50)))
    assert [a.states() for a in agents] == before

    # kill -9: no priority-0 advert; the best backup takes over after Master_Down_Interval.
    backup = _instance(lab, 100)
    killed = agents[0].kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=5) - killed
    assert took_over <= master_down_interval(backup) + MARGIN
    # It cannot be earlier than 2 intervals: the last advert left at most one interval before.
    assert took_over >= 2 * INTERVAL
    agents[1].wait_state("MASTER", timeout=1)
    assert agents[2].state() == "BACKUP"
    assert _holders(lab) == [0, 1], "the killed master's VIP stays behind (stale)"

    # Restart: the stale VIP goes at start-up, then priority 150 preempts (RFC 9568 §6.4.2).
    restarted = start_agent(lab[0], _instance(lab, 150), global_options=receive_path.options)
    removed = lab[0].wait_address(vip, added=False, since=restarted.proc.started_at, timeout=10)
    lab[0].wait_address(vip, since=removed, timeout=master_down_interval(backup) + 5)
    lab[1].wait_address(vip, added=False, since=removed, timeout=5)
    restarted.wait_state("MASTER", timeout=1)
    agents[1].wait_state("BACKUP", timeout=1)
    assert _holders(lab) == [0]


def test_graceful_handover_priority_zero_and_gratuitous_arp(
    make_lab: Callable[[int], Lab], receive_path: ReceivePath
) -> None:
    lab = make_lab(2)
    vip = lab.vip().ip
    backup = _instance(lab, 100)
    with lab.capture() as capture:
        agents = _start(lab, (150, 100), receive_path)
        stopped = agents[0].terminate()
        took_over = lab[1].wait_address(vip, since=stopped, timeout=5) - stopped
        assert agents[0].proc.wait(5) == 0
        agents[1].wait_state("MASTER", timeout=1)
    # RFC 9568 §6.4.3 + §6.4.2: priority 0 makes the backup wait only Skew_Time, which must
    # beat the crash path (3 intervals) by a clear margin.
    assert took_over <= skew_time(backup) + 0.3 < 3 * INTERVAL
    assert _holders(lab) == [1], "the stopped master must remove its VIP"

    pcap = capture.path
    n0, n1 = str(lab[0].ip), str(lab[1].ip)
    goodbye = frames(pcap, f"vrrp && ip.src == {n0} && vrrp.prio == 0", ["ip.ttl"])
    assert len(goodbye) >= 1, "no priority-0 advert from the stopped master on the wire"
    assert goodbye[0]["ip.ttl"] == "255"
    first_new = frames(pcap, f"vrrp && ip.src == {n1} && frame.time_epoch > {goodbye[0].time}")
    assert first_new, "the backup never advertised after the priority-0 advert"
    assert first_new[0].time - goodbye[0].time <= skew_time(backup) + 0.3

    # Gratuitous ARP from each new master: sender IP = target IP = VIP, its own MAC.
    for node in lab.nodes:
        garps = frames(
            pcap,
            f"arp && arp.src.proto_ipv4 == {vip} && arp.dst.proto_ipv4 == {vip} "
            f"&& eth.src == {node.mac()}",
            ["arp.src.hw_mac", "eth.dst"],
        )
        assert garps, f"no gratuitous ARP for {vip} from {node.name}"
        assert all(g["arp.src.hw_mac"] == node.mac() for g in garps)
        assert all(g["eth.dst"] == "ff:ff:ff:ff:ff:ff" for g in garps)

    # Wireshark dissects every advert of ours cleanly (checksum, lengths, fields).
    adverts = frames(pcap, "vrrp", ["vrrp.version", "vrrp.checksum.status", "ip.ttl"])
    assert adverts
    assert {(a["vrrp.version"], a["vrrp.checksum.status"], a["ip.ttl"]) for a in adverts} == {
        ("3", "1", "255")
    }
    assert dissection_problems(pcap, "vrrp") == []
