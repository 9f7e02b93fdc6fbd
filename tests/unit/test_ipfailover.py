"""agent.ipfailover: the OPENSHIFT_HA_* environment becomes the configuration a hand-written
file would give, with the image's bugs fixed; and ``vrrp-agent config --from-env`` prints it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import ConfigError, parse_config
from agent.ipfailover import (
    NodeFacts,
    assign_vrids,
    build_document,
    choose_interface,
    config_from_env,
    expand_vips,
    parse_preemption,
    priorities,
    read_environment,
    split_groups,
)
from agent.lab import Lab
from agent.tomlout import dumps

VRRP_AGENT = Path(sys.executable).parent / "vrrp-agent"
NODE = NodeFacts("ens3", IPv4Address("192.168.1.11"))


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


def env_error(**environ: str) -> str:
    return error_of(lambda: config_from_env(environ, NODE))


@pytest.fixture
def executable(tmp_path: Path) -> Path:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


class TestEquivalence:
    """The acceptance test of issue 4: variables and hand-written TOML give the same config."""

    def test_default_tcp_check(self) -> None:
        environ = {
            "OPENSHIFT_HA_CONFIG_NAME": "web-vips",
            "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5-6, 10.0.0.20",
            "OPENSHIFT_HA_REPLICA_COUNT": "1",  # every instance "master-type": no hashing
            "OPENSHIFT_HA_MONITOR_PORT": "8080",
            "OPENSHIFT_HA_CHECK_INTERVAL": "3",
        }
        # Node .11: slot 11, so bids alternate 255 - 11 and 11 + 1 (ipfailover.md §4.4).
        expected = """
[[instance]]
name = "web_vips_VIP_1"
interface = "ens3"
vrid = 11
priority = 244
version = 2
advert_interval = 1
preempt_delay = 300
auth_type = "pass"
auth_pass = "web-vips"
vips = ["10.0.0.5"]
monitor_port = 8080
monitor_interval = 3

[[instance]]
name = "web_vips_VIP_2"
interface = "ens3"
vrid = 12
priority = 12
version = 2
advert_interval = 1
preempt_delay = 300
auth_type = "pass"
auth_pass = "web-vips"
vips = ["10.0.0.6"]
monitor_port = 8080
monitor_interval = 3

[[instance]]
name = "web_vips_VIP_3"
interface = "ens3"
vrid = 13
priority = 244
version = 2
advert_interval = 1
preempt_delay = 300
auth_type = "pass"
auth_pass = "web-vips"
vips = ["10.0.0.20"]
monitor_port = 8080
monitor_interval = 3
"""
        assert config_from_env(environ, NODE) == parse_config(tomllib.loads(expected))

    def test_check_script_notify_groups_and_nopreempt(self, executable: Path) -> None:
        environ = {
            "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5-7",
            "OPENSHIFT_HA_VIP_GROUPS": "2",
            "OPENSHIFT_HA_CHECK_SCRIPT": f"{executable} --port 8080",
            "OPENSHIFT_HA_CHECK_INTERVAL": "5",
            "OPENSHIFT_HA_NOTIFY_SCRIPT": str(executable),
            "OPENSHIFT_HA_PREEMPTION": "nopreempt",
            "OPENSHIFT_HA_VRRP_ID_OFFSET": "40",
            "HA_EXCLUDED_VRRP_IDS": "41",
        }
        expected = f"""
[[script]]
name = "chk_OpenShift_IPFailover"
path = "{executable}"
args = ["--port", "8080"]
interval = 5

[[instance]]
name = "OpenShift_IPFailover_VIP_1"
interface = "ens3"
vrid = 42
priority = 244
version = 2
preempt = false
auth_type = "pass"
auth_pass = "OpenShif"
vips = ["10.0.0.5", "10.0.0.6"]
track_scripts = ["chk_OpenShift_IPFailover"]
notify = "{executable}"

[[instance]]
name = "OpenShift_IPFailover_VIP_2"
interface = "ens3"
vrid = 43
priority = 244
version = 2
preempt = false
auth_type = "pass"
auth_pass = "OpenShif"
vips = ["10.0.0.7"]
track_scripts = ["chk_OpenShift_IPFailover"]
notify = "{executable}"
"""
        config = config_from_env(environ, NODE)
        assert config == parse_config(tomllib.loads(expected))
        # The check replaces the TCP check (ipfailover.md §5).
        assert config.instances[0].tcp_check(NODE.address) is None

    def test_monitor_port_0_means_no_check(self) -> None:
        config = config_from_env(
            {"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5", "OPENSHIFT_HA_MONITOR_PORT": "0"}, NODE
        )
        (vi,) = config.instances
        assert (vi.monitor_port, vi.track_scripts, config.scripts) == (0, (), ())
        assert vi.tcp_check(NODE.address) is None

    def test_defaults(self) -> None:
        (vi,) = config_from_env({"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5"}, NODE).instances
        assert (vi.name, vi.vrid, vi.version, vi.advert_interval_cs) == (
            "OpenShift_IPFailover_VIP_1",
            11,
            2,
            100,
        )
        assert (vi.preempt, vi.preempt_delay, vi.auth_pass) == (True, 300.0, "OpenShif")
        assert vi.vips == (IPv4Interface("10.0.0.5/32"),)
        assert vi.tcp_check(NODE.address) is not None
        assert (vi.monitor_port, vi.monitor_interval, vi.monitor_timeout) == (80, 2.0, 2.0)
        assert vi.tracked_interfaces[0].name == "ens3"

    def test_printed_toml_reads_back_as_the_same_config(self, executable: Path) -> None:
        environ = {
            "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5-9/24",
            "OPENSHIFT_HA_VIP_GROUPS": "3",
            "OPENSHIFT_HA_REPLICA_COUNT": "3",
            "OPENSHIFT_HA_CHECK_SCRIPT": f'{executable} \'two words\' "q\\"uote"',
            "OPENSHIFT_HA_NOTIFY_SCRIPT": f"{executable} --tag ha",
        }
        document = build_document(read_environment(environ), NODE)
        text = dumps(document, "header\nlines")
        assert text.startswith("# header\n# lines\n\n[[script]]\n")
        assert parse_config(tomllib.loads(text)) == config_from_env(environ, NODE)


class TestVips:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("10.0.0.5", ["10.0.0.5/32"]),
            ("10.0.0.5-7", ["10.0.0.5/32", "10.0.0.6/32", "10.0.0.7/32"]),
            ("10.0.0.5-5", ["10.0.0.5/32"]),
            ("10.0.0.5-10.0.0.6", ["10.0.0.5/32", "10.0.0.6/32"]),
            ("10.0.0.255-10.0.1.1", ["10.0.0.255/32", "10.0.1.0/32", "10.0.1.1/32"]),
            # The image's bugs (ipfailover.md §4.2): spaces collapsed entries, and a CIDR
            # suffix was merged into the address (10.0.0.1/24 -> 10.0.0.124).
            ("10.0.0.5-6 10.0.0.250-251", ["10.0.0.5/32", "10.0.0.6/32", "10.0.0.250/32",
                                           "10.0.0.251/32"]),
            (" 10.0.0.1/24 ,\t10.0.0.9 ", ["10.0.0.1/24", "10.0.0.9/32"]),
            ("10.0.0.5-6/28", ["10.0.0.5/28", "10.0.0.6/28"]),
        ],
    )  # fmt: skip
    def test_expansion(self, text: str, expected: list[str]) -> None:
        assert expand_vips(text) == tuple(IPv4Interface(vip) for vip in expected)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "required: the virtual IPs, e.g. 10.0.0.5-7,10.0.0.20"),
            (" , ", "required: the virtual IPs, e.g. 10.0.0.5-7,10.0.0.20"),
            ("10.0.0.7-5", "range '10.0.0.7-5' ends before it starts"),
            ("10.0.0.5-256", "not an IPv4 address or range such as 10.0.0.5, 10.0.0.5-7 or "
             "10.0.0.5-10.0.0.7 (optionally followed by /prefix), got '10.0.0.5-256'"),
            ("10.0.0", "not an IPv4 address or range such as 10.0.0.5, 10.0.0.5-7 or "
             "10.0.0.5-10.0.0.7 (optionally followed by /prefix), got '10.0.0'"),
            ("10.0.0.1/33", "not an IPv4 address or range such as 10.0.0.5, 10.0.0.5-7 or "
             "10.0.0.5-10.0.0.7 (optionally followed by /prefix), got '10.0.0.1/33'"),
            ("2001:db8::1f39-1f3b", "IPv6 is not supported yet, got '2001:db8::1f39-1f3b'"),
            ("10.0.0.5,10.0.0.4-6", "10.0.0.5 is listed twice"),
            ("224.0.0.18", "224.0.0.18 cannot be a virtual address (not unicast)"),
            ("10.0.0.0-10.1.0.0", "more than 65025 addresses (255 VRRP instances of 255 "
             "addresses)"),
        ],
    )  # fmt: skip
    def test_errors(self, text: str, message: str) -> None:
        assert error_of(lambda: expand_vips(text)) == f"OPENSHIFT_HA_VIRTUAL_IPS: {message}"


def vips(count: int) -> tuple[IPv4Interface, ...]:
    return tuple(IPv4Interface(f"10.0.{i // 256}.{i % 256}") for i in range(1, count + 1))


class TestGroups:
    @pytest.mark.parametrize(
        ("count", "groups", "sizes"),
        [
            (3, 0, [1, 1, 1]),  # unset: one VIP per instance
            (7, 3, [3, 2, 2]),  # the first 7 % 3 groups get one more
            (6, 3, [2, 2, 2]),
            (3, 5, [1, 1, 1]),  # more groups than VIPs: one VIP each
            (4, 4, [1, 1, 1, 1]),
            (5, 1, [5]),
        ],
    )
    def test_split_like_the_image(self, count: int, groups: int, sizes: list[int]) -> None:
        chunks = split_groups(vips(count), groups)
        assert [len(chunk) for chunk in chunks] == sizes
        assert tuple(vip for chunk in chunks for vip in chunk) == vips(count)

    def test_too_many_vips_in_one_group(self) -> None:
        assert error_of(lambda: split_groups(vips(511), 2)) == (
            "OPENSHIFT_HA_VIP_GROUPS: 511 VIPs in 2 groups puts 256 VIPs in one instance, but "
            "an advert carries at most 255 (RFC 9568 §5.2.5); use at least 3 groups"
        )

    def test_bad_value(self) -> None:
        assert env_error(OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.1", OPENSHIFT_HA_VIP_GROUPS="two") == (
            "OPENSHIFT_HA_VIP_GROUPS: must be an integer at least 0, got 'two'"
        )


class TestVrids:
    def test_offset_plus_instance_number(self) -> None:
        assert assign_vrids(3, 10, frozenset()) == [11, 12, 13]

    def test_excluded_ids_shift_this_and_later_ids(self) -> None:
        # The example of ipfailover.md §4.3.
        assert assign_vrids(3, 10, {11, 12}) == [13, 14, 15]
        assert assign_vrids(3, 10, {12}) == [11, 13, 14]

    def test_255_is_the_last_valid_vrid(self) -> None:
        assert assign_vrids(1, 254, frozenset()) == [255]
        assert assign_vrids(5, 0, frozenset()) == [1, 2, 3, 4, 5]

    def test_overflow_is_an_error_not_a_dropped_instance(self) -> None:
        assert error_of(lambda: assign_vrids(8, 250, frozenset())) == (
            "OPENSHIFT_HA_VRRP_ID_OFFSET: 8 VRRP instances need VRIDs up to 258, but a VRID is "
            "at most 255 (RFC 9568 §5.2.3); lower the offset, exclude fewer IDs or put "
            "several VIPs in one instance with OPENSHIFT_HA_VIP_GROUPS"
        )

    def test_overflow_caused_by_exclusions(self) -> None:
        message = error_of(lambda: assign_vrids(1, 253, {254, 255}))
        assert message.startswith(
            "OPENSHIFT_HA_VRRP_ID_OFFSET: 1 VRRP instance need VRIDs up to 256 (after "
            "skipping HA_EXCLUDED_VRRP_IDS)"
        )

    def test_from_the_environment(self) -> None:
        config = config_from_env(
            {
                "OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-3",
                "OPENSHIFT_HA_VRRP_ID_OFFSET": "0",
                "HA_EXCLUDED_VRRP_IDS": "1 3,4",
            },
            NODE,
        )
        assert [vi.vrid for vi in config.instances] == [2, 5, 6]

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("OPENSHIFT_HA_VRRP_ID_OFFSET", "255", "must be an integer 0..254, got '255'"),
            ("OPENSHIFT_HA_VRRP_ID_OFFSET", "-1", "must be an integer 0..254, got '-1'"),
            ("HA_EXCLUDED_VRRP_IDS", "12 x", "each ID must be an integer 1..255, got 'x'"),
            ("HA_EXCLUDED_VRRP_IDS", "0", "each ID must be an integer 1..255, got '0'"),
        ],
    )
    def test_bad_values(self, variable: str, value: str, message: str) -> None:
        environ = {"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1", variable: value}
        assert env_error(**environ) == f"{variable}: {message}"


def stable(address: IPv4Address, vrid: int) -> int:
    """The documented replacement of $RANDOM % 32, recomputed independently."""
    return int.from_bytes(hashlib.sha256(f"{address}/{vrid}".encode()).digest()[:4]) % 32


class TestPriorities:
    def test_the_images_example(self) -> None:
        """ipfailover.md §4.1: 3 VIPs, replicas 2, node .11: only VIP 2 is master-type."""
        node = IPv4Address("192.168.1.11")
        assert priorities(node, [11, 12, 13], 2) == [
            11 + stable(node, 11),
            244,
            11 + stable(node, 13),
        ]

    def test_flip_flop_and_nopreempt(self) -> None:
        node = IPv4Address("10.0.0.11")
        assert priorities(node, [1, 2, 3, 4], 1) == [244, 12, 244, 12]
        # With nopreempt the image never records a "master", so there is no flip-flop.
        assert priorities(node, [1, 2, 3, 4], 1, preempt=False) == [244, 244, 244, 244]

    def test_deterministic(self) -> None:
        node = IPv4Address("10.0.0.37")
        first = priorities(node, list(range(11, 40)), 3)
        assert first == priorities(node, list(range(11, 40)), 3)
        # ... but not constant: the offsets depend on the VRID.
        assert len(set(first)) > 5

    def test_owner_priority_is_never_bid(self) -> None:
        """Slot 0 (.0 and .128) bid 255 in the image, keepalived's forced MASTER."""
        for node in (IPv4Address("10.0.1.0"), IPv4Address("10.0.0.128")):
            assert priorities(node, [11], 1) == [254]

    @given(
        last_octet=st.integers(0, 255),
        replicas=st.integers(1, 9),
        offset=st.integers(0, 200),
        preempt=st.booleans(),
    )
    def test_always_1_to_254(
        self, last_octet: int, replicas: int, offset: int, preempt: bool
    ) -> None:
        node = IPv4Address(f"10.1.2.{last_octet}")
        bids = priorities(node, list(range(offset + 1, offset + 56)), replicas, preempt=preempt)
        assert all(1 <= bid <= 254 for bid in bids)

    def test_backup_bid_of_0_becomes_1(self) -> None:
        # Slot 64: slot % 64 == 0; find a VRID whose stable offset is 0.
        node = IPv4Address("10.0.0.64")
        vrid = next(v for v in range(1, 256) if stable(node, v) == 0)
        # Replicas 3: idx = 64 % 3 + 1 = 2, so instance 1 is a backup ("slave") bid.
        assert priorities(node, [vrid], 3)[0] == 1

    def test_replica_count_must_be_positive(self) -> None:
        assert env_error(OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.1", OPENSHIFT_HA_REPLICA_COUNT="0") == (
            "OPENSHIFT_HA_REPLICA_COUNT: must be an integer at least 1, got '0'"
        )


class TestPreemption:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("preempt_delay 300", (True, 300.0)),
            ("preempt_delay   30", (True, 30.0)),
            ("preempt_delay 0", (True, 0.0)),
            ("nopreempt", (False, 0.0)),
            ("preempt_nodelay", (True, 0.0)),
        ],
    )
    def test_variants(self, text: str, expected: tuple[bool, float]) -> None:
        assert parse_preemption(text) == expected

    def test_default_delays_every_instance(self) -> None:
        """keepalived cleared the delay on the image's ``state MASTER`` instances (§4.5)."""
        config = config_from_env({"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-4"}, NODE)
        assert {(vi.preempt, vi.preempt_delay) for vi in config.instances} == {(True, 300.0)}

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("preempt_nodelay 300", '"preempt_nodelay 300" is a typo in the OpenShift '
             'documentation; write "preempt_delay 300" to wait 300 s before taking over, or '
             '"preempt_nodelay" to take over at once'),
            ("preempt_delay 1001", "the preempt_delay must be 0..1000 seconds, got '1001'"),
            ("preempt_delay soon", "the preempt_delay must be 0..1000 seconds, got 'soon'"),
            ("preempt_delay", 'must be "preempt_delay N" (seconds, 0..1000), "nopreempt" or '
             "\"preempt_nodelay\", got 'preempt_delay'"),
            ("garp_master_delay 1", 'must be "preempt_delay N" (seconds, 0..1000), "nopreempt" '
             "or \"preempt_nodelay\", got 'garp_master_delay 1'"),
        ],
    )  # fmt: skip
    def test_errors(self, text: str, message: str) -> None:
        assert error_of(lambda: parse_preemption(text)) == f"OPENSHIFT_HA_PREEMPTION: {message}"


class TestUnicastAndOtherVariables:
    BASE = {"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1"}

    PEERS = "192.168.1.11, 192.168.1.12 192.168.1.13"

    def test_unicast_peers_go_to_every_instance_without_the_node_itself(self) -> None:
        """The Deployment hands every pod the same list, NODE (192.168.1.11) included."""
        config = config_from_env(
            self.BASE
            | {"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.1-3", "OPENSHIFT_HA_UNICAST_PEERS": self.PEERS},
            NODE,
        )
        peers = (IPv4Address("192.168.1.12"), IPv4Address("192.168.1.13"))
        assert [(vi.unicast_peers, vi.unicast_src) for vi in config.instances] == [
            (peers, None)
        ] * 3

    def test_unicast_equals_the_hand_written_toml(self) -> None:
        environ = self.BASE | {
            "OPENSHIFT_HA_UNICAST_PEERS": self.PEERS,
            "OPENSHIFT_HA_USE_UNICAST": "true",
            "UNICAST_SOURCE_IPADDRESS": "192.168.1.21",
        }
        document = build_document(read_environment(environ), NODE)
        assert document["instance"][0]["unicast_peers"] == ["192.168.1.12", "192.168.1.13"]
        assert document["instance"][0]["unicast_src"] == "192.168.1.21"
        assert parse_config(tomllib.loads(dumps(document))) == config_from_env(environ, NODE)

    def test_unicast_source_is_left_out_of_the_peers(self) -> None:
        config = config_from_env(
            self.BASE
            | {
                "OPENSHIFT_HA_UNICAST_PEERS": "192.168.1.21,192.168.1.12",
                "UNICAST_SOURCE_IPADDRESS": "192.168.1.21",
            },
            NODE,
        )
        assert config.instances[0].unicast_peers == (IPv4Address("192.168.1.12"),)
        assert config.instances[0].unicast_src == IPv4Address("192.168.1.21")

    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({"OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2;10.0.0.3"},
             "OPENSHIFT_HA_UNICAST_PEERS: not an IPv4 address such as 10.0.0.2, got "
             "'10.0.0.2;10.0.0.3' (list the nodes' addresses separated by commas or spaces)"),
            ({"OPENSHIFT_HA_UNICAST_PEERS": "node-b"},
             "OPENSHIFT_HA_UNICAST_PEERS: not an IPv4 address such as 10.0.0.2, got "
             "'node-b' (list the nodes' addresses separated by commas or spaces)"),
            ({"OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2 224.0.0.18"},
             "OPENSHIFT_HA_UNICAST_PEERS: 224.0.0.18 is not a unicast address"),
            ({"OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2,10.0.0.2"},
             "OPENSHIFT_HA_UNICAST_PEERS: 10.0.0.2 is listed twice"),
            ({"OPENSHIFT_HA_UNICAST_PEERS": "192.168.1.11"},
             "OPENSHIFT_HA_UNICAST_PEERS: lists only this node's own address (192.168.1.11); "
             "list every IP failover node"),
            ({"OPENSHIFT_HA_USE_UNICAST": "true"},
             "OPENSHIFT_HA_USE_UNICAST: true, but OPENSHIFT_HA_UNICAST_PEERS is empty; list "
             "the addresses of the nodes running IP failover (the same list on every node)"),
            ({"OPENSHIFT_HA_USE_UNICAST": "false", "OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2"},
             "OPENSHIFT_HA_USE_UNICAST: false, but OPENSHIFT_HA_UNICAST_PEERS lists peers, "
             "which the image used for unicast anyway (it never read USE_UNICAST); set it to "
             "true (or unset it) for unicast, or unset the peers for multicast"),
            ({"OPENSHIFT_HA_USE_UNICAST": "maybe"},
             "OPENSHIFT_HA_USE_UNICAST: must be true or false, got 'maybe'"),
            ({"OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2", "UNICAST_SOURCE_IPADDRESS": "me"},
             "UNICAST_SOURCE_IPADDRESS: not an IPv4 address, got 'me'"),
        ],
    )  # fmt: skip
    def test_unicast_errors(self, environ: dict[str, str], message: str) -> None:
        assert env_error(**self.BASE, **environ) == message

    def test_use_unicast_is_read(self) -> None:
        """The image never read it (ipfailover.md §3, origin#6674): unicast was on exactly
        when the peer list was non-empty; unset, that is still the rule here."""
        multicast = config_from_env(self.BASE | {"OPENSHIFT_HA_USE_UNICAST": "false"}, NODE)
        assert multicast.instances[0].unicast_peers == ()
        unset = config_from_env(self.BASE | {"OPENSHIFT_HA_UNICAST_PEERS": "10.0.0.2"}, NODE)
        assert unset.instances[0].unicast_peers == (IPv4Address("10.0.0.2"),)

    def test_unicast_source_without_peers_is_a_warning(self) -> None:
        settings = read_environment(self.BASE | {"UNICAST_SOURCE_IPADDRESS": "10.0.0.9"})
        assert settings.unicast_src is None
        assert settings.warnings == (
            "UNICAST_SOURCE_IPADDRESS is set, but without OPENSHIFT_HA_UNICAST_PEERS the "
            "agent multicasts, from the interface's primary address",
        )

    def test_multicast_source_address_is_not_supported_yet(self) -> None:
        assert env_error(**self.BASE, MULTICAST_SOURCE_IPADDRESS="10.0.0.9").startswith(
            "MULTICAST_SOURCE_IPADDRESS: choosing the multicast advert source address is not "
            "supported"
        )

    def test_monitor_port_must_be_a_port(self) -> None:
        """The image deleted non-digits: "80/tcp" gave 80 and "8o" gave 8."""
        assert env_error(**self.BASE, OPENSHIFT_HA_MONITOR_PORT="8o") == (
            "OPENSHIFT_HA_MONITOR_PORT: must be an integer 0..65535, got '8o'"
        )

    def test_check_script_must_be_executable(self, tmp_path: Path) -> None:
        assert env_error(**self.BASE, OPENSHIFT_HA_CHECK_SCRIPT="check.sh") == (
            "OPENSHIFT_HA_CHECK_SCRIPT: must be an absolute path (scripts run without a shell "
            'or search path), got "check.sh"'
        )
        missing = tmp_path / "nope"
        assert env_error(**self.BASE, OPENSHIFT_HA_NOTIFY_SCRIPT=str(missing)) == (
            f'OPENSHIFT_HA_NOTIFY_SCRIPT: "{missing}" does not exist'
        )

    def test_check_interval(self) -> None:
        assert env_error(**self.BASE, OPENSHIFT_HA_CHECK_INTERVAL="0") == (
            "OPENSHIFT_HA_CHECK_INTERVAL: must be a number of seconds more than 0, got '0'"
        )

    def test_firewall_variables_only_warn(self) -> None:
        settings = read_environment(self.BASE | {"OPENSHIFT_HA_IPTABLES_CHAIN": "INPUT"})
        assert settings.warnings == (
            "OPENSHIFT_HA_IPTABLES_CHAIN is set, but the agent does not add firewall rules: "
            "allow IP protocol 112 to 224.0.0.18 on the VRRP interface yourself",
        )

    def test_password_is_what_keepalived_took_from_the_name(self) -> None:
        name = {"OPENSHIFT_HA_CONFIG_NAME": "my ha config"}
        settings = read_environment(self.BASE | name)
        assert (settings.auth_pass, settings.scrubbed_name) == ("my", "myhaconfig")

    def test_config_name_without_usable_characters(self) -> None:
        assert env_error(**self.BASE, OPENSHIFT_HA_CONFIG_NAME="!!!") == (
            "OPENSHIFT_HA_CONFIG_NAME: must contain 1..56 characters from A-Z a-z 0-9 _ - "
            "(the others are dropped), got '!!!'"
        )

    def test_empty_variables_mean_the_default(self) -> None:
        environ = self.BASE | {"OPENSHIFT_HA_MONITOR_PORT": "", "OPENSHIFT_HA_PREEMPTION": " "}
        (vi,) = config_from_env(environ, NODE).instances
        assert (vi.monitor_port, vi.preempt_delay) == (80, 300.0)


class TestChooseInterface:
    def test_requested_interface(self) -> None:
        assert choose_interface("br-ex", {"eth1", "br-ex"}, "eth1") == "br-ex"

    def test_requested_interface_must_exist(self) -> None:
        """The image fell through to the next candidate: another network."""
        assert error_of(lambda: choose_interface("br-ex", {"lo", "eth1"}, "eth1")) == (
            "OPENSHIFT_HA_NETWORK_INTERFACE: interface 'br-ex' does not exist on this node "
            "(it has eth1, lo)"
        )

    def test_probe_order_then_default_route(self) -> None:
        assert choose_interface(None, {"ens3", "eth1", "eth0"}, "eth0") == "eth1"
        assert choose_interface(None, {"ens3", "eth0"}, "eth0") == "ens3"
        assert choose_interface(None, {"lo", "eth0", "bond0"}, "bond0") == "bond0"

    def test_nothing_found(self) -> None:
        assert error_of(lambda: choose_interface(None, {"lo", "eth0"}, None)).startswith(
            "OPENSHIFT_HA_NETWORK_INTERFACE: not set, none of enp0s3, enp0s8, eth1, ens3 exists"
        )


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.text(max_size=20),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.lists(st.text(max_size=5), max_size=3),
            st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
        ),
        max_size=5,
    )
)
def test_toml_writer_round_trips(table: dict[str, object]) -> None:
    document = {"instance": [table], "global": {"x": 'a\x00\x7f"\\\n\té'}}
    assert tomllib.loads(dumps(document)) == document


# --- The command ---------------------------------------------------------------------------


def vrrp_agent(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSHIFT_", "HA_"))}
    return subprocess.run(
        [str(VRRP_AGENT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean | environ,
    )


NODE_ARGS = ("--node-interface", "ens3", "--node-address", "192.168.1.11")


class TestConfigCommand:
    def test_prints_the_configuration_as_toml(self) -> None:
        environ = {"OPENSHIFT_HA_VIRTUAL_IPS": "10.0.0.5-7", "OPENSHIFT_HA_VIP_GROUPS": "2"}
        result = vrrp_agent("config", "--from-env", *NODE_ARGS, **environ)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith("# vrrp-agent configuration built from the OPENSHIFT_HA_")
        assert "for interface ens3, node address 192.168.1.11." in result.stdout
        printed = parse_config(tomllib.loads(result.stdout))
        assert printed == config_from_env(environ, NODE)

    def test_output_passes_check(self, tmp_path: Path) -> None:
        result = vrrp_agent("config", "--from-env", *NODE_ARGS, OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.5")
        path = tmp_path / "from-env.toml"
        path.write_text(result.stdout)
        checked = vrrp_agent("check", str(path))
        assert checked.returncode == 0, checked.stderr

    def test_warnings_go_to_stderr(self) -> None:
        result = vrrp_agent(
            "config",
            "--from-env",
            *NODE_ARGS,
            OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.5",
            OPENSHIFT_HA_NFTABLES_RULE="yes",
        )
        assert result.returncode == 0
        assert result.stderr.startswith("warning: OPENSHIFT_HA_NFTABLES_RULE is set")
        assert tomllib.loads(result.stdout)

    @pytest.mark.parametrize("command", ["config", "run"])
    def test_environment_error_is_one_line_and_status_2(self, command: str) -> None:
        result = vrrp_agent(
            command,
            "--from-env",
            *NODE_ARGS,
            OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.5",
            OPENSHIFT_HA_UNICAST_PEERS="10.0.0.2 node-b",
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith("error: OPENSHIFT_HA_UNICAST_PEERS: not an IPv4 address")
        assert result.stderr.count("\n") == 1

    def test_node_options_go_together(self) -> None:
        result = vrrp_agent(
            "config", "--from-env", "--node-interface", "ens3", OPENSHIFT_HA_VIRTUAL_IPS="10.0.0.5"
        )
        assert result.returncode == 2
        assert result.stderr == "error: --node-interface and --node-address go together\n"

    def test_node_address_must_be_ipv4(self) -> None:
        result = vrrp_agent("config", "--from-env", "--node-address", "fe80::1")
        assert result.returncode == 2
        assert "not an IPv4 address: 'fe80::1'" in result.stderr

    def test_config_requires_from_env(self) -> None:
        result = vrrp_agent("config")
        assert result.returncode == 2
        assert "the following arguments are required: --from-env" in result.stderr


@pytest.mark.netns
class TestLookupInANamespace:
    """Without --node-* options the facts come from the kernel, as in an ipfailover pod."""

    def run_in(self, lab: Lab, *environ: str) -> subprocess.CompletedProcess[str]:
        argv = ["env", *environ, str(VRRP_AGENT), "config", "--from-env"]
        return lab[0].run(argv, check=False)

    def test_requested_interface_and_its_address(self, make_lab: Callable[[int], Lab]) -> None:
        lab = make_lab(1)
        result = self.run_in(
            lab, f"OPENSHIFT_HA_VIRTUAL_IPS={lab.vip().ip}", "OPENSHIFT_HA_NETWORK_INTERFACE=eth0"
        )
        assert result.returncode == 0, result.stderr
        config = parse_config(tomllib.loads(result.stdout))
        node = NodeFacts("eth0", lab[0].ip)
        assert config == config_from_env({"OPENSHIFT_HA_VIRTUAL_IPS": str(lab.vip().ip)}, node)

    def test_missing_requested_interface(self, make_lab: Callable[[int], Lab]) -> None:
        lab = make_lab(1)
        result = self.run_in(
            lab, "OPENSHIFT_HA_VIRTUAL_IPS=10.0.0.5", "OPENSHIFT_HA_NETWORK_INTERFACE=br-ex"
        )
        assert result.returncode == 2
        assert result.stderr == (
            "error: OPENSHIFT_HA_NETWORK_INTERFACE: interface 'br-ex' does not exist on this "
            "node (it has eth0, lo)\n"
        )

    def test_default_route_interface(self, make_lab: Callable[[int], Lab]) -> None:
        lab = make_lab(1)
        no_route = self.run_in(lab, "OPENSHIFT_HA_VIRTUAL_IPS=10.0.0.5")
        assert no_route.returncode == 2
        assert "there is no route to 8.8.8.8" in no_route.stderr
        lab[0].run(["ip", "route", "add", "default", "via", str(lab.vip(50).ip)])
        routed = self.run_in(lab, "OPENSHIFT_HA_VIRTUAL_IPS=10.0.0.5")
        assert routed.returncode == 0, routed.stderr
        assert f"for interface eth0, node address {lab[0].ip}." in routed.stdout
