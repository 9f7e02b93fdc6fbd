"""Short-lived child process that compiles and loads the eBPF filter with BCC.

BCC compiles C with LLVM inside the calling process, and LLVM stays mapped afterwards
(about 125 MiB resident, bpf/README.md). So the agent never imports bcc: it runs this module
as ``python -m agent.host.bpf_loader FD REQUEST`` (see :mod:`agent.host.bpf`). The child
compiles, loads the requested programs, creates the maps, then sends over the inherited
unix socket ``FD`` one message carrying every program and map file descriptor
(``SCM_RIGHTS``) and a JSON description: the index of each fd in the message, map types and
sizes, and the byte layout (field names, offsets, sizes) of the keys and values as BCC
generated them from the C structs. The parent checks that description against its own
ctypes layouts, so the two can never drift. Then the child exits, and LLVM with it; the
kernel objects live on through the parent's copies of the fds.

``REQUEST`` is JSON: ``{"source": path, "cflags": [...], "programs": {name: bcc program
type name, ...}, "maps": [name, ...]}``. On failure the message is ``{"ok": false,
"cause": ..., "message": ...}`` and no fds; compiler and verifier chatter goes to this
process's stdout/stderr, which the parent captures and quotes.
"""

from __future__ import annotations

import ctypes as ct
import json
import socket
import sys
import time
from typing import Any


def _layout(ctype: Any) -> dict[str, Any]:
    """Size and (for structs) field offsets of a ctypes type BCC generated."""
    fields = [
        [name, getattr(ctype, name).offset, getattr(ctype, name).size]
        for name, *_ in getattr(ctype, "_fields_", ())
    ]
    return {"size": ct.sizeof(ctype), "fields": fields}


def _load(request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    started = time.monotonic()
    import bcc  # only ever in this child: LLVM must not stay in the agent

    bpf = bcc.BPF(src_file=request["source"].encode(), cflags=list(request["cflags"]))
    fds: list[int] = []
    programs = {}
    for name, kind in request["programs"].items():
        function = bpf.load_func(name.encode(), getattr(bcc.BPF, kind))
        programs[name] = len(fds)
        fds.append(int(function.fd))
    maps = {}
    for name in request["maps"]:
        table = bpf[name.encode()]
        if isinstance(table, bcc.table.RingBuf):
            key: dict[str, Any] = {"size": 0, "fields": []}
            value = _layout(bcc.table._get_event_class(table))
        else:
            # Per-CPU maps: BCC turns Leaf into an array over CPUs; sLeaf is one CPU's value.
            key, value = _layout(table.Key), _layout(getattr(table, "sLeaf", table.Leaf))
        maps[name] = {
            "fd": len(fds),
            "type": int(table.ttype),
            "max_entries": int(table.max_entries),
            "key": key,
            "value": value,
        }
        fds.append(int(table.map_fd))
    description = {
        "ok": True,
        "programs": programs,
        "maps": maps,
        "load_seconds": time.monotonic() - started,
    }
    return description, fds


def main(argv: list[str]) -> int:
    """Load what the request asks for and hand it to the parent over socket ``argv[0]``."""
    channel = socket.socket(fileno=int(argv[0]))
    request = json.loads(argv[1])
    try:
        description, fds = _load(request)
    except ImportError as error:
        description, fds = {"ok": False, "cause": "bcc_missing", "message": str(error)}, []
    except Exception as error:  # bcc raises bare Exception for everything
        description, fds = {"ok": False, "cause": "load_failed", "message": str(error)}, []
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(channel, [json.dumps(description).encode()], fds)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
