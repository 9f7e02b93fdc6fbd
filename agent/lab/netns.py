"""A throw-away Ethernet segment of network namespaces, for end-to-end tests and the demo.

Theory of operation
-------------------
A :class:`Lab` builds one *hub* namespace ``vl<uid>-hub`` holding a Linux bridge and N *node*
namespaces ``vl<uid>-n<i>``. Each node gets one veth pair created directly between its own
namespace and the hub (``ip -n NODE link add eth0 type veth peer name n<i> netns HUB``), so
nothing ever appears in the root namespace. Node ``i`` has ``10.<a>.<b>.<i+1>/24`` on ``eth0``;
``<a>.<b>`` is picked at random among the subnets no live lab of this host uses.

Everything a lab creates is registered with it and removed by :meth:`Lab.close`, which runs
from ``__exit__`` on success, on exceptions and on ``KeyboardInterrupt``: spawned processes
are killed by process group, then every process still inside a lab namespace, then the
namespaces. A state file ``/run/vrrp-agent-lab/<uid>.json`` records the owner process (pid +
start time, so a recycled pid does not count) before the first namespace exists; this is how
:func:`sweep_stale` tells the leftovers of a crashed run from a lab another process is using.

Commands are argv lists run through ``ip netns exec`` with a timeout, never a shell. The API is
synchronous (tests and the demo are plain functions); asyncio callers should wrap calls in
``asyncio.to_thread``. Each node has an :class:`AddressMonitor` (``ip -o monitor address``
read by a thread) so that tests measure *when* a VIP appeared or vanished from the kernel's
own notification, not from a polling loop's granularity.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from types import TracebackType

log = logging.getLogger("agent.lab")

#: Every lab namespace starts with this prefix; :func:`sweep_stale` only ever touches these.
PREFIX = "vl"
STATE_DIR = Path("/run/vrrp-agent-lab")
BRIDGE = "br0"
INTERFACE = "eth0"
_NAME_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})-(hub|n\d+)$")
_MONITOR_RE = re.compile(r"^(Deleted )?\d+: (\S+)\s+inet (\d+\.\d+\.\d+\.\d+)/\d+")
_COMMAND_TIMEOUT = 10.0
#: IEEE 802 "local experimental" EtherType: the capture's end marker is no real protocol.
_MARKER_ETHERTYPE = bytes.fromhex("88b5")


class LabError(RuntimeError):
    """A lab operation failed (command error, timeout, condition never met)."""


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    what: str,
    interval: float = 0.005,
) -> float:
    """Poll ``predicate`` until it holds; return the monotonic time it was first seen true.

    Raises :class:`LabError` naming ``what`` once ``timeout`` seconds have passed, so a test
    failure says which condition was never met instead of hanging or sleeping blindly.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.2f} s waiting for {what}")
        time.sleep(interval)


def _run(argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT, check: bool = True) -> str:
    """Run a root-namespace management command (``ip netns ...``) and return its stdout."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: timed out after {timeout} s") from exc
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def exec_in(
    namespace: str, argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a short command inside ``namespace`` and return its result."""
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{namespace}: {' '.join(argv)}: timed out after {timeout} s") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{namespace}: {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}"
        )
    return done


# ---------------------------------------------------------------------------------------------
# Ownership records and the stale sweep


def _process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: distinguishes a live owner from a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(record: dict[str, object]) -> bool:
    pid = record.get("pid")
    return isinstance(pid, int) and _process_start_time(pid) == record.get("start_time")


def _read_record(uid: str) -> dict[str, object] | None:
    try:
        data = json.loads((STATE_DIR / f"{uid}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lab_namespaces() -> dict[str, list[str]]:
    """Existing lab namespaces grouped by lab uid."""
    labs: dict[str, list[str]] = {}
    for line in _run(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME_RE.match(name)
        if match:
            labs.setdefault(match.group(1), []).append(name)
    return labs


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL whatever still runs inside ``namespace`` (a netns with processes outlives del)."""
    pids = _run(["ip", "netns", "pids", namespace], check=False).split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_namespace(namespace: str) -> None:
    _kill_namespace_processes(namespace)
    _run(["ip", "netns", "del", namespace], check=False)


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    """Serialise subnet allocation and sweeping between concurrent lab users on this host."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def control_socket_path() -> str:
    """A control socket path of its own for one lab agent.

    Lab nodes are network namespaces but share the file system, so every agent needs its
    own socket instead of the default ``/run/vrrp-agent/control.sock``. Named after this
    process, so :func:`sweep_stale` can remove those a ``kill -9`` left behind.
    """
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return str(STATE_DIR / f"{os.getpid()}-{next(_socket_serial)}.sock")


_socket_serial = itertools.count()


def sweep_stale() -> list[str]:
    """Delete the namespaces and records of labs whose owner process is gone.

    Returns the names of the namespaces removed. Labs of live processes (another test run,
    another helper's tests) are left alone.
    """
    removed: list[str] = []
    with _state_lock():
        namespaces = _lab_namespaces()
        uids = set(namespaces) | {p.stem for p in STATE_DIR.glob("*.json")}
        for uid in sorted(uids):
            record = _read_record(uid)
            if record is not None and _owner_alive(record):
                continue
            for namespace in sorted(namespaces.get(uid, []), key=lambda n: n.endswith("hub")):
                _delete_namespace(namespace)
                removed.append(namespace)
            (STATE_DIR / f"{uid}.json").unlink(missing_ok=True)
        for sock in STATE_DIR.glob("*.sock"):
            pid = sock.name.split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                sock.unlink(missing_ok=True)
    if removed:
        log.info("swept stale lab namespaces: %s", " ".join(removed))
    return removed


def _allocate_subnet(uid: str) -> IPv4Network:
    """Pick 10.a.b.0/24 unused by any live lab, and record ownership before building anything."""
    with _state_lock():
        used = set()
        for path in STATE_DIR.glob("*.json"):
            record = _read_record(path.stem)
            if record is not None and _owner_alive(record):
                used.add(record.get("subnet"))
        rng = random.Random()
        while True:
            subnet = IPv4Network(f"10.{rng.randint(64, 254)}.{rng.randint(0, 255)}.0/24")
            if str(subnet) not in used:
                break
        pid = os.getpid()
        record = {"pid": pid, "start_time": _process_start_time(pid), "subnet": str(subnet)}
        (STATE_DIR / f"{uid}.json").write_text(json.dumps(record))
    return subnet


# ---------------------------------------------------------------------------------------------
# Processes, address monitors and captures


class Proc:
    """A long-running process in a namespace, in its own process group, logging to a file."""

    def __init__(self, name: str, namespace: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.namespace = namespace
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as out:
            # start_new_session: the process leads its own group, so kill() reaches its
            # children too (keepalived forks its VRRP process; an agent might fork helpers).
            self.popen = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> float:
        """SIGKILL the whole process group (a crash: no goodbye); return the monotonic time."""
        now = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return now

    def terminate(self) -> float:
        """SIGTERM the process itself (graceful stop); return the monotonic time it was sent."""
        now = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        return now

    def wait(self, timeout: float = _COMMAND_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name} did not exit within {timeout} s") from exc

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float) -> float:
        """Wait until the log matches the regex ``pattern``; fail early if the process died."""
        regex = re.compile(pattern, re.MULTILINE)

        def seen() -> bool:
            if regex.search(self.output()):
                return True
            if not self.alive():
                raise LabError(
                    f"{self.name} exited ({self.popen.returncode}) before logging {pattern!r}:\n"
                    + self.output()[-2000:]
                )
            return False

        return wait_for(seen, timeout, what=f"{self.name} to log {pattern!r}", interval=0.02)

    def stop(self) -> None:
        """Teardown: kill the group and reap, whatever state it is in."""
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


@dataclass(frozen=True, slots=True)
class AddressEvent:
    at: float  # monotonic time the notification was read
    added: bool
    address: IPv4Address
    interface: str


#: Times the lab re-adds a node's address until its address monitor reports it.
MONITOR_ATTEMPTS = 10


class AddressMonitor:
    """Kernel address notifications (RTM_NEWADDR/RTM_DELADDR) of one namespace, with times."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.events: list[AddressEvent] = []
        self._changed = threading.Condition()
        self._popen = subprocess.Popen(
            ["ip", "-n", namespace, "-o", "monitor", "address"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, name=f"addrmon-{namespace}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            now = time.monotonic()
            match = _MONITOR_RE.match(line)
            if not match:
                continue
            event = AddressEvent(
                now, match.group(1) is None, IPv4Address(match.group(3)), match.group(2)
            )
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def wait_event(
        self, address: IPv4Address, *, added: bool, since: float, timeout: float
    ) -> AddressEvent:
        """The first add (or delete) of ``address`` seen at or after monotonic time ``since``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if event.address == address and event.added == added and event.at >= since:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    verb = "added to" if added else "removed from"
                    raise LabError(
                        f"{address} was not {verb} {self.namespace} within {timeout:.2f} s"
                    )
                self._changed.wait(remaining)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(5)
        self._thread.join(5)


class Capture:
    """dumpcap on the hub's bridge: every frame any node sends on the segment, timestamped."""

    def __init__(self, lab: Lab, path: Path) -> None:
        self.path = path
        self._hub = lab.hub
        self._proc = lab.spawn_in(
            lab.hub, ["dumpcap", "-i", BRIDGE, "-q", "-w", str(path)], name=path.stem
        )
        # dumpcap announces itself once the socket is bound: frames before that would be lost.
        self._proc.wait_for_output(r"^Capturing on", timeout=10)

    def stop(self) -> Path:
        """Stop capturing once every frame sent so far is in the file; return the pcap.

        libpcap hands dumpcap frames in blocks (TPACKET_V3), and a signal makes dumpcap drop
        the block being filled: the last few hundred ms of traffic, exactly the part a test is
        about. So before the signal, a marker frame is sent on the bridge and we wait until
        its unique payload shows up in the file: everything sent before it is then written.
        """
        if self._proc.alive():
            marker = f"vrrp-lab-marker-{secrets.token_hex(8)}".encode()
            frame = b"\xff" * 6 + b"\x02" + b"\x00" * 5 + _MARKER_ETHERTYPE + marker
            send = (
                "import socket, sys; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
                f"s.bind(({BRIDGE!r}, 0)); s.send(bytes.fromhex(sys.argv[1]))"
            )

            for _attempt in range(5):
                exec_in(self._hub, [sys.executable, "-c", send, frame.hex()])
                try:
                    wait_for(lambda: marker in self.path.read_bytes(), 1.0, what="the marker")
                    break
                except LabError:
                    continue
            else:
                log.warning("%s: end marker never written; the capture may miss frames", self.path)
            self._proc.terminate()
            self._proc.wait(10)
        return self.path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Nodes and the lab


class Node:
    """One namespace on the segment: ``eth0`` with ``address``."""

    def __init__(self, lab: Lab, index: int) -> None:
        self.lab = lab
        self.index = index
        self.name = f"{PREFIX}{lab.uid}-n{index}"
        self.address = IPv4Interface(f"{lab.network[index + 1]}/{lab.network.prefixlen}")
        self.monitor: AddressMonitor | None = None

    def __repr__(self) -> str:
        return f"Node({self.name}, {self.address})"

    @property
    def ip(self) -> IPv4Address:
        return self.address.ip

    def run(
        self, argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the node and return its result."""
        return exec_in(self.name, argv, timeout=timeout, check=check)

    def spawn(self, argv: Sequence[str], *, name: str) -> Proc:
        """Start a long-running process in the node; its output goes to ``<workdir>/<name>.log``."""
        return self.lab.spawn_in(self.name, argv, name=name)

    def addresses(self) -> set[IPv4Address]:
        """The IPv4 addresses on ``eth0`` right now, as the kernel reports them."""
        out = self.run(["ip", "-j", "-4", "addr", "show", "dev", INTERFACE]).stdout
        found: set[IPv4Address] = set()
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                found.add(IPv4Address(info["local"]))
        return found

    def has_address(self, address: IPv4Address | IPv4Interface) -> bool:
        ip = address.ip if isinstance(address, IPv4Interface) else address
        return ip in self.addresses()

    def mac(self) -> str:
        """The MAC address of ``eth0`` (lower case, colon separated)."""
        out = self.run(["ip", "-j", "link", "show", "dev", INTERFACE]).stdout
        return str(json.loads(out)[0]["address"])

    def set_link(self, *, up: bool) -> None:
        self.run(["ip", "link", "set", INTERFACE, "up" if up else "down"])

    def wait_address(
        self, address: IPv4Address, *, added: bool = True, since: float, timeout: float
    ) -> float:
        """Monotonic time the kernel announced ``address`` added/removed after ``since``."""
        assert self.monitor is not None
        return self.monitor.wait_event(address, added=added, since=since, timeout=timeout).at


class Lab:
    """N nodes on one bridge. Use as a context manager; teardown always runs."""

    def __init__(self, nodes: int = 3, *, workdir: Path | None = None) -> None:
        if not 1 <= nodes <= 200:
            raise ValueError(f"a lab has 1..200 nodes, got {nodes}")
        self.uid = secrets.token_hex(3)
        self.hub = f"{PREFIX}{self.uid}-hub"
        self.workdir = workdir or Path("/tmp") / f"vrrp-lab-{self.uid}"
        self.network = IPv4Network("10.255.255.0/24")  # replaced in __enter__
        self._count = nodes
        self.nodes: list[Node] = []
        self._namespaces: list[str] = []
        self._procs: list[Proc] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"Lab({self.uid}, {self.network}, {len(self.nodes)} nodes)"

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    def vip(self, host: int = 100) -> IPv4Interface:
        """An address of the lab subnet no node uses (nodes are .1 .. .N)."""
        return IPv4Interface(f"{self.network[host]}/{self.network.prefixlen}")

    def _build(self) -> None:
        sweep_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.network = _allocate_subnet(self.uid)
        self._add_namespace(self.hub)
        hub = ["ip", "-n", self.hub]
        _run([*hub, "link", "set", "lo", "up"])
        # No STP, no forward delay, no snooping: a port forwards as soon as it is up, and
        # 224.0.0.18 is flooded like a broadcast.
        _run([*hub, "link", "add", BRIDGE, "type", "bridge", "stp_state", "0"])
        _run([*hub, "link", "set", BRIDGE, "type", "bridge", "forward_delay", "0"])
        _run([*hub, "link", "set", BRIDGE, "type", "bridge", "mcast_snooping", "0"])
        _run([*hub, "link", "set", BRIDGE, "up"])
        for index in range(self._count):
            node = Node(self, index)
            self.nodes.append(node)
            self._add_namespace(node.name)
            ns = ["ip", "-n", node.name]
            _run([*ns, "link", "set", "lo", "up"])
            # IPv6 autoconfiguration chatter would only clutter captures: VRRP here is IPv4.
            no_ipv6 = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
            _run(["ip", "netns", "exec", node.name, "sysctl", "-q", "-w", *no_ipv6])
            peer = ["peer", "name", f"n{index}", "netns", self.hub]
            _run([*ns, "link", "add", INTERFACE, "type", "veth", *peer])
            _run([*hub, "link", "set", f"n{index}", "master", BRIDGE, "up"])
            node.monitor = AddressMonitor(node.name)
            _run([*ns, "link", "set", INTERFACE, "up"])
            # Seeing the node's own address being added after the monitor started proves
            # the monitor is subscribed, so later events cannot be missed. `ip monitor` may
            # subscribe only after the first add on a loaded machine: then add it again.
            for attempt in range(1, MONITOR_ATTEMPTS + 1):
                started = time.monotonic() - 1
                _run([*ns, "addr", "replace", str(node.address), "dev", INTERFACE])
                try:
                    node.wait_address(node.ip, since=started, timeout=1.0)
                    break
                except LabError:
                    if attempt == MONITOR_ATTEMPTS:
                        raise
                    _run([*ns, "addr", "del", str(node.address), "dev", INTERFACE])
        log.info("lab %s: %d nodes on %s (hub %s)", self.uid, self._count, self.network, self.hub)

    def _add_namespace(self, name: str) -> None:
        self._namespaces.append(name)
        _run(["ip", "netns", "add", name])

    def spawn_in(self, namespace: str, argv: Sequence[str], *, name: str) -> Proc:
        if self._closed:
            raise LabError("lab is closed")
        proc = Proc(name, namespace, argv, self.workdir / f"{name}.log")
        self._procs.append(proc)
        return proc

    def capture(self, name: str = "capture") -> Capture:
        """Start capturing on the bridge into ``<workdir>/<name>.pcapng``."""
        return Capture(self, self.workdir / f"{name}.pcapng")

    def close(self) -> None:
        """Kill every process, delete every namespace and the ownership record. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # A second Ctrl-C must not leave namespaces behind halfway through the teardown.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for proc in self._procs:
                proc.stop()
            for node in self.nodes:
                if node.monitor is not None:
                    node.monitor.stop()
            for namespace in reversed(self._namespaces):
                _delete_namespace(namespace)
            (STATE_DIR / f"{self.uid}.json").unlink(missing_ok=True)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        log.info("lab %s torn down (logs in %s)", self.uid, self.workdir)
