"""Shared helpers of the health, notify and sync-group namespace tests (issue 4).

The lab's :class:`~agent.lab.runners.Instance` only describes the protocol part of an
instance; these tests also need ``[[script]]`` tables, ``track_scripts``, ``monitor_port``,
notify keys and ``[[sync_group]]``, so the configuration is written here from plain dicts.
Agents still run through the lab (``node.spawn``) and are read through
:class:`~agent.lab.runners.AgentSpeaker`, whose transition parsing is the team's fixed log
format.

Measured times (check failure to takeover, ...) are printed and merged into
``/work/coord/health-times.json`` for the issue's closing note.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from agent.core import timers
from agent.lab import Lab, LabError, Node
from agent.lab.netns import control_socket_path
from agent.lab.runners import AgentSpeaker, agent_command
from agent.tomlout import dumps

#: Advertisement interval of every test instance: short, so a test takes seconds.
ADVERT = 0.1
#: Allowed lateness on top of a protocol or check timer on a busy two-core machine
#: (process scheduling, the agent's 10 ms log polling by the lab, netlink round trips).
MARGIN = 0.6
TIMES_FILE = Path(os.environ.get("VRRP_HEALTH_TIMES", "/work/coord/health-times.json"))


def skew(priority: int, interval: float = ADVERT) -> float:
    """RFC 9568 §6.1 Skew_Time (VRRPv3) in seconds."""
    return timers.skew_time(3, priority, round(interval * 100))


def master_down(priority: int, interval: float = ADVERT) -> float:
    """RFC 9568 §6.1 Master_Down_Interval (VRRPv3) in seconds."""
    return timers.master_down_interval(3, priority, round(interval * 100))


def config_toml(
    instances: Iterable[Mapping[str, object]],
    *,
    scripts: Iterable[Mapping[str, object]] = (),
    sync_groups: Iterable[Mapping[str, object]] = (),
    global_: Mapping[str, object] | None = None,
) -> str:
    """The agent's TOML; every instance defaults to VRRPv3 on eth0 every :data:`ADVERT`
    seconds, without the second GARP burst (keeps captures small)."""
    defaults = {"interface": "eth0", "version": 3, "advert_interval": ADVERT}
    document: dict[str, object] = {
        "global": {"log_level": "info", "control_socket": control_socket_path(), **(global_ or {})},
        "script": list(scripts),
        "instance": [{**defaults, "garp_master_delay": 0, **instance} for instance in instances],
        "sync_group": list(sync_groups),
    }
    return dumps({key: value for key, value in document.items() if value})


def start(node: Node, tag: str, toml: str) -> AgentSpeaker:
    """Write ``toml`` and run ``vrrp-agent run`` with it in ``node``."""
    path = node.lab.workdir / f"{tag}.toml"
    path.write_text(toml)
    proc = node.spawn([*agent_command(), "run", "--config", str(path)], name=tag)
    return AgentSpeaker(node, proc, ())


def shell_script(path: Path, body: str) -> Path:
    """An executable /bin/sh script (exec'd directly by the agent, no shell=True here)."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class Flag:
    """A check that passes while a file exists: remove the file to make it fail."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.file = lab.workdir / f"{name}.ok"
        self.file.touch()
        self.script = shell_script(lab.workdir / f"{name}.sh", f'exec test -e "{self.file}"\n')

    def fail(self) -> float:
        self.file.unlink()
        return time.monotonic()

    def pass_(self) -> float:
        self.file.touch()
        return time.monotonic()


def holders(lab: Lab, vip: IPv4Interface) -> list[int]:
    """Indexes of the nodes whose eth0 holds ``vip`` right now (kernel ground truth)."""
    return [node.index for node in lab.nodes if node.has_address(vip)]


def transitions(agent: AgentSpeaker, instance: str = "VI_1") -> list[str]:
    """The states ``instance`` entered, in the order its log reports them."""
    return [state for name, state in agent.states() if name == instance]


def assert_stays(agent: AgentSpeaker, seconds: float, instance: str = "VI_1") -> None:
    """Watch ``agent`` for ``seconds``: ``instance`` must not change state meanwhile.

    Absence of an event can only be observed over a window; callers size the window in
    Master_Down_Intervals.
    """
    before = transitions(agent, instance)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not agent.proc.alive():
            raise LabError(f"{agent} exited:\n{agent.output()}")
        now = transitions(agent, instance)
        assert now == before, f"{agent} {instance} moved: {before} -> {now}"
        time.sleep(0.02)


def record_time(key: str, seconds: float, **detail: object) -> None:
    """Print a measured time and merge it into :data:`TIMES_FILE` (best effort)."""
    print(f"[health-times] {key}: {seconds * 1000:.0f} ms {detail or ''}")
    entry: dict[str, Any] = {"seconds": round(seconds, 4), **detail}
    with suppress(OSError, ValueError):
        data = json.loads(TIMES_FILE.read_text()) if TIMES_FILE.exists() else {}
        data[key] = entry
        TIMES_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
