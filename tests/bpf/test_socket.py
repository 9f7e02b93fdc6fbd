"""The filter attached with SO_ATTACH_BPF to a real raw IPPROTO_VRRP socket.

The socket work happens in a child process inside its own anonymous network namespace
(``unshare --net``, see socket_probe.py): only adverts the program accepts reach the
socket, the drops are counted by reason, the peer map is keyed by the real ingress
ifindex, and after SO_DETACH_BPF the socket sees everything again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.bpf, pytest.mark.usefixtures("loaded_filter")]

REPO = Path(__file__).resolve().parents[2]


def _without_kernel_fields(datagram_hex: str) -> bytes:
    """The datagram with the IP identification and header checksum (set by the kernel) zeroed."""
    datagram = bytes.fromhex(datagram_hex)
    return datagram[:4] + b"\0\0" + datagram[6:10] + b"\0\0" + datagram[12:]


def _run_probe() -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private network namespace")
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.bpf.socket_probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_attached_filter_passes_only_accepted_adverts_to_the_socket() -> None:
    probe = _run_probe()
    good, bad_ttl, _unknown_vrid, good_again = (
        _without_kernel_fields(datagram) for datagram in probe["sent"]
    )
    assert [_without_kernel_fields(d) for d in probe["filtered"]] == [good, good_again]
    assert [_without_kernel_fields(d) for d in probe["unfiltered"]] == [bad_ttl]
    assert {reason: n for reason, n in probe["drops"].items() if n} == {
        "bad_ttl": 1,
        "unknown_vrid": 1,
    }
    assert probe["accepted"] == 2
    assert probe["peer"] == ["127.0.0.2", 160, 2]
