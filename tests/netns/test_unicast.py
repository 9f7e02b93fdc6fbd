"""Unicast VRRP (keepalived ``unicast_peer``, draft-abinabraham-vrrp-unicast-01) on the wire.

Every node gets the same peer list, its own address included (as OpenShift's
``OPENSHIFT_HA_UNICAST_PEERS`` does); each speaker leaves itself out. The assertions are
about what the bridge saw, dissected by Wireshark: every advert of ours is addressed to the
peer's IP and MAC (never 224.0.0.18 or its group MAC), leaves with TTL 255 (the draft keeps
the single-hop rule) and carries a checksum Wireshark verifies, which for VRRPv3 means the
pseudo-header holds the peer's address (protocol.md §4). Elections and takeovers are timed
as in test_keepalived_interop.py, with our agents and with a stock keepalived 2.2.7 in
unicast mode, in both directions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lab.pcap import dissection_problems, frames
from agent.lab.runners import (
    Instance,
    KeepalivedSpeaker,
    Speaker,
    master_down_interval,
    start_agent,
    start_keepalived,
)
from tests.conftest import ReceivePath

pytestmark = pytest.mark.netns

_FIELDS = ["ip.src", "ip.dst", "eth.dst", "ip.ttl", "vrrp.version", "vrrp.prio"]
_FIELDS += ["vrrp.checksum.status"]


def _unicast_instance(lab: Lab, version: int, interval: float) -> Instance:
    return Instance(
        vrid=42,
        priority=100,
        vips=(lab.vip(),),
        version=version,
        advert_interval=interval,
        garp_master_delay=0,
        unicast_peers=tuple(node.ip for node in lab.nodes),
    )


def _elect_then_kill_master(
    lab: Lab,
    start_master: Callable[..., Speaker],
    start_backup: Callable[..., Speaker],
    backup_cfg: Instance,
    margin: float,
    **agent_options: object,
) -> tuple[Speaker, Speaker]:
    """n0 masters, n1 backs up for longer than its Master_Down_Interval, then n0 is killed
    and n1 must take the VIP within the RFC bound. Returns (master, backup)."""
    master_cfg = replace(backup_cfg, priority=200)
    vip = backup_cfg.vips[0].ip
    interval = backup_cfg.advert_interval
    master = start_master(lab[0], master_cfg, **agent_options)
    master.wait_state("MASTER", timeout=15)
    backup = start_backup(lab[1], backup_cfg, **agent_options)
    backup.wait_state("BACKUP", timeout=15)
    # A backup that dropped the master's unicast adverts would take over in this window.
    time.sleep(master_down_interval(backup_cfg) + interval)
    assert backup.states() == [("VI_1", "BACKUP")], backup.output()
    assert [node.has_address(vip) for node in lab.nodes] == [True, False]

    killed = master.kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=10) - killed
    backup.wait_state("MASTER", timeout=2)
    # RFC 9568 §6.4.2: Master_Down_Interval after the last advert (at most one interval
    # before the kill).
    assert 2 * interval <= took_over <= master_down_interval(backup_cfg) + margin
    return master, backup


def _assert_unicast_adverts(lab: Lab, pcap: Path, sender: Speaker, version: int) -> None:
    """Every advert ``sender`` put on the wire went to the other node, TTL 255, good checksum."""
    peer = lab[1] if sender.node is lab[0] else lab[0]
    adverts = frames(pcap, f"vrrp && !icmp && ip.src == {sender.node.ip}", _FIELDS)
    assert adverts, f"no adverts from {sender} on the wire"
    for advert in adverts:
        assert advert["ip.dst"] == str(peer.ip)
        assert advert["eth.dst"] == peer.mac()
        assert advert["ip.ttl"] == "255"
        assert advert["vrrp.version"] == str(version)
        assert advert["vrrp.checksum.status"] == "1", "Wireshark: bad checksum"
    assert dissection_problems(pcap, f"vrrp && !icmp && ip.src == {sender.node.ip}") == []


def test_two_agents_elect_and_fail_over_by_unicast(
    make_lab: Callable[[int], Lab], receive_path: ReceivePath
) -> None:
    lab = make_lab(2)
    backup_cfg = _unicast_instance(lab, version=3, interval=0.1)
    with lab.capture() as capture:
        master, backup = _elect_then_kill_master(
            lab,
            start_agent,
            start_agent,
            backup_cfg,
            margin=0.5,
            global_options=receive_path.options,
        )
    receive_path.check(master, backup)
    assert "left out: this node's own address" in master.output()
    _assert_unicast_adverts(lab, capture.path, master, version=3)
    # The backup's adverts after its takeover go to the (dead agent's) node, too.
    _assert_unicast_adverts(lab, capture.path, backup, version=3)
    assert frames(capture.path, "vrrp && ip.dst == 224.0.0.18") == []


def test_unicast_and_multicast_ignore_each_other(make_lab: Callable[[int], Lab]) -> None:
    """draft-abinabraham-vrrp-unicast: a unicast-mode VRID ignores multicast adverts and a
    multicast-mode VRID ignores unicast ones, so mixing the modes gives two masters, and
    each agent says why it dropped the other's adverts."""
    lab = make_lab(2)
    unicast_cfg = _unicast_instance(lab, version=3, interval=0.1)
    multicast_cfg = replace(unicast_cfg, priority=200, unicast_peers=())
    multicast = start_agent(lab[0], multicast_cfg, global_options={"bpf": "off"})
    multicast.wait_state("MASTER", timeout=15)
    unicast = start_agent(lab[1], unicast_cfg, global_options={"bpf": "off"})
    unicast.wait_state("MASTER", timeout=15)
    time.sleep(0.5)
    assert multicast.states() == [("VI_1", "BACKUP"), ("VI_1", "MASTER")]
    for agent in (multicast, unicast):
        agent.proc.wait_for_output(r"dropped \d+ datagram\(s\).*: wrong_destination", timeout=5)


@dataclass(frozen=True)
class Case:
    version: int
    interval: float
    agent_is_master: bool
    margin: float = 0.5


CASES = {
    "v3-agent-master": Case(3, 0.1, agent_is_master=True),
    "v3-keepalived-master": Case(3, 0.1, agent_is_master=False),
    "v2-agent-master": Case(2, 1.0, agent_is_master=True, margin=1.0),
    "v2-keepalived-master": Case(2, 1.0, agent_is_master=False, margin=1.0),
}


@pytest.mark.keepalived
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=name, marks=[pytest.mark.slow] if case.version == 2 else [])
        for name, case in CASES.items()
    ],
)
def test_unicast_interop_with_keepalived(case: Case, make_lab: Callable[[int], Lab]) -> None:
    lab = make_lab(2)
    backup_cfg = _unicast_instance(lab, version=case.version, interval=case.interval)
    start_master, start_backup = (
        (start_agent, start_keepalived) if case.agent_is_master else (start_keepalived, start_agent)
    )
    with lab.capture() as capture:
        master, backup = _elect_then_kill_master(
            lab, start_master, start_backup, backup_cfg, margin=case.margin
        )
    agent, keepalived = (master, backup) if case.agent_is_master else (backup, master)
    assert isinstance(keepalived, KeepalivedSpeaker)
    assert keepalived.log_problems() == []
    _assert_unicast_adverts(lab, capture.path, agent, version=case.version)
    # keepalived's adverts reached us as unicast, TTL 255: what the agent accepted.
    _assert_unicast_adverts(lab, capture.path, keepalived, version=case.version)
    assert frames(capture.path, "vrrp && ip.dst == 224.0.0.18") == []
