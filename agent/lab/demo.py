"""``make demo``: three agents on a namespace lab, an election, a crash, a return, a handover.

Every number printed is measured from real events: the moment a signal was sent, and the moment
the kernel announced the VIP on the new master (RTM_NEWADDR seen by the node's address
monitor). The expected bounds printed next to them come from the RFC timers (protocol.md §5).
"""

from __future__ import annotations

import time
from dataclasses import replace

from agent.lab.netns import Lab, LabError
from agent.lab.runners import (
    AgentSpeaker,
    Instance,
    master_down_interval,
    skew_time,
    start_agent,
)

PRIORITIES = (150, 100, 50)
#: 100 ms adverts: failover fast enough to watch, slow enough to be robust on a busy 2-core box.
INTERVAL = 0.1
#: Scheduling slack allowed on top of the protocol bound before a step counts as failed.
MARGIN = 0.5

_t0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _t0:7.3f}s] {message}", flush=True)


class StepFailed(Exception):
    """A demo step did not behave as the protocol says it must."""


def holders(lab: Lab, instance: Instance) -> list[str]:
    vip = instance.vips[0].ip
    return [node.name for node in lab.nodes if node.has_address(vip)]


def check(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def run_demo() -> int:
    """Run all steps; return 0 when every step met its bound, 1 otherwise."""
    say("building a lab: 3 node namespaces on one bridge (nothing touches the root namespace)")
    try:
        with Lab(3) as lab:
            say(f"lab {lab.uid}: subnet {lab.network}, logs in {lab.workdir}")
            _steps(lab)
        say("lab torn down: processes killed, namespaces deleted")
    except (StepFailed, LabError) as exc:
        say(f"FAILED: {exc}")
        return 1
    say("demo complete: all steps within their bounds")
    return 0


def _steps(lab: Lab) -> None:
    base = Instance(vrid=51, priority=100, vips=(lab.vip(),), version=3, advert_interval=INTERVAL)
    configs = [replace(base, priority=p) for p in PRIORITIES]
    vip = base.vips[0].ip
    for node, config in zip(lab.nodes, configs, strict=True):
        say(f"  {node.name}  {node.ip}  priority {config.priority}")
    say(f"VRRPv3, VRID {base.vrid}, advert interval {INTERVAL * 1000:.0f} ms, VIP {base.vips[0]}")

    # 1. Election (RFC 9568 §6.4.1, §6.4.2): the highest priority becomes master.
    started = time.monotonic()
    agents: list[AgentSpeaker] = [
        start_agent(node, config) for node, config in zip(lab.nodes, configs, strict=True)
    ]
    elected = agents[0].wait_state("MASTER", timeout=10)
    lab[0].wait_address(vip, since=started, timeout=5)
    for agent in agents[1:]:
        agent.wait_state("BACKUP", timeout=5)
    check(holders(lab, base) == [lab[0].name], f"VIP held by {holders(lab, base)}")
    say(
        f"1. election: {lab[0].name} (priority 150) is MASTER and alone holds {vip} "
        f"({elected - started:.2f} s after start, incl. process start-up)"
    )

    # 2. Crash: kill -9, no goodbye. The best backup waits Master_Down_Interval.
    bound = master_down_interval(configs[1])
    say(
        f"2. kill -9 {lab[0].name} (expect takeover by {lab[1].name} within "
        f"3 x {INTERVAL} + skew {skew_time(configs[1]):.3f} = {bound:.3f} s)"
    )
    killed = agents[0].kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=bound + 5)
    failover = took_over - killed
    say(f"   {lab[1].name} holds {vip} after {failover * 1000:.0f} ms (measured: kill -> VIP)")
    check(failover <= bound + MARGIN, f"crash failover took {failover:.3f} s > {bound + MARGIN}")
    check(lab[0].has_address(vip), "the killed master's VIP should still be there (stale)")
    say(f"   {lab[0].name} still carries a stale {vip}: nobody removed it when it died")

    # 3. Return: startup removes the stale VIP, then preemption (RFC 9568 §6.4.2).
    say(f"3. restart the agent on {lab[0].name}")
    restarted = time.monotonic()
    agents[0] = start_agent(lab[0], configs[0])
    removed = lab[0].wait_address(vip, added=False, since=restarted, timeout=10)
    say(f"   stale {vip} removed at start-up ({removed - restarted:.2f} s after launch)")
    back = lab[0].wait_address(vip, since=removed, timeout=5)
    lab[1].wait_address(vip, added=False, since=removed, timeout=5)
    agents[1].wait_state("BACKUP", timeout=5)
    say(f"   {lab[0].name} preempted {lab[1].name}: MASTER again {back - removed:.3f} s later")
    check(holders(lab, base) == [lab[0].name], f"VIP held by {holders(lab, base)}")

    # 4. Graceful stop: priority-0 advert, the backup waits only Skew_Time (RFC 9568 §6.4.3).
    skew = skew_time(configs[1])
    say(
        f"4. SIGTERM {lab[0].name}: it sends priority 0, so {lab[1].name} should take over "
        f"after only the skew, {skew * 1000:.0f} ms"
    )
    stopped = agents[0].terminate()
    took_over = lab[1].wait_address(vip, since=stopped, timeout=5)
    handover = took_over - stopped
    code = agents[0].proc.wait(5)
    say(
        f"   {lab[1].name} holds {vip} after {handover * 1000:.0f} ms (measured: SIGTERM -> VIP); "
        f"old master exited with {code}"
    )
    check(code == 0, f"agent exited with {code} on SIGTERM")
    check(not lab[0].has_address(vip), "the stopped master left its VIP behind")
    check(handover <= skew + MARGIN, f"graceful handover took {handover:.3f} s")
    check(holders(lab, base) == [lab[1].name], f"VIP held by {holders(lab, base)}")
    say(
        f"summary: crash failover {failover * 1000:.0f} ms (protocol {bound * 1000:.0f} ms), "
        f"graceful handover {handover * 1000:.0f} ms (protocol {skew * 1000:.0f} ms)"
    )


def main() -> int:
    try:
        return run_demo()
    except KeyboardInterrupt:
        say("interrupted: lab torn down")
        return 130
