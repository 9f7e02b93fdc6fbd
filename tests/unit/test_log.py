"""agent.log: the text lines operators and tests grep, and the JSON lines log pipelines read."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from ipaddress import IPv4Address

import pytest

from agent.log import setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def transition() -> None:
    logging.getLogger("agent").info(
        "%s: %s -> %s (%s)",
        "VI_1",
        "BACKUP",
        "MASTER",
        "no advert for 3.6 s",
        extra={"instance": "VI_1", "old": "BACKUP", "new": "MASTER", "reason": "master_down"},
    )


def test_text_format_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info")
    transition()
    line = capsys.readouterr().err
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO VI_1: BACKUP -> MASTER "
        r"\(no advert for 3\.6 s\)\n",
        line,
    ), line


def test_json_line_has_the_fields_and_the_extras(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    transition()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    timestamp = entry.pop("ts")
    assert entry == {
        "level": "INFO",
        "logger": "agent",
        "message": "VI_1: BACKUP -> MASTER (no advert for 3.6 s)",
        "instance": "VI_1",
        "old": "BACKUP",
        "new": "MASTER",
        "reason": "master_down",
    }
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.utcoffset() == timedelta(0)
    assert re.search(r"\.\d{3}\+00:00$", timestamp)


def test_json_keeps_a_multi_line_message_and_exception_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("debug", "json")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("agent.x").exception(
            "two\nlines", extra={"peer": IPv4Address("10.0.0.2")}
        )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "agent.x", "two\nlines")
    assert entry["peer"] == "10.0.0.2"  # not JSON-able as such: logged as its text
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad" in entry["exception"]


def test_level_still_filters_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("warning", "json")
    logging.getLogger("agent").info("hidden")
    logging.getLogger("agent").warning("shown")
    assert [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines()] == [
        "shown"
    ]


def test_setting_up_twice_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    setup_logging("info", "text")
    logging.getLogger("agent").info("once")
    err = capsys.readouterr().err
    assert err.count("once") == 1
    assert not err.startswith("{")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json, got 'xml'"):
        setup_logging("info", "xml")
