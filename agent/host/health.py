"""Health tracking on the host: check scripts, TCP checks and links, fed into the routers.

The arithmetic is pure (:mod:`agent.core.tracking`); this module runs the checks
(:mod:`agent.host.scripts`), listens to link events (:mod:`agent.host.netlink`) and, on
every change of a verdict, recomputes each affected instance's fault causes and effective
priority and hands them to its :class:`~agent.host.driver.RouterDriver`. A check result
only ever *enqueues* an input to the protocol; no script can delay an advert or a timer.

Fault causes are named after what failed ("script chk_web", "tcp port 80",
"link eth0"), so the transition log says why a node left the election.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address

from agent.config import AgentConfig, InstanceConfig
from agent.core.tracking import Hysteresis, TrackedState, effective_priority
from agent.host.driver import RouterDriver
from agent.host.scripts import CheckRunner, CheckScript, TcpCheck

log = logging.getLogger("agent")


#: Upper bounds (seconds) of the check-duration histogram buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DurationHistogram:
    """Cumulative bucket counts of check durations, for the metrics histogram."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        for index, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
        self.counts[-1] += 1

    def as_dict(self) -> dict[str, object]:
        return {"le": list(DURATION_BUCKETS), "counts": list(self.counts), "sum": self.total}


@dataclass(frozen=True, slots=True)
class _Tracked:
    """One thing an instance follows: its fault cause, weight and verdict source."""

    cause: str
    weight: int
    #: Key into :attr:`HealthTracker._verdicts`.
    source: str


class HealthTracker:
    """Runs every check of the configuration and keeps the routers' health current."""

    def __init__(
        self,
        config: AgentConfig,
        drivers: Mapping[str, RouterDriver],
        primary_addresses: Mapping[str, IPv4Address],
        link_states: Mapping[str, bool],
        on_priority: Callable[[RouterDriver], None] | None = None,
        previous: HealthTracker | None = None,
    ) -> None:
        """``drivers`` and ``primary_addresses`` are keyed by instance name;
        ``link_states`` holds the initial up/down of every tracked interface;
        ``on_priority`` hears of every change of an effective priority (the eBPF filter
        must know our priority to decide which adverts reset the master-down timer).

        On a reload, ``previous`` is the tracker being replaced: a check whose definition
        did not change keeps its verdict and rise/fall progress, so reloading an
        unchanged configuration moves no instance in or out of FAULT."""
        self._drivers = drivers
        self._on_priority = on_priority
        self._verdicts: dict[str, bool] = {}
        self._hysteresis: dict[str, Hysteresis] = {}
        self._tracked: dict[str, list[_Tracked]] = {}
        self._runners: dict[str, CheckRunner] = {}
        checks: list[CheckScript | TcpCheck] = list(config.check_scripts().values())
        for instance in config.instances:
            tracked = self._tracked.setdefault(instance.name, [])
            for script in instance.track_scripts:
                tracked.append(_Tracked(f"script {script.name}", script.weight, script.name))
            tcp = instance.tcp_check(primary_addresses[instance.name])
            if tcp is not None:
                checks.append(tcp)
                tracked.append(_Tracked(f"tcp port {tcp.port}", 0, tcp.name))
            for interface in instance.tracked_interfaces:
                source = f"link {interface.name}"
                tracked.append(_Tracked(source, interface.weight, source))
                self._verdicts[source] = link_states.get(interface.name, False)
        self._checks: dict[str, CheckScript | TcpCheck] = {}
        self.durations: dict[str, DurationHistogram] = {}
        for check in checks:
            self._checks[check.name] = check
            if previous is not None and previous._checks.get(check.name) == check:
                self._verdicts[check.name] = previous._verdicts[check.name]
                self._hysteresis[check.name] = previous._hysteresis[check.name]
                self.durations[check.name] = previous.durations[check.name]
            else:
                # Checks start up, as keepalived's do: no evidence of failure yet.
                self._verdicts[check.name] = True
                self._hysteresis[check.name] = Hysteresis(rise=check.rise, fall=check.fall)
                self.durations[check.name] = DurationHistogram()
            self._runners[check.name] = CheckRunner(check, self._on_check_result)

    @property
    def runners(self) -> tuple[CheckRunner, ...]:
        """The check runners, for their counters (metrics, status)."""
        return tuple(self._runners.values())

    def apply_initial_state(self) -> None:
        """Give every router its starting fault causes and priority (before it starts),
        so that an instance whose link is down at boot never takes part in an election."""
        for name in self._tracked:
            self._refresh(name)

    def start(self) -> None:
        for runner in self._runners.values():
            runner.start()

    async def aclose(self) -> None:
        """Stop every check and reap whatever is still running."""
        await asyncio.gather(*(runner.aclose() for runner in self._runners.values()))

    def link_changed(self, ifname: str, up: bool) -> None:
        """A netlink link event; only interfaces some instance tracks matter."""
        source = f"link {ifname}"
        if source not in self._verdicts or self._verdicts[source] == up:
            return
        log.log(logging.INFO if up else logging.WARNING, "%s: link %s", ifname,
                "up" if up else "down")  # fmt: skip
        self._verdicts[source] = up
        self._refresh_tracking(source)

    def check_status(self) -> list[dict[str, object]]:
        """Every check's verdict and counters, as the status contract describes."""
        return [
            {
                "name": runner.check.name,
                "kind": "tcp" if isinstance(runner.check, TcpCheck) else "script",
                "up": self._verdicts[runner.check.name],
                "runs": runner.counters.runs,
                "failures": runner.counters.failures,
                "timeouts": runner.counters.timeouts,
                "skipped": runner.counters.skipped,
                "last_duration_seconds": runner.counters.last_duration,
                "last_exit": runner.counters.last_exit,
                "duration_buckets": self.durations[runner.check.name].as_dict(),
            }
            for runner in self._runners.values()
        ]

    def _on_check_result(self, name: str, ok: bool, detail: str) -> None:
        duration = self._runners[name].counters.last_duration
        if duration is not None:
            self.durations[name].observe(duration)
        if not self._hysteresis[name].record(ok):
            return
        self._verdicts[name] = ok
        log.log(
            logging.INFO if ok else logging.WARNING,
            "check %s: %s (%s)",
            name,
            "passing" if ok else "failing",
            detail,
        )
        self._refresh_tracking(name)

    def _refresh_tracking(self, source: str) -> None:
        for instance, tracked in self._tracked.items():
            if any(item.source == source for item in tracked):
                self._refresh(instance)

    def _refresh(self, instance: str) -> None:
        driver = self._drivers[instance]
        tracked = self._tracked[instance]
        for item in tracked:
            if item.weight == 0:
                driver.update(partial(driver.router.set_fault, item.cause, not self._up(item)))
        priority = effective_priority(
            driver.router.config.priority,
            [TrackedState(item.weight, self._up(item)) for item in tracked if item.weight],
        )
        if priority != driver.router.priority:
            driver.update(partial(driver.router.set_priority, priority))
            log.info("%s: effective priority %d", instance, priority)
            if self._on_priority is not None:
                self._on_priority(driver)

    def _up(self, item: _Tracked) -> bool:
        return self._verdicts[item.source]


def tracked_interface_names(instances: tuple[InstanceConfig, ...]) -> set[str]:
    """Every interface some instance follows, for the initial link-state lookup."""
    return {tracked.name for instance in instances for tracked in instance.tracked_interfaces}
