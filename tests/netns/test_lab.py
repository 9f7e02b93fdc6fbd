"""The lab itself: isolation, teardown on every exit path, the stale sweep, and a keepalived pair.

The keepalived pair proves the lab's plumbing (bridge, multicast, address monitor, runner) with a
known-good implementation, so that a failing agent test points at the agent, not at the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import pytest

from agent.lab import Lab, LabError, Proc, sweep_stale, wait_for
from agent.lab.netns import STATE_DIR
from agent.lab.runners import Instance, master_down_interval, start_keepalived

pytestmark = pytest.mark.netns


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def test_lab_builds_an_isolated_segment_and_removes_it() -> None:
    root_links = _root_links()
    with Lab(2) as lab:
        names = {lab.hub, lab[0].name, lab[1].name}
        assert names <= _namespaces()
        assert _root_links() == root_links, "the lab must not create links in the root namespace"
        assert lab[0].addresses() == {lab[0].ip}
        assert lab[0].address.network == lab[1].address.network == lab.network
        # Layer 2 works across the bridge: a UDP datagram makes node 0 resolve node 1 by ARP.
        send = f"import socket; socket.socket(2, 2).sendto(b'x', ('{lab[1].ip}', 9))"
        lab[0].run([sys.executable, "-c", send])
        neighbours = json.loads(lab[0].run(["ip", "-j", "neigh", "show", str(lab[1].ip)]).stdout)
        assert neighbours[0]["lladdr"] == lab[1].mac()
        lab[1].set_link(up=False)
        assert "DOWN" in lab[1].run(["ip", "-br", "link", "show", "eth0"]).stdout
        lab[1].set_link(up=True)
        sleeper = lab[0].spawn(["sleep", "60"], name="sleeper")
    assert not names & _namespaces()
    assert not sleeper.alive()
    assert not (STATE_DIR / f"{lab.uid}.json").exists()


def test_teardown_runs_when_the_body_raises() -> None:
    built: list[tuple[Lab, Proc]] = []

    def crash() -> None:
        with Lab(1) as lab:
            built.append((lab, lab[0].spawn(["sleep", "60"], name="sleeper")))
            raise KeyboardInterrupt  # the harshest ordinary exit: Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        crash()
    lab, sleeper = built[0]
    assert not sleeper.alive()
    assert lab[0].name not in _namespaces()


def test_sweep_removes_labs_of_dead_owners_only() -> None:
    uid = "0dead0"
    namespace = f"vl{uid}-n0"
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    # Above the kernel's maximum pid_max (2**22): an owner that cannot be alive.
    record = {"pid": 2**22 + 1, "start_time": "1", "subnet": "10.254.254.0/24"}
    (STATE_DIR / f"{uid}.json").write_text(json.dumps(record))
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    with Lab(1) as live:  # building a lab sweeps first; its own namespaces must survive
        assert namespace not in _namespaces()
        assert sweep_stale() == []
        assert live[0].name in _namespaces()


def test_wait_for_names_the_condition_it_timed_out_on() -> None:
    with pytest.raises(LabError, match="the impossible"):
        wait_for(lambda: False, 0.05, what="the impossible")


@pytest.mark.keepalived
def test_keepalived_pair_elects_and_fails_over(make_lab: Callable[[int], Lab]) -> None:
    lab = make_lab(2)
    backup = Instance(vrid=7, priority=100, vips=(lab.vip(),), version=3, advert_interval=0.1)
    vip = lab.vip().ip
    master = start_keepalived(lab[0], replace(backup, priority=200))
    master.wait_state("MASTER", timeout=10)
    other = start_keepalived(lab[1], backup)
    other.wait_state("BACKUP", timeout=10)
    assert [n.has_address(vip) for n in lab.nodes] == [True, False]
    killed = master.kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=5)
    assert took_over - killed <= master_down_interval(backup) + 0.6
    other.wait_state("MASTER", timeout=2)
