"""The ``vrrp-agent`` command as users run it: a real process, its exit status and output.

``check`` and the failure paths of ``run`` need nothing special. The ``run`` tests that get
as far as the kernel are marked ``netns``: they run the agent inside a one-node lab
namespace (agent.lab), never in the machine's own network namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import __version__
from agent.cli import main
from agent.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "vrrp-agent.example.toml"
#: The console script `pip install -e .` put next to the interpreter running the tests.
VRRP_AGENT = Path(sys.executable).parent / "vrrp-agent"

VALID = """\
[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
vips = ["10.0.0.100/24", "10.0.0.101", "10.0.0.102", "10.0.0.103"]
"""


def vrrp_agent(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VRRP_AGENT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestCheckCommand:
    def test_valid_file_exits_0_with_a_summary(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID)
        result = vrrp_agent("check", path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.splitlines() == [
            f"{path}: OK, 1 instance",
            "  VI_1: eth0 VRID 51, VRRPv3, priority 100, advert every 1 s, "
            "VIPs 10.0.0.100/24, 10.0.0.101/32, 10.0.0.102/32 and 1 more",
        ]

    def test_example_configuration_passes(self) -> None:
        result = vrrp_agent("check", EXAMPLE)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{EXAMPLE}: OK, 2 instances\n")

    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "missing.toml"
        result = vrrp_agent("check", path)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"error: {path}: no such file\n"

    def test_bad_toml_names_the_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID.replace("vrid = 51", "vrid = = 51"))
        result = vrrp_agent("check", path)
        assert result.returncode == 2
        assert result.stderr == f"error: {path}: line 4, column 8: invalid TOML: Invalid value\n"

    def test_bad_value_names_the_key(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID.replace("vrid = 51", "vrid = 300"))
        result = vrrp_agent("check", path)
        assert result.returncode == 2
        assert result.stderr == f"error: {path}: instance[0].vrid: must be 1..255, got 300\n"

    def test_ipv6_vip_is_refused_clearly(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID.replace('"10.0.0.101"', '"2001:db8::1"'))
        result = vrrp_agent("check", path)
        assert result.returncode == 2
        assert result.stderr == (
            f'error: {path}: instance[0].vips[1]: IPv6 is not supported yet, got "2001:db8::1"\n'
        )

    def test_python_dash_m_agent_is_the_same_command(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID)
        result = subprocess.run(
            [sys.executable, "-m", "agent", "check", path],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{path}: OK")


class TestRunCommand:
    def test_invalid_configuration_stops_before_starting(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID.replace("priority", "prio") + "prio = 5\n")
        result = vrrp_agent("run", "--config", path)
        assert result.returncode == 2
        assert result.stderr == (
            f'error: {path}: instance[0].prio: unknown key; did you mean "priority"?\n'
        )

    def test_config_and_from_env_exclude_each_other(self, tmp_path: Path) -> None:
        result = vrrp_agent("run", "--config", write(tmp_path, VALID), "--from-env")
        assert result.returncode == 2
        assert "argument --from-env: not allowed with argument --config" in result.stderr

    def test_node_options_need_from_env(self, tmp_path: Path) -> None:
        path = write(tmp_path, VALID)
        result = vrrp_agent("run", "--config", path, "--node-interface", "eth0")
        assert (result.returncode, result.stderr) == (
            2,
            "error: --node-interface and --node-address only apply with --from-env\n",
        )

    def test_config_is_required(self) -> None:
        result = vrrp_agent("run")
        assert result.returncode == 2
        assert "one of the arguments --config --from-env is required" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.netns
class TestRunInANamespace:
    def test_runs_until_sigterm_then_releases_the_vip(
        self, make_lab: Callable[[int], Lab], tmp_path: Path
    ) -> None:
        lab = make_lab(1)
        node, vip = lab[0], lab.vip()
        config = f"""\
[[instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
advert_interval = 0.1
vips = ["{vip}"]
"""
        agent = node.spawn(
            [str(VRRP_AGENT), "run", "--config", str(write(tmp_path, config))], name="agent"
        )
        agent.wait_for_output(r"^.* INFO VI_1: BACKUP -> MASTER \(", timeout=10)
        assert node.has_address(vip)
        agent.terminate()
        assert agent.wait() == 0
        assert not node.has_address(vip)
        assert "Traceback" not in agent.output()

    def test_missing_interface_is_one_line_and_status_2(
        self, make_lab: Callable[[int], Lab], tmp_path: Path
    ) -> None:
        lab = make_lab(1)
        path = write(tmp_path, VALID.replace('"eth0"', '"nosuch0"'))
        result = lab[0].run([str(VRRP_AGENT), "run", "--config", str(path)], check=False)
        assert result.returncode == 2
        assert result.stderr.endswith("error: nosuch0: no such interface\n")
        assert "Traceback" not in result.stderr


class TestUsage:
    def test_version(self) -> None:
        result = vrrp_agent("--version")
        assert (result.returncode, result.stdout) == (0, f"vrrp-agent {__version__}\n")

    def test_no_command(self) -> None:
        result = vrrp_agent()
        assert result.returncode == 2
        assert result.stderr.endswith(
            "error: a command is required: check, config, run, status, reload, drain or undrain\n"
        )

    def test_unknown_command(self) -> None:
        result = vrrp_agent("start")
        assert result.returncode == 2
        assert "invalid choice: 'start'" in result.stderr

    def test_help_shows_examples(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--help"]) == 0
        out = capsys.readouterr().out
        assert "vrrp-agent check /etc/vrrp-agent/vrrp-agent.toml" in out
        assert "vrrp-agent run --config /etc/vrrp-agent/vrrp-agent.toml" in out


class TestMainInProcess:
    """``main()`` returns the status instead of exiting, so other code can call it."""

    def test_check(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["check", str(write(tmp_path, VALID))]) == 0
        assert "OK, 1 instance" in capsys.readouterr().out

    def test_error(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["check", str(tmp_path / "nope.toml")]) == 2
        assert capsys.readouterr().err == f"error: {tmp_path / 'nope.toml'}: no such file\n"
