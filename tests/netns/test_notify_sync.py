"""Notify scripts, the notify FIFO and sync groups with real agents on a bridge (issue 4).

The notify script records its arguments, one line per call, so the test compares the
calls with the transitions the agent logged: same states, same order, keepalived's
``$1..$4``. The FIFO is read by the test itself. A hung notify script must delay neither
the failover (the protocol only enqueues) nor the next call beyond its timeout.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lab import Lab, wait_for
from tests.netns.healthkit import (
    MARGIN,
    Flag,
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
#: The agent logs INITIALIZE for a stopped instance; notify calls it STOP.
NOTIFY_NAME = {"INITIALIZE": "STOP"}


def _recorder(lab: Lab, name: str) -> tuple[Path, Path]:
    """A notify script appending ``$#|$1|$2|$3|$4`` per call; returns (script, record)."""
    record = lab.workdir / f"{name}.calls"
    script = shell_script(
        lab.workdir / f"{name}.sh",
        f'printf \'%s|%s|%s|%s|%s\\n\' "$#" "$1" "$2" "$3" "$4" >> "{record}"\n',
    )
    return script, record


def _calls(record: Path) -> list[list[str]]:
    try:
        return [line.split("|") for line in record.read_text().splitlines()]
    except FileNotFoundError:
        return []


def _wait_calls(record: Path, count: int, timeout: float) -> float:
    return wait_for(lambda: len(_calls(record)) >= count, timeout, what=f"{count} notify calls")


def test_notify_calls_match_transitions_fifo_lines_and_a_hung_notify_delays_nothing(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    flag = Flag(lab, "chk")
    notify, record = _recorder(lab, "notify")
    token = f"27{int(lab.uid, 16) % 10**6}.5"
    hung = shell_script(lab.workdir / "hang.sh", f"exec sleep {token}\n")
    notify_timeout = 1.0
    fifo = lab.workdir / "notify.fifo"
    os.mkfifo(fifo, 0o600)
    # Our read end exists before the agent opens the FIFO (a FIFO without reader drops).
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        # The backup first: the master-to-be then preempts it, and the test removes the
        # check's flag right after, while that transition's notify_master still hangs.
        backup = start(
            lab[1],
            "n1",
            config_toml([{"name": "VI_1", "vrid": 51, "priority": 100, "vips": [str(vip)]}]),
        )
        backup.wait_state("MASTER", timeout=10)
        master = start(
            lab[0],
            "n0",
            config_toml(
                [
                    {
                        "name": "VI_1",
                        "vrid": 51,
                        "priority": 150,
                        "vips": [str(vip)],
                        "track_scripts": ["chk"],
                        "notify": str(notify),
                        "notify_master": str(hung),
                        "notify_timeout": notify_timeout,
                    }
                ],
                scripts=[{"name": "chk", "path": str(flag.script), "interval": CHECK_INTERVAL}],
                global_={"notify_fifo": str(fifo)},
            ),
        )
        became_master = master.wait_state("MASTER", timeout=10)

        # notify_master hangs now; the check fails while it does.
        failed = flag.fail()
        assert failed - became_master < notify_timeout, "too slow to test the hung call"
        took_over = lab[1].wait_address(vip.ip, since=failed, timeout=5)
        master.wait_state("FAULT", timeout=1)
        # The failover does not wait for the hung notify_master.
        assert took_over - failed <= 2 * CHECK_INTERVAL + skew(100) + MARGIN
        assert took_over < became_master + notify_timeout
        record_time("check_failure_to_takeover_with_hung_notify", took_over - failed)

        # Calls run one at a time in order: the generic MASTER call waits for the hung
        # notify_master, which is killed at its timeout; FAULT follows at once.
        master_call = _wait_calls(record, 2, 5)
        fault_call = _wait_calls(record, 3, 5)
        assert master_call - became_master >= notify_timeout - 0.1
        assert fault_call - became_master <= notify_timeout + MARGIN
        record_time("notify_after_hung_call", fault_call - became_master, timeout=notify_timeout)
        assert re.search(r"notify INSTANCE VI_1: \S+hang\.sh: timed out", master.output())
        assert not _sleepers(token.encode()), "the hung notify script was left behind"

        passed = flag.pass_()
        lab[0].wait_address(vip.ip, since=passed, timeout=5)
        master.wait_state("MASTER", timeout=1)
        master.terminate()
        assert master.proc.wait(10) == 0
        fifo_text = _read_all(reader)
    finally:
        os.close(reader)

    states = [NOTIFY_NAME.get(s, s) for s in transitions(master)]
    assert states == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP"]
    # The backup took over twice: at the fault, and at the shutdown (priority 0).
    wait_for(lambda: len(transitions(backup)) == 6, 2, what="the backup's takeover")
    assert transitions(backup) == ["BACKUP", "MASTER", "BACKUP", "MASTER", "BACKUP", "MASTER"]
    assert _calls(record) == [["4", "INSTANCE", "VI_1", state, "150"] for state in states]
    assert fifo_text.splitlines() == [f'INSTANCE "VI_1" {state} 150' for state in states]
    assert not _sleepers(token.encode())


def _read_all(fd: int) -> str:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode()


def _sleepers(token: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_sync_group_members_move_together(make_lab: Callable[[int], Lab]) -> None:
    lab = make_lab(2)
    vips = (lab.vip(100), lab.vip(101))
    flag = Flag(lab, "chk")
    group_notify, record = _recorder(lab, "group")
    fifo = lab.workdir / "notify.fifo"
    os.mkfifo(fifo, 0o600)

    def toml(priority: int, *, tracked: bool) -> str:
        instances: list[dict[str, object]] = [
            {"name": f"VI_{n}", "vrid": 50 + n, "priority": priority, "vips": [str(vip)]}
            for n, vip in ((1, vips[0]), (2, vips[1]))
        ]
        if not tracked:
            return config_toml(
                instances, sync_groups=[{"name": "G1", "instances": ["VI_1", "VI_2"]}]
            )
        # Only VI_1 tracks the check: VI_2 moves because of the group alone.
        instances[0]["track_scripts"] = ["chk"]
        return config_toml(
            instances,
            scripts=[{"name": "chk", "path": str(flag.script), "interval": CHECK_INTERVAL}],
            sync_groups=[
                {"name": "G1", "instances": ["VI_1", "VI_2"], "notify": str(group_notify)}
            ],
            global_={"notify_fifo": str(fifo)},
        )

    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        master = start(lab[0], "n0", toml(150, tracked=True))
        for name in ("VI_1", "VI_2"):
            master.wait_state("MASTER", timeout=10, instance=name)
        backup = start(lab[1], "n1", toml(100, tracked=False))
        for name in ("VI_1", "VI_2"):
            backup.wait_state("BACKUP", timeout=10, instance=name)
        assert [holders(lab, vip) for vip in vips] == [[0], [0]]

        failed = flag.fail()
        moved = [lab[1].wait_address(vip.ip, since=failed, timeout=5) for vip in vips]
        for vip in vips:
            lab[0].wait_address(vip.ip, added=False, since=failed, timeout=1)
        assert max(moved) - failed <= 2 * CHECK_INTERVAL + skew(100) + MARGIN
        record_time("sync_group_check_failure_to_both_moved", max(moved) - failed)
        record_time("sync_group_members_apart", abs(moved[0] - moved[1]))
        assert abs(moved[0] - moved[1]) <= 0.2
        master.wait_state("FAULT", timeout=1, instance="VI_2")
        assert re.search(r"VI_1: MASTER -> FAULT \(script chk\)", master.output())
        assert re.search(r"VI_2: MASTER -> FAULT \(sync group G1\)", master.output())

        passed = flag.pass_()
        back = [lab[0].wait_address(vip.ip, since=passed, timeout=5) for vip in vips]
        for vip in vips:
            lab[1].wait_address(vip.ip, added=False, since=passed, timeout=2)
        assert max(back) - passed <= 2 * CHECK_INTERVAL + master_down(150) + MARGIN
        assert abs(back[0] - back[1]) <= 0.2
        record_time("sync_group_recovery_to_both_back", max(back) - passed)
        for name in ("VI_1", "VI_2"):
            master.wait_state("MASTER", timeout=1, instance=name)
            assert transitions(master, name) == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
            assert transitions(backup, name) == ["BACKUP", "MASTER", "BACKUP"]
        assert [holders(lab, vip) for vip in vips] == [[0], [0]]
        master.terminate()
        assert master.proc.wait(10) == 0
        fifo_lines = _read_all(reader).splitlines()
    finally:
        os.close(reader)

    # The group's own notify: $1 = GROUP, $2 = the group name, $4 = 0 (keepalived's
    # vrrp_notify.c: a group has no priority); one call per change of the group's state,
    # startup (INITIALIZE -> BACKUP) included, and STOP at the shutdown.
    group_states = ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP"]
    assert _calls(record) == [["4", "GROUP", "G1", state, "0"] for state in group_states]
    assert [line for line in fifo_lines if line.startswith("GROUP")] == [
        f'GROUP "G1" {state} 0' for state in group_states
    ]
    for name in ("VI_1", "VI_2"):
        states = [NOTIFY_NAME.get(s, s) for s in transitions(master, name)]
        assert [line for line in fifo_lines if f'"{name}"' in line] == [
            f'INSTANCE "{name}" {state} 150' for state in states
        ]
