"""Interop with a stock keepalived (keepalived.md §14), VRRPv2 at 1 s and VRRPv3 at 100 ms.

A backup that stays backup for longer than its Master_Down_Interval has accepted the master's
adverts (otherwise it would have taken over), and a backup that takes over within the bound
after a kill -9 was timing against them. Both directions are run, so each implementation is
checked as sender and as receiver. Keepalived's state comes from its notify script, ours from
the transition log, and every advert of ours must dissect cleanly in Wireshark and draw no
complaint in keepalived's log.

Each case runs with the agent's eBPF socket filter in kernel-only mode and with BPF off
(``receive_path``, tests/conftest.py), except the two VRRPv2 cases with the agent as master:
there the agent receives no adverts at all (a keepalived backup is silent), so the receive
path makes no difference, and each run costs about 12 s. The kernel's VRRPv2 checks are
exercised by ``v2-keepalived-master``, where the agent is the backup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import pytest

from agent.lab import Lab
from agent.lab.pcap import dissection_problems, frames
from agent.lab.runners import (
    AgentSpeaker,
    Instance,
    KeepalivedSpeaker,
    Speaker,
    master_down_interval,
    start_agent,
    start_keepalived,
)
from tests.conftest import RECEIVE_PATHS, ReceivePath

pytestmark = [pytest.mark.netns, pytest.mark.keepalived]


@dataclass(frozen=True)
class Case:
    version: int
    interval: float
    agent_is_master: bool
    auth_pass: str | None = None
    #: Allowed lateness beyond Master_Down_Interval: scaled with the interval, since a
    #: VRRPv2 speaker may legitimately time from whole-second boundaries.
    margin: float = 0.5


CASES = {
    "v3-agent-master": Case(3, 0.1, agent_is_master=True),
    "v3-keepalived-master": Case(3, 0.1, agent_is_master=False),
    "v2-agent-master": Case(2, 1.0, agent_is_master=True, margin=1.0),
    "v2-keepalived-master": Case(2, 1.0, agent_is_master=False, margin=1.0),
    "v2-pass-agent-master": Case(2, 1.0, agent_is_master=True, auth_pass="s3cret", margin=1.0),
}


#: Cases run with BPF off only (see the module docstring).
USERSPACE_ONLY = {"v2-agent-master", "v2-pass-agent-master"}


@pytest.mark.parametrize(
    ("case", "receive_path"),
    [
        pytest.param(
            case,
            path,
            id=f"{name}-{path}",
            marks=[pytest.mark.slow] if case.version == 2 else [],
        )
        for name, case in CASES.items()
        for path in RECEIVE_PATHS
        if path == "userspace" or name not in USERSPACE_ONLY
    ],
    indirect=["receive_path"],
)
def test_interop_election_and_takeover(
    case: Case, receive_path: ReceivePath, make_lab: Callable[[int], Lab]
) -> None:
    lab = make_lab(2)
    vip = lab.vip().ip
    backup_cfg = Instance(
        vrid=42,
        priority=100,
        vips=(lab.vip(),),
        version=case.version,
        advert_interval=case.interval,
        auth_pass=case.auth_pass,
        garp_master_delay=0,
    )
    master_cfg = replace(backup_cfg, priority=200)
    start_ours = partial(start_agent, global_options=receive_path.options)
    start_master, start_backup = (
        (start_ours, start_keepalived) if case.agent_is_master else (start_keepalived, start_ours)
    )
    with lab.capture() as capture:
        master: Speaker = start_master(lab[0], master_cfg)
        master.wait_state("MASTER", timeout=15)
        backup: Speaker = start_backup(lab[1], backup_cfg)
        backup.wait_state("BACKUP", timeout=15)
        # Observation window: longer than the backup's Master_Down_Interval, so a backup that
        # dropped the master's adverts would have become master in it.
        time.sleep(master_down_interval(backup_cfg) + case.interval)
        assert backup.states() == [("VI_1", "BACKUP")]
        assert [n.has_address(vip) for n in lab.nodes] == [True, False]

        killed = master.kill()
        took_over = lab[1].wait_address(vip, since=killed, timeout=10) - killed
        backup.wait_state("MASTER", timeout=2)
    # RFC 3768 §6.4.2 / RFC 9568 §6.4.2: Master_Down_Interval after the last advert, which
    # left at most one interval before the kill.
    assert 2 * case.interval <= took_over <= master_down_interval(backup_cfg) + case.margin

    agent, keepalived = (master, backup) if case.agent_is_master else (backup, master)
    assert isinstance(agent, AgentSpeaker)
    receive_path.check(agent)
    assert isinstance(keepalived, KeepalivedSpeaker)
    assert keepalived.log_problems() == []
    ours = frames(
        capture.path,
        f"vrrp && ip.src == {agent.node.ip}",
        ["vrrp.version", "vrrp.virt_rtr_id", "vrrp.prio", "ip.ttl", "vrrp.checksum.status"]
        + (["vrrp.adver_int", "vrrp.auth_type", "vrrp.auth_string"] if case.version == 2 else [])
        + (["vrrp.short_adver_int"] if case.version == 3 else []),
    )
    assert ours, "no adverts from the agent on the wire"
    priority = str((master_cfg if case.agent_is_master else backup_cfg).priority)
    for advert in ours:
        assert advert["vrrp.version"] == str(case.version)
        assert advert["vrrp.virt_rtr_id"] == "42"
        assert advert["vrrp.prio"] == priority
        assert advert["ip.ttl"] == "255"
        assert advert["vrrp.checksum.status"] == "1", "Wireshark: bad checksum"
        if case.version == 2:
            assert advert["vrrp.adver_int"] == "1"
            assert advert["vrrp.auth_type"] == ("1" if case.auth_pass else "0")
            if case.auth_pass:
                assert advert["vrrp.auth_string"] == case.auth_pass
        else:
            assert advert["vrrp.short_adver_int"] == "10"
    assert dissection_problems(capture.path, f"vrrp && ip.src == {agent.node.ip}") == []
