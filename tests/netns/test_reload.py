"""Live reload (SIGHUP and ``vrrp-agent reload``): unchanged instances are untouched.

The acceptance criteria of issue 5: a reload without change causes no transition and no
gratuitous ARP and no VIP blinks; an invalid file is rejected with its error and the old
configuration keeps running; added, removed and changed instances are applied.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.lab import Lab, LabError, wait_for
from agent.lab.netns import Node, Proc, control_socket_path
from agent.lab.pcap import frames
from agent.lab.runners import Instance, agent_command, agent_toml

pytestmark = pytest.mark.netns


def write(config: Path, *instances: Instance) -> None:
    """The configuration file; the same control socket every time, so that rewriting the
    file changes only the instances (``[global]`` changes need a restart)."""
    socket = config.with_suffix(".sock-path")
    if not socket.exists():
        socket.write_text(control_socket_path())
    options = {"control_socket": socket.read_text()}
    config.write_text(agent_toml(instances, global_options=options))


def start(node: Node, config: Path, *instances: Instance) -> Proc:
    write(config, *instances)
    return node.spawn([*agent_command(), "run", "--config", str(config)], name="agent-reload")


def transitions(proc: Proc) -> list[str]:
    return [line for line in proc.output().splitlines() if " -> " in line and ": " in line]


def test_reload_without_change_moves_nothing_and_a_bad_file_keeps_the_old_config(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(1)
    node = lab[0]
    vip = lab.vip()
    config = lab.workdir / "reload.toml"
    one = Instance(vrid=51, priority=200, vips=(vip,), advert_interval=0.1, garp_master_delay=0)
    proc = start(node, config, one)
    wait_for(lambda: "VI_1: BACKUP -> MASTER" in proc.output(), 10, what="VI_1 master")
    node.wait_address(vip.ip, added=True, since=0, timeout=5)
    before = transitions(proc)
    with lab.capture("reload") as capture:
        reloaded_at = time.monotonic()
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for_output(r"reloaded: 1 unchanged, 0 started, 0 stopped", timeout=5)
        time.sleep(0.5)  # long enough for any GARP burst to show on the wire
    assert transitions(proc) == before
    assert not frames(capture.path, "arp", ["arp.src.proto_ipv4"])
    with pytest.raises(LabError, match="was not removed"):
        node.wait_address(vip.ip, added=False, since=reloaded_at, timeout=0.3)

    # A file that validates but names an interface this host lacks: refused before
    # anything changes.
    write(config, one)
    config.write_text(
        config.read_text()
        + '\n[[instance]]\nname = "VI_9"\ninterface = "nope0"\nvrid = 9\n'
        + 'vips = ["192.0.2.9"]\n'
    )
    proc.popen.send_signal(signal.SIGHUP)
    proc.wait_for_output(r"reload rejected, running configuration kept: nope0: no such", 5)
    assert transitions(proc) == before

    config.write_text("[[instance]]\nname = 'VI_1'\nvrid = 300\n")
    proc.popen.send_signal(signal.SIGHUP)
    proc.wait_for_output(r"reload rejected, running configuration kept: .*instance\[0\]", timeout=5)
    assert transitions(proc) == before
    assert node.has_address(vip.ip)
    assert proc.alive()


def test_reload_applies_added_removed_and_changed_instances(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(1)
    node = lab[0]
    vip1, vip2 = lab.vip(100), lab.vip(101)
    config = lab.workdir / "reload.toml"
    one = Instance(name="VI_1", vrid=51, priority=200, vips=(vip1,), advert_interval=0.1)
    two = Instance(name="VI_2", vrid=52, priority=200, vips=(vip2,), advert_interval=0.1)
    proc = start(node, config, one)
    wait_for(lambda: "VI_1: BACKUP -> MASTER" in proc.output(), 10, what="VI_1 master")
    before = transitions(proc)

    write(config, one, two)
    proc.popen.send_signal(signal.SIGHUP)
    proc.wait_for_output(r"reloaded: 1 unchanged, 1 started, 0 stopped \(VI_2\)", timeout=5)
    wait_for(lambda: "VI_2: BACKUP -> MASTER" in proc.output(), 10, what="VI_2 master")
    wait_for(lambda: node.has_address(vip2.ip), 5, what="VI_2's VIP")
    assert [line for line in transitions(proc) if "VI_1" in line] == [
        line for line in before if "VI_1" in line
    ]

    write(config, two)
    removed_at = time.monotonic()
    proc.popen.send_signal(signal.SIGHUP)
    proc.wait_for_output(r"reloaded: 1 unchanged, 0 started, 1 stopped \(VI_1\)", timeout=5)
    node.wait_address(vip1.ip, added=False, since=removed_at, timeout=5)
    assert "VI_1: MASTER -> INITIALIZE (shutdown)" in proc.output()
    assert node.has_address(vip2.ip)
    proc.terminate()
    assert proc.wait(10) == 0
