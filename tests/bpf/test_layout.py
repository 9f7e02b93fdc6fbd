"""The ctypes layouts in agent/host/bpf.py equal the C structs BCC compiles, and must stay so.

The agent never imports bcc, so it declares the map keys and values itself, once
(``MAP_LAYOUTS``). The loader child reports the sizes and field offsets of the types BCC
generated from bpf/vrrp_structs.h; they must match ours field by field, and a drifted C
struct must stop the load with a message that names the map, not corrupt memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.host.bpf import (
    DEFAULT_SOURCE,
    MAP_LAYOUTS,
    BpfUnavailable,
    UnavailableCause,
    ctype_layout,
    load_filter,
    run_loader,
)

pytestmark = [pytest.mark.bpf, pytest.mark.usefixtures("loaded_filter")]


@pytest.fixture(scope="module")
def reported_maps() -> dict[str, Any]:
    """What the loader child reports about the maps BCC created (one compile)."""
    description, fds, _ = run_loader(DEFAULT_SOURCE, (f"-I{DEFAULT_SOURCE.parent}",))
    for fd in fds:
        os.close(fd)
    return description["maps"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(MAP_LAYOUTS))
def test_bcc_layout_equals_ctypes_layout(reported_maps: dict[str, Any], name: str) -> None:
    key_type, value_type = MAP_LAYOUTS[name]
    reported = reported_maps[name]
    assert reported["key"] == ctype_layout(key_type)
    assert reported["value"] == ctype_layout(value_type)


def test_a_drifted_c_struct_is_refused_at_load(tmp_path: Path) -> None:
    copy = tmp_path / "bpf"
    shutil.copytree(DEFAULT_SOURCE.parent, copy)
    structs = copy / "vrrp_structs.h"
    peer_interval = "    u16 interval_cs;   /* normalised"
    text = structs.read_text()
    assert text.count(peer_interval) == 1
    structs.write_text(text.replace(peer_interval, "    u32 interval_cs;   /* normalised"))

    with pytest.raises(BpfUnavailable) as raised:
        load_filter(copy / DEFAULT_SOURCE.name)
    assert raised.value.cause is UnavailableCause.LOAD_FAILED
    assert "the value of map 'peers'" in str(raised.value)
