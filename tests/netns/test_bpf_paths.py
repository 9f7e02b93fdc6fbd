"""The agent's receive paths end to end (issue 3): fallback, kernel-only receive, tc mode.

What is asserted is what the agent and the kernel report: the agent's one ``receive path:``
line and the fallback warning before it, its shutdown summary (adverts handled in userspace
against adverts the eBPF program accepted and kept in the kernel), the tc filters the
node's kernel lists, VIP notifications from the kernel, and exit statuses.

"bcc unavailable" is a ``bcc`` package on the agent's ``PYTHONPATH`` that fails to import
(the loader child inherits the environment, as in tests/bpf/test_loader.py); "no privilege"
is ``setpriv`` removing CAP_BPF and CAP_SYS_ADMIN from the bounding and inheritable sets, so
the agent (root, but without those capabilities) keeps CAP_NET_RAW and CAP_NET_ADMIN.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence

import pytest

from agent.lab import Lab, Node
from agent.lab.runners import (
    AgentSpeaker,
    Instance,
    agent_command,
    agent_toml,
    master_down_interval,
    start_agent,
)
from tests.conftest import RECEIVE_PATHS, ReceivePath, bpf_unavailable

pytestmark = pytest.mark.netns

#: Allowed lateness on top of a protocol timer, as in tests/netns/test_agents.py.
MARGIN = 0.5
KERNEL_ONLY = RECEIVE_PATHS["bpf"]
USERSPACE = RECEIVE_PATHS["userspace"]
TC = ReceivePath(
    "tc",
    {"bpf": "required", "bpf_attach": "tc"},
    "receive path: userspace, with the eBPF tc ingress observer",
)
FALLBACK = ReceivePath("fallback", {"bpf": "auto"}, "receive path: userspace (eBPF unavailable)")
#: ``setpriv`` prefix: the agent runs without the capabilities that load BPF programs.
WITHOUT_BPF_PRIVILEGE = (
    "setpriv",
    "--bounding-set=-bpf,-sys_admin",
    "--inh-caps=-bpf,-sys_admin",
    "--",
)

_USERSPACE_SUMMARY = re.compile(
    r"(\S+): userspace received (\d+) advert\(s\), rejected (\d+) datagram\(s\)"
)
_KERNEL_SUMMARY = re.compile(
    r"eBPF: accepted (\d+) advert\(s\), (\d+) of them kept in the kernel; dropped (\d+)"
)


@pytest.fixture
def bpf_loads() -> None:
    """Tests that need the filter to load skip where this machine cannot load it."""
    reason = bpf_unavailable()
    if reason is not None:
        pytest.skip(reason)


def _instance(lab: Lab, priority: int, interval: float = 0.1) -> Instance:
    return Instance(
        vrid=51, priority=priority, vips=(lab.vip(),), advert_interval=interval, garp_master_delay=0
    )


def _hide_bcc(lab: Lab) -> tuple[str, ...]:
    """An ``env`` prefix under which ``import bcc`` fails, as on a host without python3-bpfcc."""
    shim = lab.workdir / "no-bcc"
    (shim / "bcc").mkdir(parents=True, exist_ok=True)
    (shim / "bcc" / "__init__.py").write_text("raise ImportError('No module named bcc')\n")
    return ("env", f"PYTHONPATH={shim}")


def _agent_argv(
    node: Node,
    instances: Sequence[Instance],
    options: Mapping[str, str],
    prefix: Sequence[str],
    tag: str,
) -> list[str]:
    config = node.lab.workdir / f"{tag}.toml"
    config.write_text(agent_toml(tuple(instances), global_options=options))
    return [*prefix, *agent_command(), "run", "--config", str(config)]


def _spawn(
    node: Node, instance: Instance, options: Mapping[str, str], prefix: Sequence[str], tag: str
) -> AgentSpeaker:
    """``start_agent`` with a command prefix (``env`` or ``setpriv``)."""
    argv = _agent_argv(node, [instance], options, prefix, tag)
    return AgentSpeaker(node, node.spawn(argv, name=tag), (instance,))


def _summary(agent: AgentSpeaker) -> tuple[int, tuple[int, int, int] | None]:
    """(adverts userspace handled, eBPF (accepted, kept in the kernel, dropped) or None)."""
    output = agent.output()
    handled = _USERSPACE_SUMMARY.findall(output)
    assert len(handled) == 1, f"{agent}: expected one userspace summary line:\n{output}"
    kernel = _KERNEL_SUMMARY.findall(output)
    assert len(kernel) <= 1
    if not kernel:
        return int(handled[0][1]), None
    accepted, kept, dropped = kernel[0]
    return int(handled[0][1]), (int(accepted), int(kept), int(dropped))


def _stop(agent: AgentSpeaker) -> None:
    agent.terminate()
    assert agent.proc.wait(10) == 0, agent.output()
    assert "Traceback" not in agent.output()


def _our_tc_filters(node: Node) -> list[dict[str, object]]:
    """Filters on eth0's clsact ingress named like ours (none when there is no clsact)."""
    out = node.run(["tc", "-j", "filter", "show", "dev", "eth0", "ingress"]).stdout
    return [
        entry
        for entry in json.loads(out or "[]")
        if entry.get("options", {}).get("bpf_name") == "vrrp_agent"
    ]


# -- fallback -----------------------------------------------------------------------------------


def test_auto_falls_back_to_userspace_says_why_and_still_fails_over(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip().ip
    master = _spawn(lab[0], _instance(lab, 200), FALLBACK.options, _hide_bcc(lab), "no-bcc")
    master.wait_state("MASTER", timeout=10)
    backup_cfg = _instance(lab, 100)
    backup = _spawn(lab[1], backup_cfg, FALLBACK.options, WITHOUT_BPF_PRIVILEGE, "no-cap-bpf")
    backup.wait_state("BACKUP", timeout=10)

    for agent, cause, why in (
        (master, "bcc_missing", "bcc is not importable"),
        (backup, "no_privilege", "CAP_BPF"),
    ):
        output = agent.output()
        warning = re.search(rf"WARNING eBPF filter unavailable \({cause}\): .*{why}", output)
        assert warning, f"{agent}: no fallback warning naming {cause}:\n{output}"
        FALLBACK.check(agent)
        assert output.index("receive path: ") > warning.start()
        assert "Traceback" not in output

    # The fallback is a working agent: the backup times the master from userspace.
    time.sleep(master_down_interval(backup_cfg) + 0.2)
    assert backup.states() == [("VI_1", "BACKUP")]
    killed = master.kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=5) - killed
    assert 2 * backup_cfg.advert_interval <= took_over
    assert took_over <= master_down_interval(backup_cfg) + MARGIN
    backup.wait_state("MASTER", timeout=1)
    _stop(backup)
    handled, kernel = _summary(backup)
    assert handled > 0, "the fallback received no adverts in userspace"
    assert kernel is None, "an agent without eBPF reported eBPF counters"


@pytest.mark.parametrize(
    ("hide", "why"),
    [
        (_hide_bcc, "bcc is not importable"),
        (lambda lab: WITHOUT_BPF_PRIVILEGE, "CAP_BPF"),
    ],
    ids=["bcc-missing", "no-privilege"],
)
def test_required_without_ebpf_is_one_clear_error(
    make_lab: Callable[[int], Lab], hide: Callable[[Lab], tuple[str, ...]], why: str
) -> None:
    lab = make_lab(1)
    node = lab[0]
    argv = _agent_argv(node, [_instance(lab, 255)], {"bpf": "required"}, hide(lab), "required")
    done = node.run(argv, check=False, timeout=60)
    assert done.returncode == 2, done.stderr  # agent/cli.py: a host problem at start-up
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith('error: bpf = "required"')
    assert why in errors[0]
    assert "receive path:" not in done.stderr
    assert not node.has_address(lab.vip())


# -- kernel-only receive (socket filter) ------------------------------------------------------


@pytest.mark.usefixtures("bpf_loads")
def test_kernel_only_backup_handles_almost_no_adverts_in_userspace(lab: Lab) -> None:
    """At a 10 ms interval, a kernel-only backup leaves hundreds of adverts in the kernel.

    A second backup with BPF off hears the same master at the same time: the control that
    shows the userspace counter counts (and how many adverts there were).
    """
    steady = 3.0
    interval = 0.01
    master = start_agent(lab[0], _instance(lab, 200, interval), global_options=KERNEL_ONLY.options)
    master.wait_state("MASTER", timeout=10)
    kernel_only = start_agent(
        lab[1], _instance(lab, 100, interval), global_options=KERNEL_ONLY.options
    )
    control = start_agent(lab[2], _instance(lab, 90, interval), global_options=USERSPACE.options)
    kernel_only.wait_state("BACKUP", timeout=10)
    control.wait_state("BACKUP", timeout=10)
    KERNEL_ONLY.check(master, kernel_only)
    USERSPACE.check(control)
    time.sleep(steady)
    _stop(kernel_only)
    _stop(control)
    # Neither backup saw the master go away (a late advert would have made it take over).
    assert kernel_only.states() == control.states() == [("VI_1", "BACKUP"), ("VI_1", "INITIALIZE")]

    handled, kernel = _summary(kernel_only)
    assert kernel is not None
    accepted, kept, dropped = kernel
    heard, _ = _summary(control)
    # Roughly one advert per 10 ms reached each backup (a busy master may send a few late).
    assert heard >= 0.5 * steady / interval
    assert kept >= 0.5 * steady / interval
    # Only what changes something reaches the socket: the first advert of the new master.
    assert handled <= 5, f"{handled} adverts handled in userspace, {kept} kept in the kernel"
    assert accepted >= kept + handled - 1  # -1: the two counters are read one after the other
    assert dropped == 0


@pytest.mark.usefixtures("bpf_loads")
def test_kernel_only_backup_takes_over_in_bound_after_kill_9(
    make_lab: Callable[[int], Lab],
) -> None:
    """Failover times from the kernel's peer map, two crashes in a row at 100 ms."""
    lab = make_lab(2)
    vip = lab.vip().ip
    backup_cfg = _instance(lab, 100)
    master = start_agent(lab[0], _instance(lab, 150), global_options=KERNEL_ONLY.options)
    master.wait_state("MASTER", timeout=10)
    backup = start_agent(lab[1], backup_cfg, global_options=KERNEL_ONLY.options)
    backup.wait_state("BACKUP", timeout=10)
    KERNEL_ONLY.check(master, backup)
    for trial in range(2):
        # Steady state: the master's adverts have been kept in the kernel for a while.
        time.sleep(master_down_interval(backup_cfg) + 0.2)
        assert backup.state() == "BACKUP", trial
        killed = master.kill()
        took_over = lab[1].wait_address(vip, since=killed, timeout=5) - killed
        assert 2 * backup_cfg.advert_interval <= took_over, trial
        assert took_over <= master_down_interval(backup_cfg) + MARGIN, trial
        backup.wait_state("MASTER", timeout=1)
        # The restarted master preempts: as Master, the backup still hears better adverts.
        master = start_agent(lab[0], _instance(lab, 150), global_options=KERNEL_ONLY.options)
        master.wait_state("MASTER", timeout=10)
        backup.wait_state("BACKUP", timeout=5)
    assert [state for _, state in backup.states()] == ["BACKUP", *["MASTER", "BACKUP"] * 2]


# -- tc observer ----------------------------------------------------------------------------


@pytest.mark.usefixtures("bpf_loads")
def test_tc_observer_fails_over_detaches_on_exit_and_removes_a_stale_filter(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip().ip
    backup_cfg = _instance(lab, 100)
    master = start_agent(lab[0], _instance(lab, 200), global_options=TC.options)
    master.wait_state("MASTER", timeout=10)
    backup = start_agent(lab[1], backup_cfg, global_options=TC.options)
    backup.wait_state("BACKUP", timeout=10)
    TC.check(master, backup)
    assert [len(_our_tc_filters(node)) for node in lab.nodes] == [1, 1]

    time.sleep(master_down_interval(backup_cfg) + 0.2)
    assert backup.states() == [("VI_1", "BACKUP")]
    killed = master.kill()
    took_over = lab[1].wait_address(vip, since=killed, timeout=5) - killed
    assert 2 * backup_cfg.advert_interval <= took_over
    assert took_over <= master_down_interval(backup_cfg) + MARGIN
    backup.wait_state("MASTER", timeout=1)
    # A tc filter outlives its process: kill -9 leaves ours behind ...
    assert len(_our_tc_filters(lab[0])) == 1

    # ... and the next start removes it before adding its own.
    restarted = start_agent(lab[0], _instance(lab, 200), global_options=TC.options)
    restarted.proc.wait_for_output(r"eth0: removed 1 stale eBPF tc filter\(s\)", timeout=10)
    restarted.wait_state("MASTER", timeout=10)
    backup.wait_state("BACKUP", timeout=5)
    assert len(_our_tc_filters(lab[0])) == 1

    _stop(backup)
    assert _our_tc_filters(lab[1]) == [], "SIGTERM left our tc filter behind"
    # The agent added the clsact qdisc there, and nothing else uses it: that goes too.
    assert "clsact" not in lab[1].run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
    # The observer passes everything on: userspace handled the adverts the program counted,
    # and nothing was kept in the kernel.
    handled, kernel = _summary(backup)
    assert kernel is not None
    accepted, kept, _ = kernel
    assert kept == 0
    assert handled > 0
    # (+3: adverts that arrived between the two reads at shutdown, or sat in the queue.)
    assert handled <= accepted <= handled + 3
    _stop(restarted)
    assert _our_tc_filters(lab[0]) == []
