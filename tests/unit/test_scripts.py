"""Check scripts and the TCP check, with real processes and a real listener.

Scripts are small /bin/sh files exec'd directly (no shell=True). The process table is read
from /proc, so "nothing left behind" and "no zombie" are facts about the kernel, not about
our bookkeeping. The core tests run under both the stdlib loop and uvloop (which the CLI
uses), because their subprocess implementations differ.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import uvloop

from agent.host.scripts import (
    CheckRunner,
    CheckScript,
    TcpCheck,
    become_subreaper,
    resolve_user,
    run_process,
    tcp_connect,
)

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@pytest.fixture(autouse=True)
def subreaper() -> Iterator[None]:
    """Adopt orphans for the duration of a test, as the daemon does at startup.

    PID 1 on test machines may reap orphans lazily (seconds later); as their subreaper we
    reap a killed group's members ourselves, so "nothing left behind" is checkable at once.
    Switched off afterwards so other tests' daemons are not adopted by pytest.
    """
    assert become_subreaper()
    yield
    ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)


def make_script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def proc_table() -> list[tuple[int, str, int, int]]:
    """(pid, state, ppid, pgid) of every process, from /proc/<pid>/stat."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        rows.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return rows


def group_members(pgid: int) -> list[tuple[int, str, int, int]]:
    return [row for row in proc_table() if row[3] == pgid]


def my_zombies() -> list[tuple[int, str, int, int]]:
    return [row for row in proc_table() if row[2] == os.getpid() and row[1] == "Z"]


@LOOPS
def test_exit_zero_is_success_and_output_is_captured(run: Runner, tmp_path: Path) -> None:
    path = make_script(tmp_path, "ok.sh", 'echo "hello $1"; echo oops >&2\n')
    result = run(run_process([path, "world"], time_limit=5))
    assert result.ok
    assert result.returncode == 0
    assert result.output == "hello world\noops"
    assert result.describe() == "exit status 0"


@LOOPS
def test_non_zero_exit_and_signal_are_failures(run: Runner, tmp_path: Path) -> None:
    failing = make_script(tmp_path, "fail.sh", "exit 3\n")
    killed = make_script(tmp_path, "killed.sh", "kill -USR1 $$\nsleep 5\n")
    result = run(run_process([failing], time_limit=5))
    assert (result.ok, result.returncode, result.describe()) == (False, 3, "exit status 3")
    result = run(run_process([killed], time_limit=5))
    assert not result.ok
    assert not result.timed_out
    assert result.describe() == "killed by signal SIGUSR1"


def test_stdin_is_dev_null_and_cwd_is_root(tmp_path: Path) -> None:
    path = make_script(tmp_path, "stdin.sh", "pwd; cat; readlink /proc/$$/fd/0\n")
    result = asyncio.run(run_process([path], time_limit=5))
    assert result.output == "/\n/dev/null"


def test_a_missing_or_non_executable_script_is_a_failed_run_not_an_exception(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\nexit 0\n")
    result = asyncio.run(run_process([str(plain)], time_limit=5))
    assert not result.ok
    assert result.describe() == "cannot run: Permission denied"
    result = asyncio.run(run_process([str(tmp_path / "missing")], time_limit=5))
    assert result.describe() == "cannot run: No such file or directory"


def test_output_is_bounded_and_a_chatty_script_does_not_block(tmp_path: Path) -> None:
    path = make_script(tmp_path, "chatty.sh", "head -c 1000000 /dev/zero | tr '\\0' x\n")
    result = asyncio.run(run_process([path], time_limit=5, output_limit=100))
    assert result.ok
    assert result.output == "x" * 100 + " [... 999900 more bytes]"


@LOOPS
def test_hanging_script_and_its_grandchild_are_killed_at_the_timeout(
    run: Runner, tmp_path: Path
) -> None:
    # The script ignores SIGTERM (and so does its `sleep` grandchild, which inherits the
    # disposition), so only the SIGKILL after the grace period ends them.
    pids = tmp_path / "pids"
    path = make_script(
        tmp_path, "hang.sh", f"trap '' TERM\nsleep 30 &\necho $$ $! > {pids}\nwait\n"
    )
    start = time.monotonic()
    result = run(run_process([path], time_limit=0.3, kill_grace=0.2))
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert not result.ok
    assert result.describe() == "timed out after 0.5 s, process group killed"
    assert 0.45 < elapsed < 1.5
    leader, grandchild = map(int, pids.read_text().split())
    assert group_members(leader) == []
    assert not Path(f"/proc/{grandchild}").exists()
    assert my_zombies() == []


def test_sigterm_is_enough_for_a_script_that_does_not_trap_it(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = make_script(tmp_path, "hang.sh", f"sleep 30 &\necho $$ > {pids}\nwait\n")
    start = time.monotonic()
    result = asyncio.run(run_process([path], time_limit=0.2, kill_grace=5))
    assert result.timed_out
    assert time.monotonic() - start < 1.5  # did not sit out the 5 s grace
    assert group_members(int(pids.read_text())) == []
    assert my_zombies() == []


def test_event_loop_stays_responsive_while_a_script_hangs(tmp_path: Path) -> None:
    path = make_script(tmp_path, "hang.sh", "trap '' TERM\nsleep 30 &\nwait\n")

    async def main() -> float:
        loop = asyncio.get_running_loop()
        job = asyncio.create_task(run_process([path], time_limit=0.3, kill_grace=0.3))
        worst = 0.0
        while not job.done():
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before - 0.01)
        assert (await job).timed_out
        return worst

    assert asyncio.run(main()) < 0.05


def test_check_runner_reports_each_run_and_counts(tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    path = make_script(tmp_path, "check.sh", f"test -e {flag}\n")
    results: list[tuple[str, bool, str]] = []

    async def main() -> CheckRunner:
        runner = CheckRunner(
            CheckScript("chk", (path,), interval=0.1), lambda *r: results.append(r)
        )
        runner.start()
        await asyncio.sleep(0.25)
        flag.unlink()
        await asyncio.sleep(0.3)
        await runner.aclose()
        return runner

    runner = asyncio.run(main())
    oks = [ok for _, ok, _ in results]
    assert oks[:3] == [True, True, True]
    assert oks[-2:] == [False, False]
    assert oks == sorted(oks, reverse=True)  # one edge, in run order
    assert results[-1] == ("chk", False, "exit status 1")
    c = runner.counters
    assert c.runs == len(results)
    assert c.failures == oks.count(False)
    assert (c.timeouts, c.skipped, c.last_exit, c.last_ok) == (0, 0, 1, False)
    assert c.last_duration is not None
    assert 0 < c.last_duration < 0.1


def test_overlapping_runs_are_skipped_and_counted(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    path = make_script(tmp_path, "slow.sh", f"echo $$ >> {starts}\nsleep 0.35\n")
    results: list[bool] = []

    async def main() -> CheckRunner:
        check = CheckScript("slow", (path,), interval=0.1, timeout=2)
        runner = CheckRunner(check, lambda _n, ok, _d: results.append(ok))
        runner.start()
        await asyncio.sleep(0.55)
        await runner.aclose()
        return runner

    runner = asyncio.run(main())
    pids = starts.read_text().split()
    # Ticks at 0, 0.1, ..., 0.5: a run starts at 0 and after it ends (~0.4); the rest skip.
    assert len(pids) == 2
    assert results == [True]
    assert runner.counters.skipped == 4
    assert runner.counters.runs == 1
    # aclose() killed the second run: nothing of it is left.
    assert group_members(int(pids[1])) == []
    assert my_zombies() == []


def test_a_timed_out_run_is_reported_as_a_failure(tmp_path: Path) -> None:
    path = make_script(tmp_path, "hang.sh", "sleep 30\n")
    results: list[tuple[str, bool, str]] = []

    async def main() -> CheckRunner:
        check = CheckScript("hang", (path,), interval=0.2, kill_grace=0.1)
        runner = CheckRunner(check, lambda *r: results.append(r))
        runner.start()
        await asyncio.sleep(0.35)
        await runner.aclose()
        return runner

    runner = asyncio.run(main())
    assert results == [("hang", False, "timed out after 0.2 s, process group killed")]
    assert (runner.counters.timeouts, runner.counters.failures) == (1, 1)
    assert runner.counters.last_exit is None
    assert my_zombies() == []


@LOOPS
def test_user_runs_the_script_with_that_users_ids(run: Runner, tmp_path: Path) -> None:
    # pytest's tmp_path lives under a 0700 directory that `nobody` cannot traverse.
    public = Path(tempfile.mkdtemp())
    try:
        public.chmod(0o755)
        path = make_script(public, "id.sh", "id -u; id -g; id -G\n")
        nobody = resolve_user("nobody")
        result = run(run_process([path], time_limit=5, user=nobody))
    finally:
        shutil.rmtree(public)
    assert result.ok, result.output
    uid, gid, groups = result.output.splitlines()
    assert (int(uid), int(gid)) == (nobody.uid, nobody.gid)
    assert "0" not in groups.split()  # root's supplementary groups are not inherited


def test_resolve_user_errors_are_clear() -> None:
    assert resolve_user("root").uid == 0
    assert resolve_user("nobody:root").gid == 0
    with pytest.raises(ValueError, match="unknown user 'no-such-user'"):
        resolve_user("no-such-user")
    with pytest.raises(ValueError, match="unknown group 'no-such-group'"):
        resolve_user("nobody:no-such-group")


def test_tcp_connect_succeeds_with_a_listener_and_fails_without() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ok = asyncio.run(tcp_connect("127.0.0.1", port, 1.0))
    assert ok == (True, False, f"connected to 127.0.0.1:{port}")
    refused = asyncio.run(tcp_connect("127.0.0.1", port, 1.0))
    assert (refused.ok, refused.timed_out) == (False, False)
    assert refused.detail.startswith(f"connect to 127.0.0.1:{port}: ")


def test_tcp_check_runner_follows_the_listener() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    results: list[bool] = []

    async def main() -> CheckRunner:
        check = TcpCheck("tcp", IPv4Address("127.0.0.1"), port, interval=0.1)
        runner = CheckRunner(check, lambda _n, ok, _d: results.append(ok))
        runner.start()
        await asyncio.sleep(0.15)
        listener.close()
        await asyncio.sleep(0.2)
        await runner.aclose()
        return runner

    runner = asyncio.run(main())
    assert results[:2] == [True, True]
    assert results[-1] is False
    assert runner.counters.failures == results.count(False)
    assert runner.counters.last_exit is None
