"""Child of test_memory.py: RSS of a fresh process that runs the filter the agent's way.

Loads through the loader child, attaches to a raw IPPROTO_VRRP socket, opens the event ring
buffer and reads the maps, like the daemon does; then prints one JSON object with VmRSS,
VmHWM, the load time, and whether bcc or LLVM ever came into this process.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from agent.core.constants import IPPROTO_VRRP
from agent.host.bpf import load_filter


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    started = time.monotonic()
    vrrp_filter = load_filter()
    load_seconds = time.monotonic() - started
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP) as sock:
        vrrp_filter.attach(sock)
        vrrp_filter.open_events(lambda _event: None)
        vrrp_filter.consume_events()
        vrrp_filter.snapshot()
        maps = Path("/proc/self/maps").read_text()
        result = {
            "rss_kib": _status_kib("VmRSS"),
            "hwm_kib": _status_kib("VmHWM"),
            "load_seconds": load_seconds,
            "bcc_imported": "bcc" in sys.modules,
            "llvm_mapped": "LLVM" in maps or "libbcc" in maps,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
