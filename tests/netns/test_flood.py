"""A flood of malformed adverts at a backup: no transition, and failover still in bound.

Every flooded datagram claims priority 254 on a VRID the backup runs (agent/lab/flood.py), one
kind per reject reason, thousands per second from a spare node. Accepting any of them would
make the backup see a better master: it would then not take over when the real master dies,
or stop advertising as master afterwards. Losing events under load (a starved event loop)
would show as a late takeover. So the assertions are: no transition anywhere during the flood,
then a takeover within the protocol bound while the flood is still running.

It runs with the eBPF socket filter in kernel-only mode (the flood is dropped in the kernel)
and with BPF off (every datagram is classified in userspace): ``receive_path``,
tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import replace

import pytest

from agent.core.packet import Rejected, RejectReason, classify
from agent.lab import Lab, Node
from agent.lab.flood import Target, malformed_datagrams, receive_policy
from agent.lab.runners import Instance, master_down_interval, start_agent
from tests.conftest import ReceivePath

pytestmark = [pytest.mark.netns, pytest.mark.slow]

RATE = 3000  # frames per second
MARGIN = 0.5


def _rx_packets(node: Node) -> int:
    link = json.loads(node.run(["ip", "-j", "-s", "link", "show", "dev", "eth0"]).stdout)[0]
    return int(link["stats64"]["rx"]["packets"])


def test_flood_of_malformed_adverts_changes_nothing(lab: Lab, receive_path: ReceivePath) -> None:
    master_node, backup_node, flooder = lab.nodes
    v3 = Instance(
        vrid=51, priority=100, vips=(lab.vip(100),), version=3, advert_interval=0.1, name="VI_1"
    )
    v2 = Instance(
        vrid=52,
        priority=100,
        vips=(lab.vip(101),),
        version=2,
        advert_interval=1.0,
        auth_pass="s3cret",
        name="VI_2",
    )
    # Unicast mode (the draft's wrong_destination and unknown_peer): peers are the two agents.
    unicast = replace(
        v3,
        vrid=53,
        vips=(lab.vip(102),),
        name="VI_3",
        unicast_peers=(master_node.ip, backup_node.ip),
    )
    targets = (
        Target(3, v3.vrid, 10, v3.vips[0].ip),
        Target(2, v2.vrid, 100, v2.vips[0].ip, b"s3cret"),
        Target(3, unicast.vrid, 10, unicast.vips[0].ip, unicast_peer=master_node.ip),
    )
    # The flood is what it claims: one datagram per reject reason, each rejected for it.
    datagrams = malformed_datagrams(targets, source=flooder.ip, victim=backup_node.ip)
    assert set(datagrams) == set(RejectReason)
    policy = receive_policy(targets, backup_node.ip)
    for reason, datagram in datagrams.items():
        verdict = classify(datagram, policy)
        assert isinstance(verdict, Rejected)
        assert verdict.reason is reason

    master = start_agent(
        master_node,
        replace(v3, priority=200),
        replace(v2, priority=200),
        replace(unicast, priority=200),
        global_options=receive_path.options,
    )
    for name in ("VI_1", "VI_2", "VI_3"):
        master.wait_state("MASTER", timeout=10, instance=name)
    backup = start_agent(backup_node, v3, v2, unicast, global_options=receive_path.options)
    for name in ("VI_1", "VI_2", "VI_3"):
        backup.wait_state("BACKUP", timeout=10, instance=name)
    receive_path.check(master, backup)
    before = (master.states(), backup.states())

    window = master_down_interval(v2) + 1.0  # longer than any master-down interval here
    duration = window + master_down_interval(v2) + MARGIN + 1.0
    argv = [sys.executable, "-m", "agent.lab", "flood", "--source", str(flooder.ip)]
    argv += [
        "--victim",
        str(backup_node.ip),
        "--victim-mac",
        backup_node.mac(),
        "--rate",
        str(RATE),
        "--duration",
        str(duration),
    ]
    argv += ["--max-frames", str(int(RATE * duration))]
    argv += ["--target", f"3:{v3.vrid}:10:{v3.vips[0].ip}"]
    argv += ["--target", f"2:{v2.vrid}:100:{v2.vips[0].ip}:s3cret"]
    argv += ["--target", f"3:{unicast.vrid}:10:{unicast.vips[0].ip}@{master_node.ip}"]
    received_before = _rx_packets(backup_node)
    flood = flooder.spawn(argv, name="flood")
    flood_started = flood.wait_for_output(r"^flooding", timeout=10)

    # Observation window under fire: nobody may change state.
    time.sleep(window)
    assert (master.states(), backup.states()) == before
    assert [n.has_address(v3.vips[0]) for n in lab.nodes] == [True, False, False]
    assert flood.alive(), "the flood ended before the window did"

    # The master dies while the flood goes on: the backup takes over in bound, both VRIDs.
    killed = master.kill()
    for instance in (v3, v2, unicast):
        vip = instance.vips[0].ip
        took_over = backup_node.wait_address(vip, since=killed, timeout=10) - killed
        assert took_over <= master_down_interval(instance) + MARGIN, instance.name
    assert flood.alive(), "the takeover must happen while the flood is still running"
    assert flood.wait(duration + 10) == 0
    sent = int(re.findall(r"sent (\d+) frames", flood.output())[-1])
    elapsed = time.monotonic() - flood_started
    assert sent >= 0.8 * RATE * min(duration, elapsed), f"only {sent} frames sent"
    # ... and nearly all reached the backup's interface (veth backlogs may drop a few).
    assert _rx_packets(backup_node) - received_before >= 0.9 * sent
    assert backup.state("VI_1") == backup.state("VI_2") == backup.state("VI_3") == "MASTER"
