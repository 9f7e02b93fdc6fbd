"""Run a VRRP speaker in a lab node: our agent or a stock keepalived, from one description.

Both runners take the same :class:`Instance`, so an interop test states the virtual router once
and only chooses which implementation each node runs. Both return a :class:`Speaker` that knows
the implementation's state from a source the implementation itself writes: the agent's
transition log lines (``VI_1: BACKUP -> MASTER (reason)``, fixed by the team contract) and
keepalived's ``notify`` script (keepalived.md §5; a notify marker rather than keepalived's
free-form log text, as the interop blueprint of keepalived.md §14 advises).
"""

from __future__ import annotations

import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from itertools import count
from pathlib import Path

from agent.core import timers
from agent.lab.netns import INTERFACE, LabError, Node, Proc, control_socket_path, wait_for
from agent.tomlout import dumps

_serial = count()

_NOTIFY_SCRIPT = """#!/bin/sh
# keepalived notify: $1=INSTANCE $2=name $3=state $4=priority (keepalived.md section 5)
echo "$2 $3 $4" >> "{path}"
"""


@dataclass(frozen=True, slots=True)
class Instance:
    """One virtual router as both implementations are configured for it."""

    vrid: int
    priority: int
    vips: tuple[IPv4Interface, ...]
    version: int = 3
    #: Seconds; VRRPv2 needs whole seconds.
    advert_interval: float = 1.0
    preempt: bool = True
    #: VRRPv2 simple password (keepalived ``auth_type PASS``); None = no authentication.
    auth_pass: str | None = None
    name: str = "VI_1"
    #: Seconds until the second GARP burst (0 = none): short keeps test captures small.
    garp_master_delay: float = 5.0
    #: Unicast mode: the addresses of every node of the virtual router, the speaker's own
    #: included (one list for all, like OPENSHIFT_HA_UNICAST_PEERS). The agent leaves its
    #: own address out itself; keepalived gets the others as ``unicast_peer`` and its own
    #: as ``unicast_src_ip``. Empty: multicast.
    unicast_peers: tuple[IPv4Address, ...] = ()


def _unique(node: Node, kind: str) -> str:
    return f"{kind}-n{node.index}-{next(_serial)}"


def agent_command() -> list[str]:
    """The installed ``vrrp-agent`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "vrrp-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def agent_toml(
    instances: tuple[Instance, ...],
    *,
    log_level: str = "info",
    global_options: Mapping[str, str] | None = None,
) -> str:
    """The agent configuration (format: team contract, agent/config.py).

    ``global_options`` are further ``[global]`` string keys, e.g. ``{"bpf": "off"}``: the
    benchmarks and the BPF-parametrized tests choose the receive path with them.
    """
    settings = {
        "log_level": log_level,
        "control_socket": control_socket_path(),
        **(global_options or {}),
    }
    tables = []
    for inst in instances:
        table: dict[str, object] = {
            "name": inst.name,
            "interface": INTERFACE,
            "vrid": inst.vrid,
            "priority": inst.priority,
            "version": inst.version,
            "advert_interval": inst.advert_interval,
            "preempt": inst.preempt,
            "vips": [str(vip) for vip in inst.vips],
            "garp_master_delay": inst.garp_master_delay,
        }
        if inst.auth_pass is not None:
            table |= {"auth_type": "pass", "auth_pass": inst.auth_pass}
        if inst.unicast_peers:
            table["unicast_peers"] = [str(peer) for peer in inst.unicast_peers]
        tables.append(table)
    return dumps({"global": settings, "instance": tables})


def keepalived_conf(
    instances: tuple[Instance, ...],
    *,
    router_id: str,
    notify: Path,
    own_address: IPv4Address | None = None,
) -> str:
    """A keepalived.conf with the same virtual routers (keepalived.md §2 keywords).

    ``own_address`` is the node's address: the ``unicast_src_ip`` of unicast instances,
    and left out of their ``unicast_peer`` block.
    """
    lines = [
        "global_defs {",
        f"    router_id {router_id}",
        "    script_user root",
        "    enable_script_security",
        "}",
    ]
    for inst in instances:
        lines += [
            f"vrrp_instance {inst.name} {{",
            "    state BACKUP",  # nopreempt requires it; the election decides anyway
            f"    interface {INTERFACE}",
            f"    virtual_router_id {inst.vrid}",
            f"    priority {inst.priority}",
            f"    version {inst.version}",
            f"    advert_int {inst.advert_interval:g}",
            f"    garp_master_delay {inst.garp_master_delay:g}",
            f"    notify {notify}",
        ]
        if not inst.preempt:
            lines.append("    nopreempt")
        if inst.auth_pass is not None:
            lines += [
                "    authentication {",
                "        auth_type PASS",
                f"        auth_pass {inst.auth_pass}",
                "    }",
            ]
        if inst.unicast_peers:
            if own_address is not None:
                lines.append(f"    unicast_src_ip {own_address}")
            lines.append("    unicast_peer {")
            lines += [f"        {peer}" for peer in inst.unicast_peers if peer != own_address]
            lines.append("    }")
        lines.append("    virtual_ipaddress {")
        lines += [f"        {vip} dev {INTERFACE}" for vip in inst.vips]
        lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


class Speaker(ABC):
    """A running VRRP implementation in one node."""

    kind = "speaker"

    def __init__(self, node: Node, proc: Proc, instances: tuple[Instance, ...]) -> None:
        self.node = node
        self.proc = proc
        self.instances = instances

    def __repr__(self) -> str:
        return f"{self.kind}@{self.node.name}"

    @abstractmethod
    def states(self) -> list[tuple[str, str]]:
        """(instance name, state) in the order the implementation reported them."""

    def state(self, instance: str = "VI_1") -> str | None:
        """The latest reported state of ``instance`` (None before the first report)."""
        found = [state for name, state in self.states() if name == instance]
        return found[-1] if found else None

    def wait_state(self, state: str, *, timeout: float, instance: str = "VI_1") -> float:
        """Wait until ``instance`` reports ``state``; returns the monotonic time it was seen."""

        def reached() -> bool:
            if not self.proc.alive():
                raise LabError(f"{self} exited ({self.proc.popen.returncode}):\n{self.output()}")
            return self.state(instance) == state

        return wait_for(reached, timeout, what=f"{self} {instance} to be {state}", interval=0.01)

    def output(self) -> str:
        return self.proc.output()[-4000:]

    def kill(self) -> float:
        return self.proc.kill()

    def terminate(self) -> float:
        return self.proc.terminate()


class AgentSpeaker(Speaker):
    kind = "agent"
    _TRANSITION = re.compile(r"(\S+): (\w+) -> (\w+) \(")

    def states(self) -> list[tuple[str, str]]:
        return [(m.group(1), m.group(3)) for m in self._TRANSITION.finditer(self.proc.output())]


class KeepalivedSpeaker(Speaker):
    kind = "keepalived"

    def __init__(
        self, node: Node, proc: Proc, instances: tuple[Instance, ...], notify_log: Path
    ) -> None:
        super().__init__(node, proc, instances)
        self.notify_log = notify_log

    def states(self) -> list[tuple[str, str]]:
        try:
            lines = self.notify_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(line.split()[0], line.split()[1]) for line in lines if len(line.split()) >= 2]

    def log_problems(self) -> list[str]:
        """keepalived log lines that complain about received packets (keepalived.md §14)."""
        words = re.compile(r"invalid|checksum|error|bogus|mismatch", re.IGNORECASE)
        return [line for line in self.proc.output().splitlines() if words.search(line)]


def start_agent(
    node: Node,
    *instances: Instance,
    log_level: str = "info",
    global_options: Mapping[str, str] | None = None,
) -> AgentSpeaker:
    """Write a config for ``instances`` and start ``vrrp-agent run`` in ``node``."""
    tag = _unique(node, "agent")
    config = node.lab.workdir / f"{tag}.toml"
    config.write_text(agent_toml(instances, log_level=log_level, global_options=global_options))
    proc = node.spawn([*agent_command(), "run", "--config", str(config)], name=tag)
    return AgentSpeaker(node, proc, instances)


def start_keepalived(node: Node, *instances: Instance) -> KeepalivedSpeaker:
    """Write a keepalived.conf for ``instances``, check it with ``-t``, then start keepalived."""
    tag = _unique(node, "keepalived")
    workdir = node.lab.workdir
    notify_log = workdir / f"{tag}.states"
    script = workdir / f"{tag}-notify.sh"
    script.write_text(_NOTIFY_SCRIPT.format(path=notify_log))
    script.chmod(0o755)
    config = workdir / f"{tag}.conf"
    config.write_text(
        keepalived_conf(instances, router_id=node.name, notify=script, own_address=node.ip)
    )
    checked = node.run(["keepalived", "-t", "-f", str(config)], check=False)
    if checked.returncode != 0:
        raise LabError(f"keepalived -t rejected {config}:\n{checked.stdout}{checked.stderr}")
    argv = ["keepalived", "-n", "-l", "-D", "-G", "-R", "--vrrp", "-f", str(config)]
    argv += ["-p", str(workdir / f"{tag}.pid"), "-r", str(workdir / f"{tag}-vrrp.pid")]
    return KeepalivedSpeaker(node, node.spawn(argv, name=tag), instances, notify_log)


def skew_time(instance: Instance) -> float:
    """Skew_Time in seconds of a backup with this config (:func:`agent.core.timers.skew_time`)."""
    return timers.skew_time(instance.version, instance.priority, _interval_cs(instance))


def master_down_interval(instance: Instance) -> float:
    """How long a backup with this config waits after the master's last advert, in seconds."""
    return timers.master_down_interval(instance.version, instance.priority, _interval_cs(instance))


def _interval_cs(instance: Instance) -> int:
    return round(instance.advert_interval * 100)
