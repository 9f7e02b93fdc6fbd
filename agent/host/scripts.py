"""Running user scripts: periodic check scripts, the TCP connect check, and the process
machinery the notify dispatcher shares.

Why this is more careful than keepalived (keepalived.md §3, §12 "Scripts hanging / zombie
check scripts"): every run gets its own session and process group, so a timeout kills the
script *and* everything it started (SIGTERM to the group, SIGKILL after a grace period,
keepalived's 2 s); the direct child is always reaped by the event loop's child watcher, and
after a kill we wait until the whole group has vanished from the process table, so nothing a
script started outlives its timeout. A run still alive at the next interval makes that tick
be skipped (counted and logged), never a second concurrent run. Nothing here blocks the
event loop: processes are spawned with ``create_subprocess_exec`` (never a shell) and their
output is read from a non-blocking pipe.

Rise/fall hysteresis and weights are protocol logic and live in the core; this module only
reports raw results through ``on_result(name, ok, detail)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import grp
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final, NamedTuple

log = logging.getLogger("agent")

#: keepalived's delay between SIGTERM and SIGKILL for a timed-out script (keepalived.md §3).
DEFAULT_KILL_GRACE: Final = 2.0
#: Bytes of a run's combined stdout/stderr kept for the log; the rest is read and discarded so
#: a chatty script can never block on a full pipe.
DEFAULT_OUTPUT_LIMIT: Final = 4096
#: After the script exits, how long its output may still arrive before the pipe is closed
#: (a background grandchild may hold the pipe open forever; it must not hold up the result).
_OUTPUT_DRAIN: Final = 0.1
#: How long to wait, after SIGKILL, for the group's last members to be reaped (orphans by
#: us if we are their subreaper, else by PID 1, which may take its time).
_GROUP_GONE_LIMIT: Final = 1.0
#: prctl(2) option number from <linux/prctl.h>.
_PR_SET_CHILD_SUBREAPER: Final = 36

OnResult = Callable[[str, bool, str], None]


class RateLimitedLog:
    """Log a recurring condition at most once per ``period`` seconds, with the count of
    suppressed repeats, so a permanently hung script or a FIFO without a reader cannot flood
    the journal."""

    def __init__(self, period: float = 60.0) -> None:
        self.period = period
        self._last: float | None = None
        self._suppressed = 0

    def __call__(self, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.period:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += f" ({self._suppressed} similar messages suppressed)"
        self._last, self._suppressed = now, 0
        log.log(level, msg, *args)


@dataclass(frozen=True, slots=True)
class ScriptUser:
    """Credentials a script runs with, resolved once at configuration time (NSS lookups
    block, so they must not happen on the event loop)."""

    name: str
    uid: int
    gid: int
    #: Supplementary groups of the user; set explicitly so a script started by the root
    #: daemon does not keep root's supplementary groups after the uid change.
    groups: tuple[int, ...]


def resolve_user(spec: str) -> ScriptUser:
    """Resolve ``user`` or ``user:group`` (keepalived's ``user`` syntax) to ids.

    Raises ValueError with an operator-readable message for an unknown user or group.
    """
    user_name, _, group_name = spec.partition(":")
    try:
        entry = pwd.getpwnam(user_name)
    except KeyError:
        raise ValueError(f"unknown user {user_name!r}") from None
    gid = entry.pw_gid
    if group_name:
        try:
            gid = grp.getgrnam(group_name).gr_gid
        except KeyError:
            raise ValueError(f"unknown group {group_name!r}") from None
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return ScriptUser(name=spec, uid=entry.pw_uid, gid=gid, groups=groups)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How one script run ended."""

    #: Exit status, or minus the signal number if a signal ended it; None if it never ran.
    returncode: int | None
    timed_out: bool
    #: Seconds from spawn to exit (or to the spawn failure).
    duration: float
    #: Combined stdout and stderr, at most the output limit, decoded leniently.
    output: str
    #: Set when the process could not be started (missing file, permission, bad user).
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """One phrase for logs and the ``detail`` of a result, e.g. ``exit status 3``."""
        if self.error is not None:
            return f"cannot run: {self.error}"
        if self.timed_out:
            return f"timed out after {self.duration:.1f} s, process group killed"
        assert self.returncode is not None
        if self.returncode < 0:
            return f"killed by signal {signal.Signals(-self.returncode).name}"
        return f"exit status {self.returncode}"


def _credentials(loop: asyncio.AbstractEventLoop, user: ScriptUser | None) -> dict[str, Any]:
    """Arguments that make the child run as ``user``.

    The stdlib loop takes ``user``/``group``/``extra_groups``, applied in C between fork and
    exec. uvloop (used by the CLI when installed) rejects those arguments but supports
    ``preexec_fn``; the three calls it makes are plain system calls.
    """
    if user is None:
        return {}
    if isinstance(loop, asyncio.BaseEventLoop):
        return {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}

    def drop_privileges() -> None:
        os.setgroups(list(user.groups))
        os.setgid(user.gid)
        os.setuid(user.uid)

    return {"preexec_fn": drop_privileges}


class _OutputReader:
    """Reads a non-blocking pipe on the event loop, keeping at most ``limit`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, limit: int) -> None:
        self._loop, self._fd, self._limit = loop, fd, limit
        self.data = bytearray()
        self.discarded = 0
        self.eof = asyncio.Event()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._fd)
            self.eof.set()
            return
        room = max(0, self._limit - len(self.data))
        self.data += chunk[:room]
        self.discarded += len(chunk) - min(room, len(chunk))

    def close(self) -> None:
        if not self.eof.is_set():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace").rstrip()
        if self.discarded:
            text += f" [... {self.discarded} more bytes]"
        return text


def _reap_adopted(pgid: int) -> None:
    """Reap members of a killed group that were re-parented to us.

    Orphans go to the nearest child subreaper, else to PID 1. When the agent is PID 1 (a
    container) or a subreaper (:func:`become_subreaper`), they become *our* zombies and
    nobody else will reap them. Only called after the group leader was reaped by the event
    loop's child watcher, so every child left in the group was adopted, never one the
    watcher waits for.
    """
    while True:
        try:
            if os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG) is None:
                return
        except ChildProcessError:
            return


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER),
    so what a killed script started is reaped at once rather than whenever PID 1 gets to
    it; :func:`run_process` then reaps them when it kills a group. False if unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


async def _group_gone(pgid: int, limit: float) -> bool:
    """Wait until no process (zombies included) is left in process group ``pgid``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        _reap_adopted(pgid)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # a member exists but changed credentials; it still counts
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)


async def _kill_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the run's whole process group, SIGKILL it after ``grace`` s, reap the leader
    and wait for the group to disappear (keepalived.md §3: SIGKILL is repeated until the
    leader is gone, for processes stuck in uninterruptible sleep)."""
    pgid = proc.pid  # start_new_session: the child leads its own session and group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if grace > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    while True:
        # Also after the leader exited: a grandchild that ignores SIGTERM is still there.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), max(grace, 1.0))
            break
        except TimeoutError:
            log.warning("process group %d survives SIGKILL; killing it again", pgid)
    if not await _group_gone(pgid, _GROUP_GONE_LIMIT):
        log.warning("process group %d still has members after SIGKILL", pgid)


async def run_process(
    argv: Sequence[str],
    *,
    time_limit: float,
    kill_grace: float = DEFAULT_KILL_GRACE,
    user: ScriptUser | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> ProcessResult:
    """Run ``argv`` (exec'd directly, no shell) with stdin from /dev/null, in its own session,
    and return how it ended. Never raises for a script problem: a spawn failure is a result.

    ``time_limit`` is the script timeout: when it expires the run counts as timed out and,
    like when the calling task is cancelled, the whole process group is killed and
    reaped before this returns (or re-raises the cancellation).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            cwd="/",
            **_credentials(loop, user),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(read_fd)
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ProcessResult(None, False, loop.time() - start, "", error=message)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    reader = _OutputReader(loop, read_fd, output_limit)
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), time_limit)
        except TimeoutError:
            timed_out = True
            await _kill_group(proc, kill_grace)
        duration = loop.time() - start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.eof.wait(), _OUTPUT_DRAIN)
    except asyncio.CancelledError:
        # Shutdown: no grace period, but still nothing left behind and nothing unreaped.
        if proc.returncode is None:
            await _kill_group(proc, 0.0)
        raise
    finally:
        reader.close()
    return ProcessResult(proc.returncode, timed_out, duration, reader.text())


class ConnectResult(NamedTuple):
    ok: bool
    timed_out: bool
    detail: str


async def tcp_connect(
    address: IPv4Address | str, port: int, connect_timeout: float
) -> ConnectResult:
    """Open and close a TCP connection: the ipfailover default check (ipfailover.md §5,
    bash's ``</dev/tcp/IP/PORT``), but with an explicit timeout instead of relying on the
    script timeout to kill a connect whose SYN is silently dropped."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(str(address), port), connect_timeout
        )
    except TimeoutError:
        return ConnectResult(False, True, f"connect to {address}:{port} timed out")
    except OSError as exc:
        return ConnectResult(False, False, f"connect to {address}:{port}: {exc.strerror or exc}")
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), connect_timeout)
    return ConnectResult(True, False, f"connected to {address}:{port}")


@dataclass(frozen=True, slots=True)
class CheckScript:
    """A ``[[script]]`` check (keepalived ``vrrp_script``, keepalived.md §3)."""

    name: str
    #: Absolute path of the executable, then its arguments; exec'd without a shell.
    argv: tuple[str, ...]
    #: Seconds between the starts of two runs.
    interval: float = 2.0
    #: Seconds a run may take before its group is killed; None means the interval.
    timeout: float | None = None
    #: Carried for the core's tracking (consecutive successes/failures needed to change the
    #: check's state); the runner itself reports every raw result.
    rise: int = 1
    fall: int = 1
    user: ScriptUser | None = None
    #: Seconds between SIGTERM and SIGKILL at a timeout.
    kill_grace: float = DEFAULT_KILL_GRACE

    @property
    def effective_timeout(self) -> float:
        return self.interval if self.timeout is None else self.timeout


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """The default check when an instance has no script but a ``monitor_port``
    (ipfailover.md §5): connect to the node's own address on that port."""

    name: str
    address: IPv4Address
    port: int
    interval: float = 2.0
    timeout: float | None = None
    rise: int = 1
    fall: int = 1

    @property
    def effective_timeout(self) -> float:
        return self.interval if self.timeout is None else self.timeout


@dataclass(slots=True)
class CheckCounters:
    """Plain counters per check, for metrics."""

    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    #: Ticks skipped because the previous run was still alive.
    skipped: int = 0
    #: Seconds the last finished run took.
    last_duration: float | None = None
    #: Exit status of the last script run (minus the signal number if killed; None for a
    #: TCP check, a timeout or a spawn failure).
    last_exit: int | None = None
    last_ok: bool | None = None


class CheckRunner:
    """Runs one check every ``interval`` seconds and reports each result.

    Ticks follow a fixed schedule from ``start()``; if the event loop was stalled past a
    tick, the schedule restarts from now instead of firing a burst of catch-up runs.
    """

    def __init__(self, check: CheckScript | TcpCheck, on_result: OnResult) -> None:
        self.check = check
        self.on_result = on_result
        self.counters = CheckCounters()
        self._ticker: asyncio.Task[None] | None = None
        self._run: asyncio.Task[None] | None = None
        self._skip_log = RateLimitedLog()

    def start(self) -> None:
        """Start ticking (the first run starts at once). Needs a running event loop."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick_forever(), name=f"check {self.check.name}"
            )

    async def aclose(self) -> None:
        """Stop ticking and end a run in progress (its process group is killed and reaped)."""
        for task in (self._ticker, self._run):
            if task is not None:
                task.cancel()
        for task in (self._ticker, self._run):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._run = None

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self._run is not None and not self._run.done():
                self.counters.skipped += 1
                self._skip_log(
                    logging.WARNING,
                    "check %s: previous run still running or being killed, skipping this run",
                    self.check.name,
                )
            else:
                self._run = loop.create_task(self._run_once())
            next_at += self.check.interval
            now = loop.time()
            if next_at < now:
                next_at = now
            await asyncio.sleep(next_at - now)

    async def _run_once(self) -> None:
        check = self.check
        if isinstance(check, CheckScript):
            result = await run_process(
                check.argv,
                time_limit=check.effective_timeout,
                kill_grace=check.kill_grace,
                user=check.user,
            )
            ok, detail = result.ok, result.describe()
            if result.output:
                detail += f"; output: {result.output}"
            duration, exit_code, timed_out = result.duration, result.returncode, result.timed_out
        else:
            start = asyncio.get_running_loop().time()
            ok, timed_out, detail = await tcp_connect(
                check.address, check.port, check.effective_timeout
            )
            duration = asyncio.get_running_loop().time() - start
            exit_code = None
        self._record(ok, detail, duration, exit_code, timed_out)

    def _record(
        self, ok: bool, detail: str, duration: float, exit_code: int | None, timed_out: bool
    ) -> None:
        c = self.counters
        c.runs += 1
        c.failures += 0 if ok else 1
        c.timeouts += 1 if timed_out else 0
        c.last_duration, c.last_exit = duration, None if timed_out else exit_code
        # Edges at WARNING/INFO, steady state at DEBUG: a check failing every 2 s for hours
        # must not fill the journal.
        changed = c.last_ok is not ok
        c.last_ok = ok
        level = logging.DEBUG if not changed else (logging.INFO if ok else logging.WARNING)
        log.log(level, "check %s: %s: %s", self.check.name, "OK" if ok else "FAILED", detail)
        try:
            self.on_result(self.check.name, ok, detail)
        except Exception:
            log.exception("check %s: result handler failed", self.check.name)
