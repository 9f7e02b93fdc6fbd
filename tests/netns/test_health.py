"""Check scripts, the TCP check, fault and link tracking, weights: real agents on a bridge.

Issue 4's namespace tests. A check is made to fail by removing the file it tests for (or
stopping the TCP listener it connects to, or taking the link down), and every bound is the
sum of the timers that must run out: ``fall`` (or ``rise``) check intervals plus one more
for the phase of the tick, then RFC 9568 §6.4.2 Skew_Time after a priority-0 advert or
Master_Down_Interval without one, plus a scheduling margin. Times are taken from real
events: the instant the test broke something and the kernel's RTM_NEWADDR of the VIP on the
new master, or capture timestamps on the wire.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lab import Lab, Node, Proc, wait_for
from agent.lab.pcap import frames
from agent.lab.runners import AgentSpeaker
from tests.conftest import ReceivePath
from tests.netns.healthkit import (
    ADVERT,
    MARGIN,
    Flag,
    assert_stays,
    config_toml,
    holders,
    master_down,
    record_time,
    shell_script,
    skew,
    start,
    transitions,
)

pytestmark = pytest.mark.netns

CHECK_INTERVAL = 0.2


def _instance(lab: Lab, priority: int, **keys: object) -> dict[str, object]:
    return {"name": "VI_1", "vrid": 51, "priority": priority, "vips": [str(lab.vip())], **keys}


def _check(flag: Flag, **keys: object) -> dict[str, object]:
    return {"name": "chk", "path": str(flag.script), "interval": CHECK_INTERVAL, **keys}


def _start_pair(lab: Lab, master_toml: str, backup_toml: str) -> tuple[AgentSpeaker, AgentSpeaker]:
    """Start the master-to-be first, so the election has one outcome and every node's
    transition list is exactly predictable, then the backup."""
    master = start(lab[0], "n0", master_toml)
    master.wait_state("MASTER", timeout=10)
    backup = start(lab[1], "n1", backup_toml)
    backup.wait_state("BACKUP", timeout=10)
    assert holders(lab, lab.vip()) == [0]
    return master, backup


def test_failing_check_on_master_moves_vip_and_recovery_takes_it_back(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    flag = Flag(lab, "chk")
    fall, rise = 2, 2
    master, backup = _start_pair(
        lab,
        config_toml(
            [_instance(lab, 150, track_scripts=["chk"])],
            scripts=[_check(flag, fall=fall, rise=rise)],
        ),
        config_toml([_instance(lab, 100)]),
    )

    with lab.capture() as capture:
        failed = flag.fail()
        took_over = lab[1].wait_address(vip.ip, since=failed, timeout=5)
        released = lab[0].wait_address(vip.ip, added=False, since=failed, timeout=1)
        master.wait_state("FAULT", timeout=1)
        # `fall` failed runs, one more interval for the phase of the tick, then the
        # backup's Skew_Time after the priority-0 advert the faulted master sends.
        bound = (fall + 1) * CHECK_INTERVAL + skew(100) + MARGIN
        assert took_over - failed <= bound
        # Not before `fall` failures: a single failed run must not move the VIP.
        assert took_over - failed >= (fall - 1) * CHECK_INTERVAL
        record_time(
            "check_script_failure_to_takeover",
            took_over - failed,
            fall=fall,
            check_interval=CHECK_INTERVAL,
            advert_interval=ADVERT,
            backup_priority=100,
            bound=round(bound, 3),
        )
        record_time("fault_vip_removed_to_backup_vip_added", took_over - released)
        assert re.search(r"VI_1: MASTER -> FAULT \(script chk\)", master.output())

        # Recovery: `rise` passing runs, then a backup that preempts the lower master
        # after its Master_Down_Interval (RFC 9568 §6.4.2).
        passed = flag.pass_()
        back = lab[0].wait_address(vip.ip, since=passed, timeout=5)
        lab[1].wait_address(vip.ip, added=False, since=passed, timeout=2)
        assert back - passed <= (rise + 1) * CHECK_INTERVAL + master_down(150) + MARGIN
        record_time("check_script_recovery_to_vip_back", back - passed, rise=rise)
        master.wait_state("MASTER", timeout=1)
        backup.wait_state("BACKUP", timeout=1)

    assert transitions(master) == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    assert transitions(backup) == ["BACKUP", "MASTER", "BACKUP"]
    assert holders(lab, vip) == [0]
    # Entering FAULT releases mastership like a shutdown (RFC 9568 §6.4.3): a priority-0
    # advert, and the backup takes over after its Skew_Time, as its own log says.
    assert re.search(
        r"VI_1: BACKUP -> MASTER \(master \S+ released \(priority 0\)", backup.output()
    )
    n0, n1 = str(lab[0].ip), str(lab[1].ip)
    goodbye = frames(capture.path, f"vrrp && ip.src == {n0} && vrrp.prio == 0")
    assert goodbye, "the faulted master sent no priority-0 advert"
    first = frames(capture.path, f"vrrp && ip.src == {n1} && frame.time_epoch > {goodbye[0].time}")
    assert first, "the backup never advertised after the priority-0 advert"
    record_time("priority0_to_backup_first_advert_on_wire", first[0].time - goodbye[0].time)
    assert first[0].time - goodbye[0].time <= skew(100) + 0.25


def test_backup_with_failing_check_goes_fault_and_stays_out_of_the_election(
    lab: Lab,
) -> None:
    vip = lab.vip()
    flag = Flag(lab, "chk")
    master = start(lab[0], "n0", config_toml([_instance(lab, 150)]))
    master.wait_state("MASTER", timeout=10)
    faulty = start(
        lab[1],
        "n1",
        config_toml([_instance(lab, 100, track_scripts=["chk"])], scripts=[_check(flag)]),
    )
    low = start(lab[2], "n2", config_toml([_instance(lab, 50)]))
    faulty.wait_state("BACKUP", timeout=10)
    low.wait_state("BACKUP", timeout=10)

    failed = flag.fail()
    faulted = faulty.wait_state("FAULT", timeout=2 * CHECK_INTERVAL + MARGIN)
    assert re.search(r"VI_1: BACKUP -> FAULT \(script chk\)", faulty.output())
    record_time("backup_check_failure_to_fault_logged", faulted - failed)

    with lab.capture() as capture:
        # The master dies (kill -9: no priority-0 advert). The faulted node has the best
        # remaining priority but takes no part in the election: the lowest one wins after
        # its own Master_Down_Interval.
        killed = master.kill()
        took_over = lab[2].wait_address(vip.ip, since=killed, timeout=5)
        assert took_over - killed <= master_down(50) + MARGIN
        record_time("master_killed_to_takeover_past_faulted_backup", took_over - killed)
        low.wait_state("MASTER", timeout=1)
        assert_stays(faulty, 4 * master_down(50))
    assert transitions(faulty) == ["BACKUP", "FAULT"]
    assert not lab[1].has_address(vip)
    # In FAULT it sends nothing at all (RFC 9568 §6.4.2 roles only: it is neither).
    n1 = str(lab[1].ip)
    assert frames(capture.path, f"vrrp && ip.src == {n1}") == []
    assert frames(capture.path, f"vrrp && ip.src == {lab[2].ip}"), "no adverts from n2"

    # Recovery: back to BACKUP, then it preempts the lower-priority master.
    passed = flag.pass_()
    back = lab[1].wait_address(vip.ip, since=passed, timeout=5)
    assert back - passed <= 2 * CHECK_INTERVAL + master_down(100) + MARGIN
    lab[2].wait_address(vip.ip, added=False, since=passed, timeout=2)
    assert transitions(faulty) == ["BACKUP", "FAULT", "BACKUP", "MASTER"]


LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(64)
print("listening", flush=True)
while True:
    conn, peer = server.accept()
    print("accepted", peer[0], flush=True)
    conn.close()
"""
PORT = 8080


def _listener(node: Node, name: str) -> Proc:
    proc = node.spawn([sys.executable, "-u", "-c", LISTENER, str(PORT)], name=name)
    proc.wait_for_output(r"^listening$", timeout=10)
    return proc


def _accepted(proc: Proc) -> list[str]:
    return re.findall(r"^accepted (\S+)$", proc.output(), re.MULTILINE)


def test_default_tcp_check_follows_the_listener_and_port_zero_runs_none(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    listener = _listener(lab[0], "listener-n0")
    # The backup listens on the same port but has monitor_port = 0: nothing may connect.
    idle = _listener(lab[1], "listener-n1")
    tcp = {"monitor_port": PORT, "monitor_interval": CHECK_INTERVAL}
    master, backup = _start_pair(
        lab,
        config_toml([_instance(lab, 150, **tcp)]),
        config_toml([_instance(lab, 100, monitor_port=0)]),
    )
    # The check connects to the node's own primary address (not the VIP, not loopback).
    wait_for(lambda: len(_accepted(listener)) >= 2, 2, what="the TCP check to connect")
    assert set(_accepted(listener)) == {str(lab[0].ip)}

    stopped = listener.kill()
    took_over = lab[1].wait_address(vip.ip, since=stopped, timeout=5)
    # fall 1: the next tick (at most one interval away) is refused at once.
    assert took_over - stopped <= 2 * CHECK_INTERVAL + skew(100) + MARGIN
    record_time("tcp_check_listener_stopped_to_takeover", took_over - stopped)
    master.wait_state("FAULT", timeout=1)
    assert re.search(rf"VI_1: MASTER -> FAULT \(tcp port {PORT}\)", master.output())

    listener = _listener(lab[0], "listener-n0-again")
    restarted = time.monotonic()
    back = lab[0].wait_address(vip.ip, since=restarted, timeout=5)
    assert back - restarted <= 2 * CHECK_INTERVAL + master_down(150) + MARGIN
    record_time("tcp_check_listener_restarted_to_vip_back", back - restarted)
    lab[1].wait_address(vip.ip, added=False, since=restarted, timeout=2)
    master.wait_state("MASTER", timeout=1)
    assert transitions(master) == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    assert _accepted(listener), "the recovered check never connected"

    # monitor_port = 0: over the whole test (dozens of check intervals) no connection.
    assert _accepted(idle) == []
    assert transitions(backup) == ["BACKUP", "MASTER", "BACKUP"]
    assert "check" not in backup.output()


def _processes_with(token: bytes) -> list[int]:
    """Pids whose command line contains ``token`` (the pid namespace is shared with the
    lab nodes, so this is every node's process table)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile
    return found


def _zombie_children(parent: int) -> list[int]:
    zombies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == parent:
            zombies.append(int(entry.name))
    return zombies


def test_hanging_check_is_killed_at_its_timeout_and_adverts_keep_their_timing(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    hang = lab.workdir / "hang.on"
    hang.touch()
    # Unique sleep lengths mark this test's processes in the shared process table. The
    # grandchild ignores SIGTERM: only the SIGKILL to the whole group can end it.
    token = f"31{int(lab.uid, 16) % 10**6}.5"
    script = shell_script(
        lab.workdir / "hang.sh",
        f'if [ -e "{hang}" ]; then\n'
        f"    sh -c 'trap \"\" TERM; exec sleep {token}' &\n"
        f"    sleep {token}\n"
        "fi\n",
    )
    timeout, interval = 0.3, 0.5
    # weight -10: a failure lowers 150 to 140, still above the backup's 100, so the hang is
    # visible on the wire but must move nothing.
    master, backup = _start_pair(
        lab,
        config_toml(
            [_instance(lab, 150, track_scripts=[{"name": "hang", "weight": -10}])],
            scripts=[
                {"name": "hang", "path": str(script), "interval": interval, "timeout": timeout}
            ],
        ),
        config_toml([_instance(lab, 100)]),
    )
    agent_pid = master.proc.pid  # `ip netns exec` execs the agent: same pid
    marker = f"sleep\0{token}".encode()

    with lab.capture() as capture:
        window = time.monotonic()
        lifetimes = []
        for _run in range(3):
            appeared = wait_for(lambda: len(_processes_with(marker)) == 2, 2, what="a hung run")
            gone = wait_for(lambda: not _processes_with(marker), 2, what="the run to be killed")
            lifetimes.append(gone - appeared)
        assert max(lifetimes) <= timeout + MARGIN, lifetimes
        record_time("hung_check_lifetime_max", max(lifetimes), timeout=timeout)
        assert re.search(r"check hang: FAILED: timed out after 0\.\d s", master.output())
        assert re.search(r"VI_1: effective priority 140", master.output())
        # A few more cycles of hanging: nobody moves.
        assert_stays(backup, 1.0)
        hang.unlink()
        wait_for(lambda: "effective priority 150" in master.output(), 3, what="the check to pass")
        window_end = time.monotonic()
    assert _processes_with(marker) == []
    assert _processes_with(str(script).encode()) == []
    assert _zombie_children(agent_pid) == []
    assert transitions(master) == ["BACKUP", "MASTER"]
    assert transitions(backup) == ["BACKUP"]

    # A shutdown in the middle of a hung run kills it too (no grace period, nothing left).
    hang.touch()
    wait_for(lambda: len(_processes_with(marker)) == 2, 2, what="another hung run")
    stopped = master.terminate()
    assert master.proc.wait(5) == 0
    record_time("shutdown_during_hung_check", time.monotonic() - stopped)
    assert _processes_with(marker) == []
    assert _processes_with(str(script).encode()) == []

    adverts = frames(capture.path, f"vrrp && ip.src == {lab[0].ip}", ["vrrp.prio"])
    priorities = [int(a["vrrp.prio"]) for a in adverts]
    assert 140 in priorities, priorities
    assert priorities[-1] == 150, priorities
    assert 0 not in priorities
    gaps = [b.time - a.time for a, b in itertools.pairwise(adverts)]
    record_time(
        "adverts_max_gap_while_check_hangs",
        max(gaps),
        advert_interval=ADVERT,
        adverts=len(adverts),
        window=round(window_end - window, 2),
    )
    # RFC 9568 §6.4.3: one advert per Advertisement_Interval; a gap near
    # Master_Down_Interval would let a backup take over.
    assert max(gaps) <= ADVERT + 0.15 < master_down(100)


def test_link_down_on_master_fails_over_and_link_up_renegotiates(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    master, backup = _start_pair(
        lab, config_toml([_instance(lab, 150)]), config_toml([_instance(lab, 100)])
    )
    down = time.monotonic()
    lab[0].set_link(up=False)
    # The master cannot tell anybody (its link is down): the backup waits out
    # Master_Down_Interval. The VIP on the master cannot be seen through the bridge now:
    # its own kernel and log say what it did.
    took_over = lab[1].wait_address(vip.ip, since=down, timeout=5)
    assert took_over - down <= master_down(100) + MARGIN
    record_time("link_down_to_takeover", took_over - down)
    lab[0].wait_address(vip.ip, added=False, since=down, timeout=2)
    master.wait_state("FAULT", timeout=1)
    assert re.search(r"VI_1: MASTER -> FAULT \(link eth0\)", master.output())
    backup.wait_state("MASTER", timeout=1)

    up = time.monotonic()
    lab[0].set_link(up=True)
    back = lab[0].wait_address(vip.ip, since=up, timeout=5)
    assert back - up <= master_down(150) + MARGIN
    record_time("link_up_to_vip_back", back - up)
    lab[1].wait_address(vip.ip, added=False, since=up, timeout=2)
    master.wait_state("MASTER", timeout=1)
    assert transitions(master) == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    assert transitions(backup) == ["BACKUP", "MASTER", "BACKUP"]
    assert holders(lab, vip) == [0]


def test_negative_weight_lowers_advertised_priority_and_a_backup_preempts(
    make_lab: Callable[[int], Lab], receive_path: ReceivePath
) -> None:
    """Both receive paths: in kernel-only eBPF mode the filter decides which adverts reset
    a backup's timer from our priority, so it must hear of every priority change."""
    lab = make_lab(2)
    vip = lab.vip()
    flag = Flag(lab, "chk")
    master, backup = _start_pair(
        lab,
        config_toml(
            [_instance(lab, 150, track_scripts=[{"name": "chk", "weight": -60}])],
            scripts=[_check(flag)],
            global_=receive_path.options,
        ),
        config_toml([_instance(lab, 100)], global_=receive_path.options),
    )
    receive_path.check(master, backup)
    with lab.capture() as capture:
        failed = flag.fail()
        took_over = lab[1].wait_address(vip.ip, since=failed, timeout=5)
        # The master advertises 90 at once; the backup ignores a lower-priority master
        # (preempt) and takes over when its Master_Down_Timer runs out.
        assert took_over - failed <= 2 * CHECK_INTERVAL + master_down(100) + MARGIN
        record_time(
            f"weight_failure_to_preempting_takeover[{receive_path.name}]", took_over - failed
        )
        master.wait_state("BACKUP", timeout=1)
        lab[0].wait_address(vip.ip, added=False, since=failed, timeout=1)

        passed = flag.pass_()
        back = lab[0].wait_address(vip.ip, since=passed, timeout=5)
        assert back - passed <= 2 * CHECK_INTERVAL + master_down(150) + MARGIN
        lab[1].wait_address(vip.ip, added=False, since=passed, timeout=2)
        master.wait_state("MASTER", timeout=1)
    assert transitions(master) == ["BACKUP", "MASTER", "BACKUP", "MASTER"]
    assert transitions(backup) == ["BACKUP", "MASTER", "BACKUP"]
    assert "FAULT" not in transitions(master) + transitions(backup)

    n0, n1 = str(lab[0].ip), str(lab[1].ip)
    ours = frames(capture.path, f"vrrp && ip.src == {n0}", ["vrrp.prio"])
    theirs = frames(capture.path, f"vrrp && ip.src == {n1}", ["vrrp.prio"])
    assert theirs
    assert {f["vrrp.prio"] for f in theirs} == {"100"}
    # On the wire: 150, then 90 while failing (no priority 0: this is no FAULT), then the
    # backup's first advert, and 150 again once the node is back as master.
    lowered = [f for f in ours if f["vrrp.prio"] == "90"]
    assert lowered, [f["vrrp.prio"] for f in ours]
    assert "0" not in {f["vrrp.prio"] for f in ours}
    assert all(f["vrrp.prio"] == "150" for f in ours if f.time < lowered[0].time)
    assert lowered[0].time < theirs[0].time
    assert ours[-1]["vrrp.prio"] == "150"
