"""The privileges our deployment files provision are the ones the agent needs: no fewer.

The systemd unit and the DaemonSets grant CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF and
CAP_PERFMON and nothing else. Without systemd as PID 1 (CI runs in a container) we
reproduce that with ``setpriv``: uid 0, bounding, inheritable and ambient sets cut to the
unit's list, no_new_privs. The agent must then run fully (eBPF filter, VIP added, VIP
removed at SIGTERM, exit 0); and without each capability it must degrade exactly as the
README says, which proves that each one is needed. Five agents run at once, one per
node with its own VRID, so the whole measurement costs one start-up time.
"""

from __future__ import annotations

import configparser
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lab import Lab, wait_for
from agent.lab.runners import Instance, agent_command, agent_toml
from tests.conftest import bpf_unavailable

pytestmark = [pytest.mark.netns, pytest.mark.bpf]

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "vrrp-agent.service"
#: What the agent logs when each capability is missing (agent/daemon.py, agent/host).
WITHOUT = {
    "CAP_NET_RAW": "opening a raw VRRP socket needs the CAP_NET_RAW capability",
    "CAP_NET_ADMIN": "the agent needs the CAP_NET_ADMIN capability",
    "CAP_BPF": "loading BPF programs needs CAP_BPF",
    "CAP_PERFMON": "Permission denied",
}


def _unit_capabilities() -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]["CapabilityBoundingSet"].split()


def _setpriv(capabilities: list[str]) -> list[str]:
    names = ",".join(f"+{cap.removeprefix('CAP_').lower()}" for cap in capabilities)
    caps = f"-all,{names}" if names else "-all"
    return [
        "setpriv",
        f"--bounding-set={caps}",
        f"--inh-caps={caps}",
        f"--ambient-caps={caps}",
        "--no-new-privs",
    ]


def test_the_unit_capabilities_are_sufficient_and_each_is_needed(
    make_lab: Callable[[int], Lab],
) -> None:
    if reason := bpf_unavailable():
        pytest.skip(reason)
    granted = _unit_capabilities()
    assert sorted(granted) == sorted(WITHOUT)
    cases = {"all": granted} | {
        f"no {missing}": [cap for cap in granted if cap != missing] for missing in granted
    }
    lab = make_lab(len(cases))
    runs = {}
    for index, (name, capabilities) in enumerate(cases.items()):
        node = lab[index]
        instance = Instance(
            vrid=60 + index, priority=255, vips=(lab.vip(100 + index),), advert_interval=0.1
        )
        config = lab.workdir / f"caps-{index}.toml"
        config.write_text(agent_toml((instance,), global_options={"bpf": "auto"}))
        argv = [*_setpriv(capabilities), *agent_command(), "run", "--config", str(config)]
        runs[name] = (node, instance.vips[0], node.spawn(argv, name=f"caps-{index}"))

    # Everyone is up (or gone) once every agent logged its receive path or exited.
    def settled() -> bool:
        return all(
            not proc.alive() or "INITIALIZE -> MASTER" in proc.output()
            for _, _, proc in runs.values()
        )

    wait_for(settled, 30.0, what="all agents started or exited")
    time.sleep(0.3)  # the VIP is added right after the transition

    node, vip, proc = runs["all"]
    assert node.has_address(vip), proc.output()
    assert "receive path: eBPF socket filter" in proc.output()

    node, vip, proc = runs["no CAP_BPF"]
    assert node.has_address(vip)
    assert "receive path: userspace (eBPF unavailable)" in proc.output()
    assert WITHOUT["CAP_BPF"] in proc.output()

    node, vip, proc = runs["no CAP_PERFMON"]
    assert node.has_address(vip)
    assert "receive path: userspace (eBPF unavailable)" in proc.output()
    assert WITHOUT["CAP_PERFMON"] in proc.output()  # the verifier refuses the checksum loop

    node, vip, proc = runs["no CAP_NET_ADMIN"]
    assert not node.has_address(vip)
    assert WITHOUT["CAP_NET_ADMIN"] in proc.output()

    node, vip, proc = runs["no CAP_NET_RAW"]
    assert proc.wait() == 2
    assert f"error: eth0: {WITHOUT['CAP_NET_RAW']}" in proc.output()

    # SIGTERM with the unit's set: the VIP goes, the agent exits 0.
    node, vip, proc = runs["all"]
    proc.terminate()
    assert proc.wait() == 0
    assert not node.has_address(vip)
