"""keepalived.conf conversion (agent/keepalived_conf.py): real-world files convert, the result
validates through parse_config, and every problem names the file, the line and the keyword.

The samples in tests/vectors/keepalived-conf/ include the configuration the OpenShift
ipfailover image generates (reconstructed from ipfailover.md §4: 3 VIPs, 2 replicas, node
192.168.1.11 on ens3). The namespace test at the end runs the agent on a converted file next
to a stock keepalived reading the same file shape.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from agent.config import AgentConfig, parse_config
from agent.core.packet import AuthType, ChecksumForm
from agent.keepalived_conf import (
    KeepalivedConfError,
    convert_file,
    is_keepalived,
    load_keepalived,
)
from agent.lab import Lab
from agent.lab.runners import AgentSpeaker, KeepalivedSpeaker, agent_command

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "keepalived-conf"
VRRP_AGENT = Path(sys.executable).parent / "vrrp-agent"
VALID_SAMPLES = [
    "openshift-ipfailover.conf",
    "manpage-example.conf",
    "include/main.conf",
    "sync-group.conf",
    "scripts-weights.conf",
    "pass-auth-v2.conf",
    "warnings-only.conf",
]


def load(path: Path) -> tuple[AgentConfig, tuple[str, ...]]:
    return load_keepalived(path)


def write(tmp_path: Path, text: str, name: str = "keepalived.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def instance_conf(body: str, name: str = "VI_1") -> str:
    return (
        f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id 51\n"
        f"    virtual_ipaddress {{\n        10.0.0.100/24\n    }}\n{body}}}\n"
    )


def error_of(path: Path) -> str:
    with pytest.raises(KeepalivedConfError) as caught:
        load(path)
    return str(caught.value)


@pytest.mark.parametrize("sample", VALID_SAMPLES)
def test_sample_converts_and_validates(sample: str) -> None:
    conversion = convert_file(VECTORS / sample)
    config = parse_config(conversion.document)
    assert config.instances
    # What `config convert` prints reads back as the same configuration.
    from agent.tomlout import dumps

    assert parse_config(tomllib.loads(dumps(conversion.document))) == config


@pytest.fixture(scope="module")
def converted() -> tuple[AgentConfig, tuple[str, ...]]:
    """The OpenShift sample, converted once."""
    return load(VECTORS / "openshift-ipfailover.conf")


class TestOpenShiftImage:
    """The file the keepalived-ipfailover image generates (ipfailover.md §4.1)."""

    def test_instances(self, converted: tuple[AgentConfig, tuple[str, ...]]) -> None:
        config, _ = converted
        got = [(i.name, i.vrid, i.priority, i.interface) for i in config.instances]
        assert got == [
            ("OpenShift_IPFailover_VIP_1", 11, 34, "ens3"),
            ("OpenShift_IPFailover_VIP_2", 12, 244, "ens3"),
            ("OpenShift_IPFailover_VIP_3", 13, 34, "ens3"),
        ]
        assert [i.vips for i in config.instances] == [
            (IPv4Interface("10.0.0.5/32"),),
            (IPv4Interface("10.0.0.6/32"),),
            (IPv4Interface("10.0.0.7/32"),),
        ]

    def test_keepalived_defaults_are_kept(
        self, converted: tuple[AgentConfig, tuple[str, ...]]
    ) -> None:
        config, _ = converted
        for instance in config.instances:
            assert instance.version == 2  # keepalived's default, ours is 3
            assert instance.advert_interval_cs == 100
            # keepalived sends the first 8 characters of the 20-character password.
            assert (instance.auth_type, instance.auth_pass) == (AuthType.SIMPLE, "OpenShif")
            assert instance.preempt
            assert [(t.name, t.weight) for t in instance.track_scripts] == [
                ("chk_OpenShift_IPFailover", 0)
            ]

    def test_state_master_clears_preempt_delay(
        self, converted: tuple[AgentConfig, tuple[str, ...]]
    ) -> None:
        """keepalived drops preempt_delay on the instance with state MASTER (§4.5)."""
        config, warnings = converted
        assert [i.preempt_delay for i in config.instances] == [300, 0, 300]
        assert (
            f"{VECTORS / 'openshift-ipfailover.conf'}:49: preempt_delay: dropped: keepalived "
            "clears it on an instance with state MASTER"
        ) in warnings

    def test_check_script_names_its_shell(
        self, converted: tuple[AgentConfig, tuple[str, ...]]
    ) -> None:
        config, warnings = converted
        (script,) = config.scripts
        assert script.argv == ("/bin/bash", "-c", "</dev/tcp/192.168.1.11/80")
        assert (script.interval, script.timeout, script.weight, script.rise, script.fall) == (
            2,
            2,
            0,
            1,
            1,
        )
        assert not any("shell syntax" in warning for warning in warnings)

    def test_mail_and_tuning_are_warnings(
        self, converted: tuple[AgentConfig, tuple[str, ...]]
    ) -> None:
        _, warnings = converted
        keywords = {warning.split(": ")[1] for warning in warnings}
        assert {
            "max_auto_priority",
            "notification_email",
            "notification_email_from",
            "smtp_server",
            "smtp_connect_timeout",
            "router_id",
            "state",
            "auth_pass",
            "preempt_delay",
        } == keywords


def test_manpage_example() -> None:
    config, warnings = load(VECTORS / "manpage-example.conf")
    vi1, vi2 = config.instances
    assert (vi1.version, vi1.priority, vi1.auth_pass) == (2, 100, "1111")
    assert [str(v) for v in vi1.vips] == [
        "192.168.200.16/32",
        "192.168.200.17/32",
        "192.168.200.18/32",
    ]
    assert (vi2.version, vi2.advert_interval_cs, vi2.preempt) == (3, 50, False)
    assert [str(v) for v in vi2.vips] == [
        "192.168.201.16/24",
        "192.168.201.20/24",
        "192.168.201.21/24",
        "192.168.201.22/24",
    ]
    assert (vi2.garp_master_delay, vi2.garp_master_refresh) == (10, 60)
    assert f"{VECTORS / 'manpage-example.conf'}:41: label: ignored: addresses are added " in (
        "\n".join(warnings)
    )


def test_include_relative_to_the_including_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    config, warnings = load(VECTORS / "include" / "main.conf")
    assert [i.name for i in config.instances] == ["WEB", "DB"]  # sorted glob order
    assert [i.version for i in config.instances] == [3, 3]  # global vrrp_version
    assert config.instances[0].advert_interval_cs == 20
    assert config.global_.script_user is not None
    assert config.scripts[0].argv == ("/bin/true",)
    assert warnings == ()


def test_sync_group() -> None:
    config, warnings = load(VECTORS / "sync-group.conf")
    (group,) = config.sync_groups
    assert (group.name, group.instances) == ("G1", ("VI_OUTSIDE", "VI_INSIDE"))
    assert group.notify.notify == ("/bin/true",)
    assert group.notify.master == ("/bin/true", "master")
    assert config.global_.notify_fifo == "/tmp/keepalived.fifo"
    # keepalived ignores weighted tracking on sync group members; so does the conversion.
    assert config.instances[0].track_scripts == ()
    assert [(t.name, t.weight) for t in config.instances[1].track_interfaces] == [("eth0", 0)]
    assert any("chk_gw: dropped: keepalived ignores weighted tracking" in w for w in warnings)


def test_scripts_with_weights() -> None:
    config, warnings = load(VECTORS / "scripts-weights.conf")
    haproxy, apiserver, pipeline = config.scripts
    assert haproxy.argv == (shutil.which("killall", path="/usr/sbin:/usr/bin:/sbin:/bin"),
                            "-0", "haproxy")  # fmt: skip
    assert (haproxy.interval, haproxy.weight) == (2, 2)
    assert (apiserver.interval, apiserver.timeout, apiserver.weight) == (3, 2, -20)
    assert (apiserver.fall, apiserver.rise) == (10, 2)
    # Shell syntax runs under an explicit /bin/sh -c, with keepalived's 1 s default interval.
    assert pipeline.argv == ("/bin/sh", "-c", "pidof haproxy || exit 1")
    assert pipeline.interval == 1
    assert any(":23: script: 'pidof haproxy || exit 1' uses shell syntax" in w for w in warnings)
    (instance,) = config.instances
    assert [(t.name, t.weight) for t in instance.track_scripts] == [
        ("chk_haproxy", 2),
        ("chk_apiserver", -30),
        ("chk_pipeline", 0),
    ]
    assert [(t.name, t.weight) for t in instance.track_interfaces] == [("eth1", -10)]
    assert instance.notify.master == ("/bin/true", "became", "master")
    assert instance.notify.backup == ("/bin/true",)
    assert instance.notify.notify == ("/bin/true",)


def test_pass_auth_v2() -> None:
    config, _ = load(VECTORS / "pass-auth-v2.conf")
    (instance,) = config.instances
    assert (instance.version, instance.advert_interval_cs) == (2, 200)
    assert (instance.auth_type, instance.auth_pass) == (AuthType.SIMPLE, "s3cret")
    assert instance.preempt_delay == 30


def test_unsupported_keyword_names_file_line_and_keyword() -> None:
    assert error_of(VECTORS / "unsupported-use-vmac.conf") == (
        f"{VECTORS / 'unsupported-use-vmac.conf'}:5: use_vmac: virtual MAC interfaces are "
        "not supported; the VIPs use the interface's MAC"
    )


def test_warnings_only_file() -> None:
    path = VECTORS / "warnings-only.conf"
    config, warnings = load(path)
    assert config.instances[0].vips == (IPv4Interface("10.5.0.10/24"),)
    assert [w.split(": ")[0] for w in warnings] == [
        f"{path}:{line}" for line in (3, 4, 5, 6, 7, 10, 20, 24, 25, 26, 28, 28, 28)
    ]


class TestSyntax:
    def test_comments_quotes_and_braces(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "! comment\n# comment\nvrrp_instance VI_1    # trailing comment\n{\n"
            "  interface eth0 ! another\n  virtual_router_id 51\n"
            "  authentication { auth_type PASS\n auth_pass ab!c#d }\n"
            '  virtual_ipaddress { "10.0.0.1/24" }\n'
            '  notify_master "/bin/echo {not a block} \\"q\\""\n}\n',
        )
        config, _ = load(path)
        (instance,) = config.instances
        assert instance.auth_pass == "ab!c#d"
        assert instance.notify.master == ("/bin/echo", "{not", "a", "block}", "q")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('vrrp_instance VI_1 {\n  notify "/bin/true\n}\n', ":2: unterminated quoted string"),
            ("vrrp_instance VI_1 {\n  interface eth0\n", ":1: vrrp_instance: block is never"),
            ("}\n", ":1: '}' with no block to close"),
            ("{\n", ":1: '{' with no keyword before it"),
            ("$IF=eth0\n", ":1: $IF: keepalived parameters"),
            ("vrrp_instance {\n}\n", ":1: vrrp_instance: expects one name"),
            ("global_defs {\n}\n", ": no vrrp_instance is defined"),
        ],
    )
    def test_syntax_errors(self, tmp_path: Path, text: str, message: str) -> None:
        assert message in error_of(write(tmp_path, text))

    def test_include_errors(self, tmp_path: Path) -> None:
        path = write(tmp_path, "include missing.conf\n")
        assert error_of(path) == f"{path}:1: include: {tmp_path}/missing.conf: no such file"
        loop = write(tmp_path, "include loop.conf\n", "loop.conf")
        assert "nested more than 16 deep" in error_of(loop)

    def test_include_glob_matching_nothing_is_a_warning(self, tmp_path: Path) -> None:
        path = write(tmp_path, "include nothing/*.conf\n" + instance_conf(""))
        _, warnings = load(path)
        assert warnings == (f"{path}:1: include: {tmp_path}/nothing/*.conf matches no file",)


class TestKeywords:
    def test_keepalived_defaults(self, tmp_path: Path) -> None:
        config, _ = load(write(tmp_path, instance_conf("")))
        (instance,) = config.instances
        assert (instance.version, instance.advert_interval_cs, instance.priority) == (2, 100, 100)
        assert instance.checksum is ChecksumForm.MESSAGE_ONLY

    def test_v3_checksum_as_v2(self, tmp_path: Path) -> None:
        config, _ = load(write(tmp_path, instance_conf("version 3\nv3_checksum_as_v2\n")))
        assert config.instances[0].checksum is ChecksumForm.MESSAGE_ONLY

    def test_global_garp_defaults(self, tmp_path: Path) -> None:
        text = "global_defs {\n vrrp_garp_master_delay 2\n vrrp_garp_master_refresh 30\n}\n"
        config, _ = load(write(tmp_path, text + instance_conf("garp_master_delay 1\n")))
        assert (config.instances[0].garp_master_delay, config.instances[0].garp_master_refresh) == (
            1,
            30,
        )

    def test_v2_advert_int_is_rounded_like_keepalived(self, tmp_path: Path) -> None:
        path = write(tmp_path, instance_conf("advert_int 1.4\n"))
        config, warnings = load(path)
        assert config.instances[0].advert_interval_cs == 100
        assert warnings == (
            f"{path}:7: advert_int: 1.4 s rounded to 1 s as keepalived does for VRRPv2",
        )

    def test_authentication_with_v3_is_dropped(self, tmp_path: Path) -> None:
        body = "version 3\nauthentication {\n auth_type PASS\n auth_pass x\n}\n"
        config, warnings = load(write(tmp_path, instance_conf(body)))
        assert config.instances[0].auth_type is AuthType.NONE
        assert (
            "authentication: dropped: keepalived ignores authentication with VRRPv3"
            in (warnings[0])
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("authentication {\n auth_type AH\n}\n", ":8: auth_type: AH authentication is not"),
            ("virtual_routes {\n}\n", ":7: virtual_routes: routes added on MASTER"),
            ("unicast_peer {\n 10.0.0.300\n}\n", ":8: 10.0.0.300: not an IPv4 address"),
            ("unicast_src_ip 10.0.0.1\n", ":7: unicast_src_ip: only applies in unicast mode"),
            ("unicast_ttl 64\n", ":7: unicast_ttl: unicast adverts are always sent with TTL"),
            ("frobnicate 1\n", ":7: frobnicate: unsupported keyword in vrrp_instance"),
            ("virtual_ipaddress {\n 2001:db8::1\n}\n", ":8: 2001:db8::1: IPv6 VIPs are not"),
            ("virtual_ipaddress {\n 10.0.0.9 dev eth1\n}\n", ":8: dev: VIPs on another"),
            ("virtual_ipaddress {\n 10.0.0.9 use_vmac\n}\n", ":8: use_vmac: virtual MAC"),
            ("priority 300\n", ":7: priority: must be 1..255, got 300 (converted to"),
            ("track_script {\n chk_x\n}\n", ':8: chk_x: instance "VI_1" tracks script'),
            ("track_script {\n chk weight -2 reverse\n}\n", ":8: chk: 'reverse' weights"),
            ("notify_master /bin/true nobody\n", ":7: notify_master: a per-script user"),
            ("notify /no/such/script\n", ':7: notify: "/no/such/script" does not exist'),
            ("priority high\n", ":7: priority: expects an integer, got 'high'"),
        ],
    )
    def test_instance_errors(self, tmp_path: Path, body: str, message: str) -> None:
        assert message in error_of(write(tmp_path, instance_conf(body)))

    def test_unicast(self, tmp_path: Path) -> None:
        body = "unicast_src_ip 10.0.0.1\nunicast_peer {\n  10.0.0.2\n  10.0.0.3 min_ttl 250\n}\n"
        path = write(tmp_path, instance_conf(body))
        config, warnings = load(path)
        (instance,) = config.instances
        assert [str(p) for p in instance.unicast_peers] == ["10.0.0.2", "10.0.0.3"]
        assert str(instance.unicast_src) == "10.0.0.1"
        assert warnings == (
            f"{path}:10: min_ttl: ignored: received TTLs are not checked against a range",
        )

    def test_unknown_global_keyword(self, tmp_path: Path) -> None:
        path = write(tmp_path, "global_defs {\n  vrrp_strict\n}\n" + instance_conf(""))
        assert error_of(path) == (
            f"{path}:2: vrrp_strict: strict mode (and its firewall rules) is not supported"
        )

    def test_relative_script_not_found(self, tmp_path: Path) -> None:
        text = 'vrrp_script chk {\n  script "no-such-command-xyz"\n}\n' + instance_conf("")
        assert ":2: script: 'no-such-command-xyz' is not in /usr/local/sbin:" in error_of(
            write(tmp_path, text)
        )


class TestDetection:
    @pytest.mark.parametrize(
        ("name", "text", "expected"),
        [
            ("x.conf", "[global]\n", True),
            ("x.toml", "vrrp_instance X {\n", False),
            ("keepalived", "# c\n\n! Configuration File for keepalived\n", True),
            ("keepalived", "# c\nglobal_defs {\n", True),
            ("keepalived", "vrrp_instance VI_1{\n", True),
            ("agent", "# c\n[[instance]]\n", False),
            ("agent", 'name = "x"\n', False),
        ],
    )
    def test_rule(self, tmp_path: Path, name: str, text: str, expected: bool) -> None:
        assert is_keepalived(write(tmp_path, text, name)) is expected


def vrrp_agent(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VRRP_AGENT), *argv], capture_output=True, text=True, timeout=60, check=False
    )


class TestCommandLine:
    def test_check_a_conf_file(self) -> None:
        path = VECTORS / "openshift-ipfailover.conf"
        result = vrrp_agent("check", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{path}: OK, 3 instances\n")
        assert "OpenShift_IPFailover_VIP_2: ens3 VRID 12, VRRPv2, priority 244" in result.stdout
        assert f"warning: {path}:46: state: ignored" in result.stderr

    def test_check_detects_keepalived_by_content(self, tmp_path: Path) -> None:
        path = write(tmp_path, (VECTORS / "pass-auth-v2.conf").read_text(), "keepalived")
        result = vrrp_agent("check", str(path))
        assert result.returncode == 0, result.stderr
        assert "VI_PASS: eth0 VRID 42, VRRPv2, priority 90, advert every 2 s" in result.stdout

    def test_convert_prints_toml(self) -> None:
        path = VECTORS / "scripts-weights.conf"
        result = vrrp_agent("config", "convert", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"# vrrp-agent configuration converted from {path}\n")
        assert parse_config(tomllib.loads(result.stdout)) == load(path)[0]
        assert "uses shell syntax: converted to /bin/sh -c" in result.stderr

    @pytest.mark.parametrize("command", [["check"], ["config", "convert"], ["run", "--config"]])
    def test_errors_name_file_line_keyword(self, command: list[str]) -> None:
        path = VECTORS / "unsupported-use-vmac.conf"
        result = vrrp_agent(*command, str(path))
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr == (
            f"error: {path}:5: use_vmac: virtual MAC interfaces are not supported; the VIPs "
            "use the interface's MAC\n"
        )

    def test_missing_file(self, tmp_path: Path) -> None:
        result = vrrp_agent("config", "convert", str(tmp_path / "nope.conf"))
        assert (result.returncode, result.stderr) == (
            2,
            f"error: {tmp_path / 'nope.conf'}: no such file\n",
        )

    def test_config_needs_a_source(self) -> None:
        result = vrrp_agent("config")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "--from-env or convert FILE" in result.stderr


KEEPALIVED_CONF = """\
! The same file shape for both implementations; only router_id and priority differ.
global_defs {{
    router_id {router_id}
    script_user root
    enable_script_security
}}

vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    version 3
    advert_int 0.1
    garp_master_delay 0
    notify {notify}
    virtual_ipaddress {{
        {vip} dev eth0
    }}
}}
"""

NOTIFY = '#!/bin/sh\necho "$2 $3 $4" >> "{log}"\n'


@pytest.mark.netns
@pytest.mark.keepalived
def test_converted_conf_elects_against_keepalived(make_lab: Callable[[int], Lab]) -> None:
    """The agent (priority 150) runs a keepalived.conf; keepalived (priority 100) runs the
    same shape of file. The agent becomes master and holds the VIP, keepalived (started
    second, so that it does not win the empty network first) backs up and stays backup;
    when the agent stops, keepalived takes over."""
    lab = make_lab(2)
    vip = lab.vip()
    speakers: list[Path] = []
    for node, priority in ((lab[0], 150), (lab[1], 100)):
        log = lab.workdir / f"notify-{node.index}.log"
        notify = lab.workdir / f"notify-{node.index}.sh"
        notify.write_text(NOTIFY.format(log=log))
        notify.chmod(0o755)
        conf = lab.workdir / f"node{node.index}.conf"
        conf.write_text(
            KEEPALIVED_CONF.format(router_id=node.name, priority=priority, notify=notify, vip=vip)
        )
        # keepalived itself accepts both files.
        checked = node.run(["keepalived", "-t", "-f", str(conf)], check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        speakers.append(conf)
    agent = AgentSpeaker(
        lab[0],
        lab[0].spawn([*agent_command(), "run", "--config", str(speakers[0])], name="agent"),
        (),
    )
    agent.wait_state("MASTER", timeout=10)
    keepalived_argv = ["keepalived", "-n", "-l", "-D", "-G", "-R", "--vrrp", "-f", str(speakers[1])]
    keepalived_argv += ["-p", str(lab.workdir / "ka.pid"), "-r", str(lab.workdir / "ka-vrrp.pid")]
    keepalived = KeepalivedSpeaker(
        lab[1], lab[1].spawn(keepalived_argv, name="keepalived"), (), lab.workdir / "notify-1.log"
    )
    keepalived.wait_state("BACKUP", timeout=10)
    # Several of keepalived's Master_Down_Intervals (3 x 0.1 s + skew) later, it is still
    # backup: it accepts the agent's adverts.
    time.sleep(1.5)
    assert keepalived.states() == [("VI_1", "BACKUP")]
    assert agent.states() == [("VI_1", "BACKUP"), ("VI_1", "MASTER")]
    assert lab[0].has_address(vip)
    assert not lab[1].has_address(vip)
    # Our notify script ran with keepalived's arguments too.
    assert "VI_1 MASTER 150" in (lab.workdir / "notify-0.log").read_text()

    stopped = agent.terminate()
    keepalived.wait_state("MASTER", timeout=5)
    lab[1].wait_address(vip.ip, added=True, since=stopped, timeout=5)
    assert not lab[0].has_address(vip)
