"""Failure scenarios on the three Vagrant VMs, with the namespace lab's assertions.

Run from ``vagrant/`` after ``vagrant up`` (Python 3.11+, the repository's ``agent``
package on the path; no other dependency)::

    python3 scenarios.py failover       # SIGKILL the master; systemd restarts it
    python3 scenarios.py check-fault    # the master's check script fails, then recovers
    python3 scenarios.py split-brain    # VRRP blocked on the master, then healed
    python3 scenarios.py all

Each step states what it expects and the time the protocol allows, computed by the lab's
own formulas (:func:`agent.lab.runners.master_down_interval`), and polls with the lab's
:func:`agent.lab.netns.wait_for`, so a failure names the condition that never held.
Commands reach the VMs over ssh with ``vagrant ssh-config``'s settings; nothing runs on
this machine's network. Exit status 0 when every step held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.lab.netns import LabError, wait_for
from agent.lab.runners import Instance, master_down_interval, skew_time

#: What vagrant/provision.sh configures on every node (priorities differ).
VIP = IPv4Interface("192.168.56.100/24")
NODES = {"node1": 150, "node2": 100, "node3": 50}
#: SSH round trips and service restarts on small VMs are slower than the protocol.
SLACK = 5.0
_SSH_TIMEOUT = 60.0


def instance(priority: int) -> Instance:
    """The virtual router as provision.sh writes it, for the lab's timing formulas."""
    return Instance(vrid=51, priority=priority, vips=(VIP,), advert_interval=0.2)


def _ssh_config() -> Path:
    """``vagrant ssh-config`` once, so each command is a plain ssh (about 0.1 s, not 2 s)."""
    path = Path(__file__).resolve().parent / ".vagrant" / "ssh-config"
    if not path.exists():
        out = subprocess.run(
            ["vagrant", "ssh-config", *NODES],
            capture_output=True,
            text=True,
            timeout=_SSH_TIMEOUT,
            check=True,
        ).stdout
        path.parent.mkdir(exist_ok=True)
        path.write_text(out)
    return path


def ssh(node: str, command: str) -> str:
    """Run ``command`` as root on ``node`` and return its output (raises on failure)."""
    result = subprocess.run(
        ["ssh", "-F", str(_ssh_config()), node, "sudo", "sh", "-c", f"'{command}'"],
        capture_output=True,
        text=True,
        timeout=_SSH_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise LabError(f"{node}: `{command}` failed: {result.stderr.strip()}")
    return result.stdout


def holders() -> set[str]:
    """The nodes whose kernel holds the VIP right now."""
    found = set()
    for node in NODES:
        if f" {VIP.ip}/" in ssh(node, "ip -o -4 addr show"):
            found.add(node)
    return found


def expect_holders(expected: set[str], timeout: float, what: str) -> float:
    """Wait until exactly ``expected`` hold the VIP; return the seconds it took."""
    started = time.monotonic()
    wait_for(lambda: holders() == expected, timeout, what=what, interval=0.2)
    took = time.monotonic() - started
    print(f"   ok: {what} after {took:.1f} s (allowed {timeout:.1f} s)")
    return took


def failover() -> None:
    print("failover: SIGKILL the master's agent; node2 takes over, systemd restarts node1")
    expect_holders({"node1"}, SLACK, "node1 alone holds the VIP")
    ssh("node1", "systemctl kill --signal=SIGKILL vrrp-agent")
    # The killed agent cannot remove its VIP; the restarted one does at start-up.
    limit = master_down_interval(instance(NODES["node2"])) + SLACK
    expect_holders({"node2"}, limit + 10.0, "node2 alone holds the VIP (node1 restarted)")
    expect_holders({"node1"}, 10.0 + SLACK, "node1 preempted node2 again")
    restarts = ssh("node1", "systemctl show -p NRestarts --value vrrp-agent").strip()
    print(f"   ok: systemd restarted node1's agent (NRestarts={restarts})")


def check_fault() -> None:
    print("check-fault: node1's check script fails; node1 goes FAULT and hands over")
    expect_holders({"node1"}, SLACK, "node1 alone holds the VIP")
    ssh("node1", "touch /run/vrrp-agent-fault")
    try:
        # FAULT sends priority 0: node2 takes over after its skew time, plus one check run.
        limit = 0.5 + skew_time(instance(NODES["node2"])) + SLACK
        expect_holders({"node2"}, limit, "node2 alone holds the VIP")
    finally:
        ssh("node1", "rm -f /run/vrrp-agent-fault")
    expect_holders({"node1"}, 0.5 + master_down_interval(instance(150)) + SLACK, "node1 back")


def split_brain() -> None:
    print("split-brain: node1 stops hearing VRRP; two masters; healing leaves one")
    expect_holders({"node1"}, SLACK, "node1 alone holds the VIP")
    # Drop VRRP both ways on node1: it keeps the VIP, and node2 stops hearing it.
    ssh(
        "node1",
        "nft add table inet vrrp_scenario && "
        "nft add chain inet vrrp_scenario in { type filter hook input priority 0 \\; } && "
        "nft add chain inet vrrp_scenario out { type filter hook output priority 0 \\; } && "
        "nft add rule inet vrrp_scenario in ip protocol vrrp drop && "
        "nft add rule inet vrrp_scenario out ip protocol vrrp drop",
    )
    try:
        limit = master_down_interval(instance(NODES["node2"])) + SLACK
        expect_holders({"node1", "node2"}, limit, "split brain: node1 and node2 both hold it")
    finally:
        ssh("node1", "nft delete table inet vrrp_scenario")
    # Healed: node2 hears the higher priority and yields at once (RFC 9568 §6.4.3).
    expect_holders({"node1"}, 1.0 + SLACK, "healed: node1 alone holds the VIP")


SCENARIOS: dict[str, Callable[[], None]] = {
    "failover": failover,
    "check-fault": check_fault,
    "split-brain": split_brain,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    args = parser.parse_args(argv)
    chosen = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    try:
        for name in chosen:
            SCENARIOS[name]()
    except LabError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print("all steps held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
