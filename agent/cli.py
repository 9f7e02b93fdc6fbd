"""The ``vrrp-agent`` command: ``check`` a configuration, ``run`` the agent, print the
``config`` built from OpenShift ipfailover's environment.

Every mistake a user can make (a missing or malformed file, an invalid value, a missing
privilege or interface at start-up) ends as one ``error: ...`` line on stderr and exit
status 2, never as a traceback: the operator reading a journal should see what to fix,
not where in our code it was noticed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from functools import partial
from ipaddress import AddressValueError, IPv4Address, IPv4Interface

from agent import __version__
from agent.config import (
    DEFAULT_CONTROL_SOCKET,
    AgentConfig,
    ConfigError,
    InstanceConfig,
    load_config,
    parse_config,
)
from agent.ctl import CONTROL_COMMANDS, add_control_commands, run_control_command
from agent.host.errors import HostError
from agent.ipfailover import NodeFacts, build_document, read_environment
from agent.keepalived_conf import convert_file, is_keepalived, load_keepalived, validate
from agent.tomlout import dumps

#: Exit status for usage and configuration errors (argparse uses 2 as well).
EXIT_USAGE = 2
#: Exit status after Ctrl-C before the agent installed its own signal handlers (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: How many VIPs of one instance ``check`` lists before summarising the rest.
_VIPS_SHOWN = 3

_EPILOG = """\
examples:
  vrrp-agent check /etc/vrrp-agent/vrrp-agent.toml
      validate a configuration file and print a summary of its instances
  vrrp-agent run --config /etc/vrrp-agent/vrrp-agent.toml
      run the agent in the foreground (as root, or with CAP_NET_RAW and CAP_NET_ADMIN)
  OPENSHIFT_HA_VIRTUAL_IPS=10.0.0.5-7 vrrp-agent config --from-env
      print the configuration the OpenShift ipfailover variables give on this node
  vrrp-agent run --from-env
      run the agent configured from the OPENSHIFT_HA_* variables (ipfailover pods)
  vrrp-agent config convert /etc/keepalived/keepalived.conf
      print the TOML for the VRRP parts of a keepalived.conf (which run and check
      also accept directly: a *.conf file is read as keepalived.conf)
  python -m agent check systemd/vrrp-agent.example.toml
      the same without the installed script
  vrrp-agent status [--json]
      show the running agent's instances, checks and counters (control socket)
  vrrp-agent drain VI_1 / vrrp-agent undrain VI_1
      hand VI_1 over to a backup for maintenance, and take it back

exit status:
  0  success (run: stopped by SIGTERM or SIGINT after releasing the addresses)
  1  status, reload, drain, undrain: the agent refused (invalid file, unknown instance)
  2  bad command line, unusable configuration, or a host problem at start-up
  3  status, reload, drain, undrain: the agent is not running
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vrrp-agent``; returns the process exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse reported
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(
            "error: a command is required: check, config, run, status, reload, drain or undrain",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command in CONTROL_COMMANDS:
        return _control(args)
    if args.command == "config" and args.from_env == (args.config_command == "convert"):
        return _fail(
            "the following arguments are required: --from-env or convert FILE (one of them)"
        )
    if args.command in ("config", "run") and args.from_env:
        return _from_env(args)
    if (args.node_interface, args.node_address) != (None, None):
        return _fail("--node-interface and --node-address only apply with --from-env")
    if args.command == "config":
        return _convert(args.file)
    try:
        config = _load(args.config)
    except ConfigError as error:
        return _fail(str(error))
    if args.command == "check":
        print(_summary(args.config, config))
        return 0
    return _run(config, partial(_load, args.config))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vrrp-agent",
        description="VRRP v2/v3 high-availability agent (RFC 3768, RFC 9568) for IPv4.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="validate a configuration file and exit",
        description="Validate CONFIG and print a summary; exit 0 if it is usable, 2 if not.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "config", metavar="CONFIG", help="path of the TOML (or keepalived.conf) configuration file"
    )
    check.set_defaults(node_interface=None, node_address=None)
    config = commands.add_parser(
        "config",
        help="print the TOML configuration built from OPENSHIFT_HA_* or a keepalived.conf",
        description=(
            "Build the configuration from OpenShift ipfailover's OPENSHIFT_HA_* environment "
            "variables, exactly as `run --from-env` would (--from-env), or from the VRRP "
            "parts of a keepalived.conf (convert FILE), and print it as TOML."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_argument(
        "--from-env",
        action="store_true",
        help="read the OPENSHIFT_HA_* variables",
    )
    _node_options(config)
    sources = config.add_subparsers(dest="config_command", metavar="convert")
    convert = sources.add_parser(
        "convert",
        help="convert a keepalived.conf to TOML",
        description=(
            "Convert the VRRP parts of keepalived.conf FILE (and its includes) and print the "
            "TOML; warnings about ignored keywords go to stderr."
        ),
    )
    convert.add_argument("file", metavar="FILE", help="path of the keepalived.conf")
    run = commands.add_parser(
        "run",
        help="run the agent in the foreground",
        description=(
            "Run the virtual routers of CONFIG, or of the OPENSHIFT_HA_* variables, until "
            "SIGTERM or SIGINT."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config",
        metavar="CONFIG",
        help="path of the TOML (or keepalived.conf) configuration file",
    )
    source.add_argument(
        "--from-env",
        action="store_true",
        help="build the configuration from the OPENSHIFT_HA_* variables",
    )
    _node_options(run)
    add_control_commands(commands, _EPILOG)
    return parser


def _node_options(parser: argparse.ArgumentParser) -> None:
    node = parser.add_argument_group(
        "node facts (with --from-env; both or neither)",
        "By default the interface is chosen as the ipfailover image does and the address "
        "is the interface's primary IPv4 address, both looked up over netlink. Give them "
        "to build a node's configuration elsewhere, or in tests.",
    )
    node.add_argument("--node-interface", metavar="IFNAME", help="the VRRP interface")
    node.add_argument(
        "--node-address",
        metavar="ADDRESS",
        type=_ipv4_address,
        help="the node's own IPv4 address on it",
    )


def _ipv4_address(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def _from_env(args: argparse.Namespace) -> int:
    """``config --from-env`` and ``run --from-env``: the same configuration either way."""
    try:
        settings = read_environment(os.environ)
        if args.node_interface is not None and args.node_address is not None:
            node = NodeFacts(args.node_interface, args.node_address)
        elif (args.node_interface, args.node_address) == (None, None):
            node = _lookup_node(settings.interface, settings.vips)
        else:
            return _fail("--node-interface and --node-address go together")
        document = build_document(settings, node)
        try:
            config = parse_config(document)
        except ConfigError as error:
            raise ConfigError(f"configuration built from the environment: {error}") from None
    except ConfigError as error:
        return _fail(str(error))
    except HostError as error:
        return _fail(str(error))
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.command == "config":
        print(dumps(document, _header(node)), end="")
        return 0
    return _run(config)


def _load(path: str) -> AgentConfig:
    """A TOML file, or a keepalived.conf (``.conf``, or keepalived keywords inside; the
    rule is :func:`agent.keepalived_conf.is_keepalived`) with its warnings on stderr."""
    if not is_keepalived(path):
        return load_config(path)
    config, warnings = load_keepalived(path)
    _warn(warnings)
    return config


def _convert(path: str) -> int:
    """``config convert FILE``: the TOML of a keepalived.conf, validated before printing."""
    try:
        conversion = convert_file(path)
        validate(conversion, path)
    except ConfigError as error:
        return _fail(str(error))
    _warn(conversion.warnings)
    header = (
        f"vrrp-agent configuration converted from {path}\n"
        "(`vrrp-agent config convert`). Check it with `vrrp-agent check FILE`."
    )
    print(dumps(conversion.document, header), end="")
    return 0


def _warn(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _lookup_node(interface: str | None, vips: tuple[IPv4Interface, ...]) -> NodeFacts:
    # Imported here: pyroute2 is only needed when the facts come from the kernel.
    from agent.host.nodefacts import lookup_node

    return asyncio.run(lookup_node(interface, vips))


def _header(node: NodeFacts) -> str:
    return (
        "vrrp-agent configuration built from the OPENSHIFT_HA_* environment variables\n"
        f"(`vrrp-agent config --from-env`) for interface {node.interface}, node address "
        f"{node.address}.\nCheck it with `vrrp-agent check FILE`; run it with "
        "`vrrp-agent run --config FILE`."
    )


def _summary(path: str, config: AgentConfig) -> str:
    count = len(config.instances)
    lines = [f"{path}: OK, {count} instance{'s' if count != 1 else ''}"]
    lines.extend(f"  {_describe(instance)}" for instance in config.instances)
    return "\n".join(lines)


def _describe(instance: InstanceConfig) -> str:
    vips = ", ".join(str(vip) for vip in instance.vips[:_VIPS_SHOWN])
    if len(instance.vips) > _VIPS_SHOWN:
        vips += f" and {len(instance.vips) - _VIPS_SHOWN} more"
    return (
        f"{instance.name}: {instance.interface} VRID {instance.vrid}, "
        f"VRRPv{instance.version}, priority {instance.priority}, "
        f"advert every {instance.advert_interval_cs / 100:g} s, VIPs {vips}"
    )


def _run(config: AgentConfig, reload_source: Callable[[], AgentConfig] | None = None) -> int:
    """``run``: the daemon in the foreground; ``reload_source`` re-reads the configuration
    on SIGHUP or ``vrrp-agent reload`` (None with ``--from-env``: the environment of a
    running process cannot change)."""
    # Imported here so that `check` works without the host layer's dependencies
    # (pyroute2, raw sockets) and stays quick.
    from agent import daemon
    from agent.log import setup_logging

    setup_logging(config.global_.log_level, config.global_.log_format)
    try:
        # uvloop when installed: it keeps the per-packet cost of the receive path low.
        # Netlink runs on a standard loop in a thread of its own (agent.host.netlink),
        # because uvloop refuses pyroute2's AF_NETLINK endpoint.
        try:
            import uvloop
        except ImportError:
            return asyncio.run(daemon.run(config, reload_source))
        return uvloop.run(daemon.run(config, reload_source))
    except HostError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _control(args: argparse.Namespace) -> int:
    """status, reload, drain, undrain: the socket is --socket, or control_socket of
    --config, or the default."""
    path = args.socket or DEFAULT_CONTROL_SOCKET
    if args.config is not None:
        try:
            path = _load(args.config).global_.control_socket
        except ConfigError as error:
            return _fail(str(error))
        if not path:
            return _fail(f'{args.config}: control_socket is disabled ("") in this file')
    return run_control_command(args, path)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
