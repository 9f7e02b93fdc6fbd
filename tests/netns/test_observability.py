"""Metrics, status and drain against real agents in the lab (issue 5).

Metrics are scraped over HTTP inside the node's namespace during a real failover, and
must show the transition, the counters and the drop reasons; ``vrrp-agent status
--json`` must match the kernel; ``vrrp-agent drain`` must hand over within the skew.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.core.packet import encode_advertisement, encode_ipv4_datagram
from agent.core.timers import skew_time
from agent.lab import Lab, wait_for
from agent.lab.netns import Node, Proc, control_socket_path
from agent.lab.runners import Instance, agent_command, agent_toml

pytestmark = pytest.mark.netns

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

SCRAPE = (
    "import sys, urllib.request;"
    "print(urllib.request.urlopen('http://127.0.0.1:9650' + sys.argv[1], timeout=5)"
    ".read().decode())"
)
SEND_BAD_TTL = (
    "import socket, sys;"
    "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW);"
    "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[2]));"
    "[s.sendto(bytes.fromhex(sys.argv[1]), ('224.0.0.18', 0)) for _ in range(5)]"
)


def start(node: Node, priority: int, vip: object) -> tuple[Proc, str]:
    sock = control_socket_path()
    config = node.lab.workdir / f"obs-{node.index}.toml"
    instance = Instance(vrid=51, priority=priority, vips=(vip,), advert_interval=0.1)  # type: ignore[arg-type]
    config.write_text(agent_toml((instance,), global_options={"control_socket": sock}))
    proc = node.spawn([*agent_command(), "run", "--config", str(config)], name=f"obs-{node.index}")
    return proc, sock


def metrics(node: Node) -> Samples:
    text = node.run([sys.executable, "-c", SCRAPE, "/metrics"]).stdout
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    matches = [
        v for (n, lbl), v in samples.items() if n == name and set(labels.items()) <= set(lbl)
    ]
    return sum(matches)


def status(node: Node, sock: str) -> dict[str, object]:
    out = node.run([*agent_command(), "status", "--json", "--socket", sock]).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_metrics_and_status_follow_a_failover_and_count_drops(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    master, _ = start(lab[0], 200, vip)
    wait_for(lambda: "VI_1: BACKUP -> MASTER" in master.output(), 10, what="n0 master")
    backup, backup_sock = start(lab[1], 100, vip)
    wait_for(lambda: "VI_1: INITIALIZE -> BACKUP" in backup.output(), 10, what="n1 backup")
    wait_for(lambda: "metrics: http://" in backup.output(), 10, what="n1 metrics")

    # Adverts with TTL 64 (they crossed a router): dropped, counted by reason.
    bad = encode_ipv4_datagram(
        encode_advertisement(
            version=3, vrid=51, priority=254, interval_cs=10, addresses=(vip.ip,),
            source=lab[0].ip,
        ),
        source=lab[0].ip,
        ttl=64,
    )  # fmt: skip
    lab[0].run([sys.executable, "-c", SEND_BAD_TTL, bad.hex(), str(lab[0].ip)])
    wait_for(
        lambda: value(metrics(lab[1]), "vrrp_packets_dropped_total", reason="bad_ttl") >= 5,
        5,
        what="bad_ttl drops in the metrics",
    )
    before = metrics(lab[1])
    assert value(before, "vrrp_instance_state", state="BACKUP") == 1

    master.kill()
    wait_for(lambda: lab[1].has_address(vip.ip), 5, what="takeover")
    wait_for(lambda: "BACKUP -> MASTER" in backup.output(), 5, what="n1 master")
    after = metrics(lab[1])
    assert value(after, "vrrp_instance_state", state="MASTER") == 1
    assert value(after, "vrrp_instance_state", state="BACKUP") == 0
    assert value(after, "vrrp_instance_transitions_total", to="MASTER", cause="master_down") == 1
    assert value(after, "vrrp_instance_adverts_received_total") >= 1

    report = status(lab[1], backup_sock)
    (instance,) = report["instances"]  # type: ignore[misc]
    assert instance["state"] == "MASTER"
    assert instance["vips"] == [str(vip)]
    assert lab[1].has_address(vip.ip)
    assert instance["master"]["address"] == str(lab[1].ip)


def test_drain_hands_over_within_the_skew_and_undrain_takes_back(
    make_lab: Callable[[int], Lab],
) -> None:
    lab = make_lab(2)
    vip = lab.vip()
    first, first_sock = start(lab[0], 200, vip)
    wait_for(lambda: "VI_1: BACKUP -> MASTER" in first.output(), 10, what="n0 master")
    second, _ = start(lab[1], 100, vip)
    wait_for(lambda: "VI_1: INITIALIZE -> BACKUP" in second.output(), 10, what="n1 backup")
    drained_at = time.monotonic()
    lab[0].run([*agent_command(), "drain", "VI_1", "--socket", first_sock])
    moved_at = lab[1].wait_address(vip.ip, added=True, since=drained_at, timeout=5)
    assert moved_at - drained_at < skew_time(3, 100, 10) + 0.25
    time.sleep(1.0)  # a drained node must not take the VIP back, preempt or not
    assert status(lab[0], first_sock)["instances"][0]["state"] == "BACKUP"  # type: ignore[index]
    assert not lab[0].has_address(vip.ip)
    lab[0].run([*agent_command(), "undrain", "VI_1", "--socket", first_sock])
    wait_for(lambda: lab[0].has_address(vip.ip), 5, what="n0 takes the VIP back")
    assert (
        IPv4Address(
            status(lab[0], first_sock)["instances"][0]["master"]["address"]  # type: ignore[index]
        )
        == lab[0].ip
    )
