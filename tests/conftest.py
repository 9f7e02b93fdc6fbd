"""Shared pytest wiring: skip what this machine cannot run, and labs that always tear down."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lab.runners import AgentSpeaker


@cache
def _netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "dumpcap", "tshark"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} on PATH"
    try:
        subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` is unusable here: {exc}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    netns_reason = _netns_unavailable()
    keepalived_missing = shutil.which("keepalived") is None
    for item in items:
        if netns_reason and item.get_closest_marker("netns"):
            item.add_marker(pytest.mark.skip(reason=netns_reason))
        if keepalived_missing and item.get_closest_marker("keepalived"):
            item.add_marker(pytest.mark.skip(reason="needs the keepalived binary"))


_LABS = pytest.StashKey[list[Lab]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """When a test that built labs fails, attach the tails of the labs' process logs."""
    report: pytest.TestReport = yield
    if report.failed:
        for lab in item.stash.get(_LABS, []):
            for log in sorted(lab.workdir.glob("*.log")):
                report.sections.append((f"lab log {log}", log.read_text(errors="replace")[-3000:]))
    return report


@pytest.fixture
def make_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], Lab]]:
    """Build labs of N nodes; all are torn down after the test, whatever happened.

    Logs, configs and captures go to the test's tmp_path, which pytest keeps for the last
    few runs: that is where to look after a failure.
    """
    labs = request.node.stash.setdefault(_LABS, [])
    with contextlib.ExitStack() as stack:

        def make(nodes: int = 3) -> Lab:
            lab = stack.enter_context(Lab(nodes, workdir=tmp_path / f"lab{len(labs)}"))
            labs.append(lab)
            return lab

        yield make


@pytest.fixture
def lab(make_lab: Callable[[int], Lab]) -> Lab:
    """A three-node lab."""
    return make_lab(3)


# -- receive paths: the namespace tests run with the eBPF filter on and off ---------------------

#: Run in a child: load the filter the agent's way and print the outcome. A child, because
#: the loader caches one filter per process and the BPF tests' session fixture owns it.
_PROBE_FILTER = """
import json
from agent.host.bpf import BpfUnavailable, load_filter
try:
    load_filter()
except BpfUnavailable as error:
    print(json.dumps([str(error.cause), str(error)]))
else:
    print(json.dumps(["loaded", ""]))
"""

#: Causes that mean "this machine cannot load BPF", not "the program is broken"; any other
#: failure is left to the agent (``bpf = "required"``), whose start then fails the test.
_MACHINE_CAUSES = {"bcc_missing", "headers_missing", "no_privilege"}


@cache
def bpf_unavailable() -> str | None:
    """Why the eBPF filter cannot load on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "loading the eBPF filter needs root (CAP_BPF)"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_FILTER],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        cause, message = json.loads(done.stdout.splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        return f"could not probe the eBPF filter: {error}"
    return f"{message} [{cause}]" if cause in _MACHINE_CAUSES else None


@dataclass(frozen=True, slots=True)
class ReceivePath:
    """How an agent receives adverts: the ``[global]`` settings and the line it must log."""

    name: str
    options: Mapping[str, str]
    #: The start of the agent's one ``receive path: ...`` line (agent/daemon.py).
    announced: str

    def check(self, *agents: AgentSpeaker) -> None:
        """Each agent really runs this path (not a silent fallback to another one)."""
        for agent in agents:
            lines = [line for line in agent.output().splitlines() if "receive path: " in line]
            assert len(lines) == 1, f"{agent}: expected one receive-path line, got {lines}"
            assert self.announced in lines[0], f"{agent}: {lines[0]!r}"


#: ``required``, not ``auto``: a filter that fails to load must fail the test, not quietly
#: turn the BPF variant into a second run of the userspace one.
RECEIVE_PATHS = {
    "bpf": ReceivePath(
        "bpf",
        {"bpf": "required", "bpf_attach": "socket"},
        "receive path: eBPF socket filter, kernel-only",
    ),
    "userspace": ReceivePath("userspace", {"bpf": "off"}, "receive path: userspace (bpf = off)"),
}


@pytest.fixture(params=list(RECEIVE_PATHS), ids=list(RECEIVE_PATHS))
def receive_path(request: pytest.FixtureRequest) -> ReceivePath:
    """The agent's receive path (issue 3: the namespace tests run with BPF on and off).

    Pass ``receive_path.options`` as ``start_agent(..., global_options=...)``. The ``bpf``
    variant is the default socket attachment in kernel-only mode, where steady-state
    adverts never reach userspace; it is skipped when this machine cannot load the filter.
    A test may narrow the variants with ``@pytest.mark.parametrize("receive_path", [...],
    indirect=True)``.
    """
    path = RECEIVE_PATHS[request.param]
    if path.name == "bpf":
        reason = bpf_unavailable()
        if reason is not None:
            pytest.skip(reason)
    return path
