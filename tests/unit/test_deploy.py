"""The deployment files: systemd unit, container image, Kubernetes manifests, Vagrant lab.

Each file is checked by the tool its users' systems will apply to it (systemd-analyze,
the Kubernetes OpenAPI schemas, hadolint, shellcheck, ruby), and the promises the README
makes about them (capabilities, mounts, probes, modes) are asserted on the parsed files,
so that a later edit cannot quietly break one of them.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "vrrp-agent.service"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
#: The capabilities the agent needs, measured (tests/netns/test_provision.py).
CAPABILITIES = ("NET_RAW", "NET_ADMIN", "BPF", "PERFMON")
#: Oldest and newest Kubernetes schemas bundled with kubernetes-validate that we support.
KUBERNETES_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
SHELL_SCRIPTS = [
    ROOT / "deploy" / "entrypoint.sh",
    ROOT / "deploy" / "kernel-headers.sh",
    ROOT / "vagrant" / "provision.sh",
]


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed: run `make setup` (Makefile DEBIAN_PACKAGES)")
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# -- systemd -----------------------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy whose /opt/vrrp-agent paths are this checkout.

    verify insists that every Exec*= program exists and is executable; the copy makes
    them resolvable here without installing anything in /opt.
    """
    unit = tmp_path / "vrrp-agent.service"
    unit.write_text(text.replace("/opt/vrrp-agent", str(ROOT)))
    return _run([_tool("systemd-analyze"), "verify", str(unit)])


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    assert (ROOT / ".venv" / "bin" / "vrrp-agent").exists(), "run `make setup` first"
    result = _verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are warnings with exit status 0: require silence.
    assert result.stdout + result.stderr == ""


def test_systemd_analyze_verify_would_catch_a_typo(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=")
    result = _verify(tmp_path, text)
    assert "Unknown key 'WatchdogSecs'" in result.stderr


def test_unit_is_notify_with_watchdog_reload_and_restart() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # configparser keeps the last of repeated keys: the reload ends with the signal.
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "vrrp-agent check" in UNIT.read_text().split("ExecReload=")[1]


def test_unit_grants_exactly_the_measured_capabilities() -> None:
    service = _unit()["Service"]
    expected = {f"CAP_{name}" for name in CAPABILITIES}
    assert set(service["CapabilityBoundingSet"].split()) == expected
    assert set(service["AmbientCapabilities"].split()) == expected
    assert service["NoNewPrivileges"] == "yes"
    assert "User" not in service  # uid 0, but only these capabilities


def test_unit_sandbox_leaves_the_agent_its_sockets_and_bpf() -> None:
    service = _unit()["Service"]
    families = set(service["RestrictAddressFamilies"].split())
    assert {"AF_INET", "AF_NETLINK", "AF_PACKET", "AF_UNIX"} <= families
    assert "bpf" in service["SystemCallFilter"].split()
    assert service["ProtectSystem"] == "strict"
    assert service["RuntimeDirectory"] == "vrrp-agent"
    for unsafe in ("PrivateNetwork", "MemoryDenyWriteExecute", "PrivateUsers"):
        assert unsafe not in service, f"{unsafe} breaks the agent (see the unit's comments)"


def test_example_configuration_passes_check() -> None:
    load_config(str(ROOT / "systemd" / "vrrp-agent.example.toml"))


# -- container image -----------------------------------------------------------------------


def test_containerfile_passes_hadolint() -> None:
    result = _run([_tool("hadolint"), "--no-color", str(CONTAINERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_builds_the_documented_image() -> None:
    text = CONTAINERFILE.read_text()
    assert "FROM docker.io/library/debian:12-slim" in text
    assert "python3-bpfcc" in text
    assert "venv --system-site-packages" in text
    assert 'ENTRYPOINT ["/opt/vrrp-agent/deploy/entrypoint.sh"]' in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{line!r}: {source} is missing"
    assert "USER" not in [line.split()[0] for line in text.splitlines() if line.strip()]


def test_entrypoint_execs_the_agent() -> None:
    text = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert "/opt/vrrp-agent/deploy/kernel-headers.sh" in text
    # exec: the agent is PID 1 and gets the kubelet's SIGTERM itself.
    assert text.rstrip().splitlines()[-1] == 'exec /opt/vrrp-agent/.venv/bin/vrrp-agent "$@"'


# -- Kubernetes ----------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _daemonset(path: Path) -> dict[str, Any]:
    (daemonset,) = (doc for doc in _documents(path) if doc["kind"] == "DaemonSet")
    return daemonset


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifests_validate_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    for document in _documents(path):
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {document['kind']}: {error.message} at {error.path}")


def test_there_are_two_manifests() -> None:
    assert [path.name for path in MANIFESTS] == ["vrrp-agent-ipfailover.yaml", "vrrp-agent.yaml"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_daemonset_runs_unprivileged_with_the_measured_capabilities(path: Path) -> None:
    pod = _daemonset(path)["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"], "add": list(CAPABILITIES)}
    kinds = {doc["kind"] for doc in _documents(path)}
    assert kinds == {"ServiceAccount", "ConfigMap", "DaemonSet"}  # no RBAC: no API access


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_daemonset_mounts(path: Path) -> None:
    pod = _daemonset(path)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount_path, host_path in (("/lib/modules", "/lib/modules"), ("/usr/src", "/usr/src")):
        assert mounts[mount_path]["readOnly"] is True
        assert volumes[mounts[mount_path]["name"]]["hostPath"]["path"] == host_path
    assert mounts["/hosts"]["readOnly"] is True
    assert volumes[mounts["/hosts"]["name"]]["hostPath"]["path"] == "/"
    script_volumes = [
        volume
        for volume in volumes.values()
        if "scripts" in volume.get("configMap", {}).get("name", "")
    ]
    assert script_volumes, "scripts come from a ConfigMap"
    for volume in script_volumes:
        assert volume["configMap"]["defaultMode"] == 0o755
    # Everything else the read-only root filesystem needs to be writable.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/run/vrrp-agent", "/tmp"} <= set(mounts)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_probes_use_the_healthz_contract(path: Path) -> None:
    (container,) = _daemonset(path)["spec"]["template"]["spec"]["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {
            "host": "127.0.0.1",
            "port": 9650,
            "path": "/healthz",
        }


def test_main_daemonset_is_scraped_and_listens_for_it() -> None:
    path = ROOT / "deploy" / "kubernetes" / "vrrp-agent.yaml"
    annotations = _daemonset(path)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9650",
        "prometheus.io/path": "/metrics",
    }
    assert (
        'metrics_listen = "0.0.0.0:9650"'
        in _config_maps(path)["vrrp-agent-config"]["vrrp-agent.toml"]
    )


def _config_maps(path: Path) -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: doc["data"]
        for doc in _documents(path)
        if doc["kind"] == "ConfigMap"
    }


def _materialise_scripts(data: dict[str, str], directory: Path) -> None:
    """Write a ConfigMap's scripts as the kubelet would with defaultMode 0755."""
    directory.mkdir()
    for name, text in data.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o755)


def test_configmap_configuration_passes_check(tmp_path: Path) -> None:
    path = ROOT / "deploy" / "kubernetes" / "vrrp-agent.yaml"
    maps = _config_maps(path)
    _materialise_scripts(maps["vrrp-agent-scripts"], tmp_path / "scripts")
    text = maps["vrrp-agent-config"]["vrrp-agent.toml"]
    config = tmp_path / "vrrp-agent.toml"
    config.write_text(text.replace("/etc/vrrp-agent-scripts", str(tmp_path / "scripts")))
    loaded = load_config(str(config))
    assert [instance.name for instance in loaded.instances] == ["VI_1"]


def test_openshift_environment_builds_a_configuration(tmp_path: Path) -> None:
    path = ROOT / "deploy" / "kubernetes" / "vrrp-agent-ipfailover.yaml"
    maps = _config_maps(path)
    _materialise_scripts(maps["vrrp-agent-ipfailover-scripts"], tmp_path / "keepalive")
    (container,) = _daemonset(path)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run", "--from-env"]
    env = {item["name"]: item["value"] for item in container["env"]}
    env = {k: v.replace("/etc/keepalive", str(tmp_path / "keepalive")) for k, v in env.items()}
    command = [sys.executable, "-m", "agent", "config", "--from-env"]
    command += ["--node-interface", "eth0", "--node-address", "192.0.2.11"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"], **env},
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no variable that the agent ignores
    assert result.stdout.count("[[instance]]") == 3


# -- scripts and Vagrant --------------------------------------------------------------------


def _configmap_scripts() -> list[tuple[str, str]]:
    return [
        (f"{path.name}:{name}", text)
        for path in MANIFESTS
        for data in _config_maps(path).values()
        for name, text in data.items()
        if name.endswith(".sh")
    ]


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_shell_scripts_pass_shellcheck(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = _run([_tool("shellcheck"), str(script)])
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "text"), _configmap_scripts(), ids=lambda value: value)
def test_configmap_scripts_pass_shellcheck(name: str, text: str, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text(text)
    result = _run([_tool("shellcheck"), str(script)])
    assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_vagrantfile_syntax() -> None:
    result = _run([_tool("ruby"), "-c", str(ROOT / "vagrant" / "Vagrantfile")])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syntax OK"


def test_provisioning_follows_the_readme() -> None:
    """The VMs are installed with the README's systemd steps, in the README's order."""
    text = (ROOT / "vagrant" / "provision.sh").read_text()
    steps = [
        "make setup",
        'install -d "$CONFIG_DIR"',
        '.venv/bin/vrrp-agent check "$CONFIG_DIR/vrrp-agent.toml"',
        "install -m 0644 systemd/vrrp-agent.service /etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable vrrp-agent",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)


def test_provisioned_configuration_passes_check(tmp_path: Path) -> None:
    """Render provision.sh's configuration heredoc as the shell would and check it."""
    text = (ROOT / "vagrant" / "provision.sh").read_text()
    body = text.split("<<TOML\n")[1].split("\nTOML\n")[0]
    script = tmp_path / "check-fault-flag.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    rendered = subprocess.run(
        ["sh", "-c", f"cat <<TOML\n{body}\nTOML\n"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        env={
            "PATH": os.environ["PATH"],
            "ADDRESS": "192.168.56.11",
            "PRIORITY": "150",
            "IFACE": "eth1",
            "CONFIG_DIR": str(tmp_path),
        },
    ).stdout
    config = tmp_path / "vrrp-agent.toml"
    config.write_text(rendered)
    (instance,) = load_config(str(config)).instances
    assert (instance.interface, instance.priority, instance.vrid) == ("eth1", 150, 51)


def test_scenarios_script_lists_the_three_scenarios() -> None:
    result = _run([sys.executable, str(ROOT / "vagrant" / "scenarios.py"), "--help"])
    assert result.returncode == 0, result.stderr
    assert "{failover,check-fault,split-brain,all}" in result.stdout
