"""The ``vrrp-agent`` command: ``check`` a configuration, ``run`` the agent.

Every mistake a user can make (a missing or malformed file, an invalid value, a missing
privilege or interface at start-up) ends as one ``error: ...`` line on stderr and exit
status 2, never as a traceback: the operator reading a journal should see what to fix,
not where in our code it was noticed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent import __version__
from agent.config import AgentConfig, ConfigError, InstanceConfig, load_config

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
  python -m agent check systemd/vrrp-agent.example.toml
      the same without the installed script

exit status:
  0  success (run: stopped by SIGTERM or SIGINT after releasing the addresses)
  2  bad command line, unusable configuration, or a host problem at start-up
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
        print("error: a command is required: check or run", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as error:
        return _fail(str(error))
    if args.command == "check":
        print(_summary(args.config, config))
        return 0
    return _run(config)


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
    check.add_argument("config", metavar="CONFIG", help="path of the TOML configuration file")
    run = commands.add_parser(
        "run",
        help="run the agent in the foreground",
        description="Run the virtual routers of CONFIG until SIGTERM or SIGINT.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config", required=True, metavar="CONFIG", help="path of the TOML configuration file"
    )
    return parser


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


def _run(config: AgentConfig) -> int:
    # Imported here so that `check` works without the host layer's dependencies
    # (pyroute2, raw sockets) and stays quick.
    from agent import daemon
    from agent.host.errors import HostError
    from agent.log import setup_logging

    setup_logging(config.global_.log_level)
    try:
        # uvloop when installed: it keeps the per-packet cost of the receive path low.
        # Netlink runs on a standard loop in a thread of its own (agent.host.netlink),
        # because uvloop refuses pyroute2's AF_NETLINK endpoint.
        try:
            import uvloop
        except ImportError:
            return asyncio.run(daemon.run(config))
        return uvloop.run(daemon.run(config))
    except HostError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
