"""``vrrp-agent status|reload|drain|undrain``: ask the running agent over its control socket.

:mod:`agent.cli` parses the command line and finds the socket; this module sends the
request (:func:`agent.host.control.send_request`) and turns the answer into output and
an exit status:

- 0: done (``status`` printed the state);
- 1: the agent answered but refused (an invalid file on ``reload``, an unknown instance);
- 2: the request could not be made (permission denied, no answer, bad command line);
- 3: the agent is not running (no socket, or nobody listening on it) — the value
  ``systemctl status`` uses for a stopped unit, so scripts can tell "down" from "broken".

Every failure is one ``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from agent.host.control import ControlError, send_request

#: The commands this module runs.
CONTROL_COMMANDS: Final = ("status", "reload", "drain", "undrain")
#: Exit status when the agent answered with ``"ok": false``.
EXIT_REFUSED: Final = 1
#: Exit status when the request could not be made.
EXIT_ERROR: Final = 2


def add_control_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    epilog: str,
) -> None:
    """Add the four commands to the ``vrrp-agent`` sub-command parser."""
    descriptions = {
        "status": (
            "show instances, checks and receive counters of the running agent",
            "Print the state of the running agent: one line per instance (state, "
            "priority, master, last advert, VIPs), then checks, the receive path and drop "
            "counters. --json prints the full status document instead.",
        ),
        "reload": (
            "make the running agent reload its configuration file",
            "Ask the running agent to re-read its configuration file (as SIGHUP does) "
            "and wait for the result: an invalid file is rejected with its error and the "
            "running configuration stays.",
        ),
        "drain": (
            "hand an instance over to a backup at once and keep it backup",
            "Maintenance: the instance sends a priority-0 advert, so a backup takes over "
            "at once, and stays backup until undrain.",
        ),
        "undrain": (
            "end the maintenance of a drained instance",
            "The instance advertises its normal priority again (and takes over if it is "
            "the best router and preempts).",
        ),
    }
    for name, (short, long) in descriptions.items():
        parser = commands.add_parser(
            name,
            help=short,
            description=long,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name in ("drain", "undrain"):
            parser.add_argument("instance", metavar="NAME", help="instance name")
        if name == "status":
            parser.add_argument(
                "--json", action="store_true", help="print the status document as JSON"
            )
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--socket",
            metavar="PATH",
            help="the agent's control socket (default: /run/vrrp-agent/control.sock)",
        )
        where.add_argument(
            "--config",
            metavar="CONFIG",
            help="read control_socket from this configuration file",
        )
        parser.set_defaults(node_interface=None, node_address=None)


def run_control_command(args: argparse.Namespace, socket_path: str) -> int:
    """Send ``args.command`` to the agent at ``socket_path``; print; return the exit status."""
    request: dict[str, Any] = {"command": args.command}
    if args.command in ("drain", "undrain"):
        request["instance"] = args.instance
    try:
        response = send_request(socket_path, request)
    except ControlError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_status
    if response.get("ok") is False:
        message = response.get("error") or response.get("message") or "refused, no reason given"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_REFUSED
    if args.command != "status":
        print(response.get("message") or "done")
        return 0
    if args.json:
        print(json.dumps(response, indent=2))
        return 0
    try:
        print(format_status(response))
    except (KeyError, TypeError, ValueError) as error:
        print(f"error: the agent's status lacks or garbles {error}; try --json", file=sys.stderr)
        return EXIT_ERROR
    return 0


def format_status(status: Mapping[str, Any]) -> str:
    """The human-readable ``vrrp-agent status``: a table of instances, then details."""
    agent = status["agent"]
    lines = [
        f"vrrp-agent {agent['version']}, pid {agent['pid']}, up "
        f"{_duration(agent['uptime_seconds'])}, {agent['event_loop']} event loop",
        "",
    ]
    rows = [("NAME", "STATE", "INTERFACE", "VRID", "PRIORITY", "MASTER", "LAST-ADVERT", "VIPS")]
    notes: list[str] = []
    for instance in status["instances"]:
        rows.append(
            (
                instance["name"],
                instance["state"],
                instance["interface"],
                f"{instance['vrid']} (v{instance['version']})",
                _priority(instance),
                _master(instance),
                _advert_age(instance),
                ", ".join(instance["vips"]),
            )
        )
        remarks = []
        if instance["drained"]:
            remarks.append("drained (vrrp-agent undrain to end)")
        if instance["fault_causes"]:
            remarks.append(f"fault: {', '.join(instance['fault_causes'])}")
        if remarks:
            notes.append(f"  {instance['name']}: {'; '.join(remarks)}")
    lines.extend(_table(rows))
    lines.extend(notes)
    for group in status["sync_groups"]:
        lines.append(
            f"sync group {group['name']}: {group['state']} ({', '.join(group['instances'])})"
        )
    if status["checks"]:
        lines.extend(["", "checks:"])
        lines.extend(f"  {_check(check)}" for check in status["checks"])
    lines.extend(["", *_receive(agent, status["interfaces"], status["bpf"])])
    notify = status["notify"]
    lines.append(
        f"notify: {notify['calls']} calls, {notify['failures']} failed, "
        f"{notify['timeouts']} timed out, {notify['dropped']} dropped"
    )
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _priority(instance: Mapping[str, Any]) -> str:
    base, effective = instance["base_priority"], instance["priority"]
    return str(base) if base == effective else f"{effective} (base {base})"


def _master(instance: Mapping[str, Any]) -> str:
    if instance["state"] == "MASTER":
        return "this node"
    master = instance["master"]
    if master is None:
        return "-"
    return f"{master['address']} (priority {master['priority']})"


def _advert_age(instance: Mapping[str, Any]) -> str:
    master = instance["master"]
    if master is None or master["last_advert_age_seconds"] is None:
        return "-"
    return f"{master['last_advert_age_seconds']:.1f} s ago"


def _check(check: Mapping[str, Any]) -> str:
    text = (
        f"{check['name']} ({check['kind']}): {'up' if check['up'] else 'DOWN'}, "
        f"{check['runs']} runs, {check['failures']} failed, {check['timeouts']} timed out, "
        f"{check['skipped']} skipped"
    )
    if check["last_exit"] is not None:
        text += f", last exit {check['last_exit']}"
    if check["last_duration_seconds"] is not None:
        text += f" after {check['last_duration_seconds']:.3f} s"
    return text


def _receive(
    agent: Mapping[str, Any],
    interfaces: Sequence[Mapping[str, Any]],
    bpf: Mapping[str, Any] | None,
) -> list[str]:
    path = f"receive path: {agent['receive_path']} (bpf = {agent['bpf_mode']})"
    if agent["bpf_unavailable_reason"]:
        path += f", eBPF unavailable: {agent['bpf_unavailable_reason']}"
    lines = [path]
    if bpf is not None:
        lines.append(
            f"  eBPF ({bpf['attach']}): accepted {bpf['accepted']}, kept in the kernel "
            f"{bpf['absorbed']}, dropped: {_reasons(bpf['dropped'])}"
        )
    lines.extend(
        f"  {interface['name']}: accepted {interface['userspace_accepted']}, "
        f"dropped: {_reasons(interface['userspace_rejected'])}"
        for interface in interfaces
    )
    return lines


def _reasons(counts: Mapping[str, int]) -> str:
    shown = [f"{reason} {count}" for reason, count in sorted(counts.items()) if count]
    return ", ".join(shown) if shown else "none"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
