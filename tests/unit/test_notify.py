"""Notify scripts and the notify FIFO, with real processes and a real named pipe."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

from agent.host.notify import (
    Command,
    Kind,
    NotifyDispatcher,
    NotifyFifo,
    NotifyScripts,
    NotifyState,
    fifo_line,
)

# subreaper is an autouse fixture: importing it applies it here too.
from tests.unit.test_scripts import group_members, make_script, my_zombies, subreaper  # noqa: F401

TRANSITIONS = [
    (Kind.INSTANCE, "VI_1", NotifyState.BACKUP, 100),
    (Kind.GROUP, "G1", NotifyState.BACKUP, 0),
    (Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100),
    (Kind.INSTANCE, "VI_1", NotifyState.FAULT, 100),
    (Kind.INSTANCE, "VI_1", NotifyState.BACKUP, 100),
    (Kind.GROUP, "G1", NotifyState.MASTER, 0),
    (Kind.INSTANCE, "VI_1", NotifyState.STOP, 100),
]


def test_notify_calls_run_in_transition_order_with_keepalived_arguments(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    # MASTER is slow: if calls of one queue ran concurrently, later lines would overtake it.
    generic = make_script(
        tmp_path, "notify.sh", f'[ "$4" = MASTER ] && sleep 0.2\necho "notify $*" >> {record}\n'
    )
    per_state = make_script(tmp_path, "state.sh", f'echo "state $*" >> {record}\n')

    def scripts(who: str) -> NotifyScripts:
        return NotifyScripts(
            notify=Command((generic, who)),
            master=Command((per_state, who, "to-master")),
            stop=Command((per_state, who, "to-stop")),
        )

    async def main() -> tuple[NotifyDispatcher, float]:
        dispatcher = NotifyDispatcher(
            {(Kind.INSTANCE, "VI_1"): scripts("vi"), (Kind.GROUP, "G1"): scripts("grp")}
        )
        start = time.monotonic()
        for transition in TRANSITIONS:
            dispatcher.enqueue(*transition)
        enqueue_time = time.monotonic() - start
        await dispatcher.aclose()
        return dispatcher, enqueue_time

    dispatcher, enqueue_time = asyncio.run(main())
    assert enqueue_time < 0.05  # the protocol never waits for a script
    lines = record.read_text().splitlines()
    assert [line for line in lines if " vi " in line] == [
        "notify vi INSTANCE VI_1 BACKUP 100",
        "state vi to-master",
        "notify vi INSTANCE VI_1 MASTER 100",
        "notify vi INSTANCE VI_1 FAULT 100",
        "notify vi INSTANCE VI_1 BACKUP 100",
        "state vi to-stop",
        "notify vi INSTANCE VI_1 STOP 100",
    ]
    assert [line for line in lines if " grp " in line] == [
        "notify grp GROUP G1 BACKUP 0",
        "state grp to-master",
        "notify grp GROUP G1 MASTER 0",
    ]
    assert (dispatcher.counters.calls, dispatcher.counters.failures) == (10, 0)


def test_a_hanging_notify_is_killed_at_its_timeout_and_the_next_call_runs(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    pids = tmp_path / "pids"
    path = make_script(
        tmp_path,
        "notify.sh",
        f'echo "$3 $(date +%s.%N)" >> {record}\n'
        f'if [ "$3" = MASTER ]; then trap "" TERM; sleep 30 & echo $$ >> {pids}; wait; fi\n'
        "exit 0\n",
    )
    dispatcher = NotifyDispatcher(
        {(Kind.INSTANCE, "VI_1"): NotifyScripts(notify=Command((path,)))},
        timeout=0.3,
        kill_grace=0.2,
    )

    async def main() -> None:
        dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100)
        dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.BACKUP, 100)
        await dispatcher.aclose()

    asyncio.run(main())
    (state1, t1), (state2, t2) = (line.split() for line in record.read_text().splitlines())
    assert (state1, state2) == ("MASTER", "BACKUP")
    assert 0.45 < float(t2) - float(t1) < 1.0  # timeout + grace, no more
    assert dispatcher.counters.timeouts == 1
    assert dispatcher.counters.failures == 1
    assert dispatcher.counters.calls == 2
    assert group_members(int(pids.read_text())) == []
    assert my_zombies() == []


def test_aclose_with_a_limit_kills_what_still_runs(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = make_script(tmp_path, "hang.sh", f"sleep 30 &\necho $$ >> {pids}\nwait\n")
    dispatcher = NotifyDispatcher(
        {(Kind.INSTANCE, "VI_1"): NotifyScripts(notify=Command((path,)))}, timeout=30
    )

    async def main() -> float:
        dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100)
        dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.STOP, 100)
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await dispatcher.aclose(limit=0.2)
        dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.BACKUP, 100)
        return time.monotonic() - start

    assert asyncio.run(main()) < 1.0
    assert group_members(int(pids.read_text())) == []
    assert my_zombies() == []
    # The queued STOP call never ran; the enqueue after close was refused.
    assert dispatcher.counters.dropped == 2


def test_queue_is_bounded(tmp_path: Path) -> None:
    path = make_script(tmp_path, "slow.sh", "sleep 0.2\n")
    dispatcher = NotifyDispatcher(
        {(Kind.INSTANCE, "VI_1"): NotifyScripts(notify=Command((path,)))}, max_queue=2
    )

    async def main() -> None:
        for _ in range(5):  # the first starts at once; two wait; two are dropped
            dispatcher.enqueue(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100)
            await asyncio.sleep(0)
        await dispatcher.aclose()

    asyncio.run(main())
    assert (dispatcher.counters.calls, dispatcher.counters.dropped) == (3, 2)


def test_fifo_lines_have_keepalived_format(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        dispatcher = NotifyDispatcher({}, fifo=NotifyFifo(path))
        for transition in TRANSITIONS:
            dispatcher.enqueue(*transition)  # no scripts: no event loop needed
        data = os.read(reader, 65536).decode()
    finally:
        os.close(reader)
    assert data.splitlines() == [
        'INSTANCE "VI_1" BACKUP 100',
        'GROUP "G1" BACKUP 0',
        'INSTANCE "VI_1" MASTER 100',
        'INSTANCE "VI_1" FAULT 100',
        'INSTANCE "VI_1" BACKUP 100',
        'GROUP "G1" MASTER 0',
        'INSTANCE "VI_1" STOP 100',
    ]
    assert fifo_line(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100) == (
        'INSTANCE "VI_1" MASTER 100\n'
    )


def test_fifo_without_reader_neither_blocks_nor_raises_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "missing.fifo"
    fifo = NotifyFifo(path)
    start = time.monotonic()
    assert not fifo.write(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100)  # created, no reader
    assert stat.S_ISFIFO(path.stat().st_mode)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    assert fifo.write(Kind.INSTANCE, "VI_1", NotifyState.BACKUP, 90)
    assert os.read(reader, 100) == b'INSTANCE "VI_1" BACKUP 90\n'
    os.close(reader)  # the reader goes away: EPIPE, dropped, reopened later
    assert not fifo.write(Kind.INSTANCE, "VI_1", NotifyState.FAULT, 90)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    assert fifo.write(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 90)
    assert os.read(reader, 100) == b'INSTANCE "VI_1" MASTER 90\n'
    # A reader that never reads: the pipe fills up and lines are dropped, never blocking.
    line_count = 0
    while fifo.write(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 90):
        line_count += 1
    assert line_count > 100
    os.close(reader)
    assert time.monotonic() - start < 1.0
    assert (fifo.written, fifo.dropped) == (2 + line_count, 3)
    fifo.close()
    assert not path.exists()  # we created it, we remove it


def test_fifo_path_that_is_not_a_fifo_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "regular"
    path.write_text("keep\n")
    fifo = NotifyFifo(path)
    assert not fifo.write(Kind.INSTANCE, "VI_1", NotifyState.MASTER, 100)
    fifo.close()
    assert path.read_text() == "keep\n"
