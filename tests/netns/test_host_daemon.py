"""The whole daemon (``vrrp-agent run``) in lab nodes: startup cleanup, takeover, shutdown.

What is asserted is what the kernel and the wire show: address notifications from the
node's kernel, and the frames the hub's bridge carried (dumpcap + tshark).
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lab.pcap import await_frames, rows
from agent.lab.runners import Instance, agent_command, start_agent

pytestmark = pytest.mark.netns


def test_stale_vip_removed_then_takeover_announced_then_released_on_sigterm(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    node = lab[0]
    vip = lab.vip()
    mac = node.mac()
    # What a `kill -9` of an earlier run leaves behind.
    node.run(["ip", "address", "add", str(vip), "dev", "eth0"])
    with lab.capture() as capture:
        since = time.monotonic()
        agent = start_agent(
            node,
            Instance(vrid=51, priority=100, vips=(vip,), advert_interval=0.1, garp_master_delay=0),
        )
        removed_at = node.wait_address(vip.ip, added=False, since=since, timeout=10)
        agent.proc.wait_for_output(r"VI_1: removed stale VIP\(s\) " + str(vip), timeout=5)
        agent.proc.wait_for_output(r"INFO receive path: ", timeout=5)
        agent.wait_state("MASTER", timeout=10)
        added_at = node.wait_address(vip.ip, added=True, since=removed_at, timeout=10)
        assert removed_at < added_at
        await_frames(capture, "arp", 5)
        stopped = agent.terminate()
        assert agent.proc.wait(10) == 0
        node.wait_address(vip.ip, added=False, since=stopped, timeout=5)
        await_frames(capture, "vrrp.prio == 0", 1)
    assert not node.has_address(vip)
    output = agent.output()
    assert "VI_1: INITIALIZE -> BACKUP (startup)" in output
    assert "VI_1: BACKUP -> MASTER (no advert within master-down interval" in output
    assert "VI_1: MASTER -> INITIALIZE (shutdown)" in output
    assert "Traceback" not in output

    adverts = rows(capture.path, "vrrp", "ip.src", "ip.dst", "ip.ttl", "vrrp.prio")
    assert len(adverts) >= 2
    assert all(a[:3] == [str(node.ip), "224.0.0.18", "255"] for a in adverts)
    assert [a[3] for a in adverts[:-1]] == ["100"] * (len(adverts) - 1)
    assert adverts[-1][3] == "0"  # RFC 9568 §6.4.3: the master leaves with priority 0
    garps = rows(
        capture.path,
        "arp",
        "eth.dst",
        "arp.opcode",
        "arp.src.hw_mac",
        "arp.src.proto_ipv4",
        "arp.dst.proto_ipv4",
    )
    assert garps == [["ff:ff:ff:ff:ff:ff", "1", mac, str(vip.ip), str(vip.ip)]] * 5


def test_sighup_reloads_and_a_second_signal_during_shutdown_leaves_no_vip(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(1)
    node = lab[0]
    vip = lab.vip()
    since = time.monotonic()
    agent = start_agent(node, Instance(vrid=52, priority=255, vips=(vip,), garp_master_delay=0))
    agent.wait_state("MASTER", timeout=10)
    node.wait_address(vip.ip, added=True, since=since, timeout=10)
    agent.proc.popen.send_signal(signal.SIGHUP)
    agent.proc.wait_for_output(r"reloaded: 1 unchanged, 0 started, 0 stopped", timeout=5)
    assert agent.proc.alive()
    stopped = agent.terminate()
    agent.proc.popen.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
    assert agent.proc.wait(10) == 0
    node.wait_address(vip.ip, added=False, since=stopped, timeout=5)
    assert not node.has_address(vip)
    # Both signals may be pending at once; the kernel then delivers SIGINT first.
    assert re.search(r"SIG(INT|TERM): shutdown already in progress", agent.output())
    assert "Traceback" not in agent.output()


@pytest.mark.parametrize(
    ("interface", "prefix", "message"),
    [
        ("nope0", (), "error: nope0: no such interface"),
        (
            "eth0",
            ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"),
            "error: eth0: opening a raw VRRP socket needs the CAP_NET_RAW capability",
        ),
    ],
    ids=["missing-interface", "missing-cap-net-raw"],
)
def test_a_startup_problem_is_one_clear_error_line(
    make_lab: Callable[[int], Lab], interface: str, prefix: tuple[str, ...], message: str
) -> None:
    lab = make_lab(1)
    config = lab.workdir / "agent.toml"
    config.write_text(
        f'[[instance]]\nname = "VI_1"\ninterface = "{interface}"\nvrid = 1\n'
        f'priority = 255\nvips = ["{lab.vip()}"]\n'
    )
    argv = [*prefix, *agent_command(), "run", "--config", str(config)]
    done = lab[0].run(argv, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(message)
    assert not lab[0].has_address(lab.vip())


FLOODER = """
import socket, sys, time
from ipaddress import IPv4Address
from agent.core.packet import encode_advertisement, encode_ipv4_datagram

source, target, seconds = IPv4Address(sys.argv[1]), sys.argv[2], float(sys.argv[3])
advert = encode_advertisement(version=3, vrid=53, priority=254, interval_cs=10,
                              addresses=(IPv4Address("192.0.2.1"),), source=source)
junk = encode_ipv4_datagram(advert, source=source, destination=IPv4Address(target), ttl=1)
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(100):
        try:
            sock.sendto(junk, (target, 0))
            sent += 1
        except BlockingIOError:
            pass
print(sent)
"""


def test_a_flood_of_bad_packets_is_counted_while_adverts_keep_their_interval(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    master_node, backup_node = lab[0], lab[1]
    vip = lab.vip()
    fast = {"vrid": 53, "vips": (vip,), "advert_interval": 0.1, "garp_master_delay": 0}
    master = start_agent(master_node, Instance(priority=200, **fast))  # type: ignore[arg-type]
    master.wait_state("MASTER", timeout=10)
    backup = start_agent(backup_node, Instance(priority=100, **fast))  # type: ignore[arg-type]
    backup.wait_state("BACKUP", timeout=10)
    # Unicast to the master only (TTL 1: never valid), from the backup's node: the backup's
    # own socket never sees it, so it is a pure test of the master's receive loop.
    argv = [sys.executable, "-c", FLOODER, str(backup_node.ip), str(master_node.ip), "2"]
    sent = int(backup_node.run(argv, timeout=30).stdout)
    assert sent > 10_000
    # Master_Down_Interval is ~0.36 s: one starved timer and the backup would have taken over.
    assert backup.states() == [("VI_1", "BACKUP")]
    assert master.state() == "MASTER"
    master.proc.wait_for_output(r"dropped \d+ datagram\(s\) since the last report: bad_ttl", 5)
    lines = [line for line in master.output().splitlines() if "bad_ttl" in line]
    # Rate-limited: the first drop at once, then at most one line per 10 s.
    assert 1 <= len(lines) <= 2


@pytest.mark.netns
def test_systemd_notifications_ready_watchdog_stopping(
    make_lab: Callable[[int], Lab], tmp_path: Path
) -> None:
    """Type=notify: READY=1 once the routers run, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
    import socket

    from agent.lab.runners import agent_toml

    lab = make_lab(1)
    node = lab[0]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify.sock"
    listener.bind(str(notify_path))
    listener.settimeout(10)
    config = lab.workdir / "notify.toml"
    config.write_text(agent_toml((Instance(vrid=54, priority=100, vips=(lab.vip(),)),)))
    proc = node.spawn(
        [
            "env",
            f"NOTIFY_SOCKET={notify_path}",
            "WATCHDOG_USEC=400000",  # a ping every 0.2 s
            *agent_command(),
            "run",
            "--config",
            str(config),
        ],
        name="agent-notify",
    )
    messages: list[str] = []
    try:
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(listener.recv(4096).decode())
        pings = 0
        while pings < 3:
            if listener.recv(4096).decode() == "WATCHDOG=1":
                pings += 1
        proc.terminate()
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert proc.wait(10) == 0
    finally:
        listener.close()
    ready = next(m for m in messages if m.startswith("READY=1"))
    assert "STATUS=1 virtual router(s) running" in ready
