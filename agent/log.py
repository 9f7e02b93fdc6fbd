"""Logging set-up: one line per event on stderr, plain text or JSON.

Text lines (the default) are ``<timestamp> <LEVEL> <message>``, e.g.
``2025-01-01 12:00:00,123 INFO VI_1: BACKUP -> MASTER (startup as address owner ...)``.
Plain text because journald, ``kubectl logs`` and the tests all read lines; the
transition lines have a fixed format the lab and operators grep for.

JSON lines (``[global] log_format = "json"``) are for log pipelines (Loki, Elasticsearch)
that would otherwise have to parse that text back apart: one object per line with
``ts`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger`` and ``message`` (the same
text the plain format shows), plus every field the log call passed as ``extra=`` (such
as ``instance``, ``old``, ``new`` and ``reason`` with a state change), and ``exception``
with the formatted traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: The output formats :func:`setup_logging` takes (``[global] log_format``).
FORMATS: Final = ("text", "json")
FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed, so a second set-up replaces it instead of doubling."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # default=str: an extra field holding an address, an enum or a path still logs
        # (as its text) instead of losing the whole line to a TypeError.
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    """Send log records at ``level`` (debug|info|warning|error) and above to stderr, as
    ``fmt`` (text|json) lines.

    Idempotent: calling it again (the CLI and the daemon may both do so) only changes the
    level and format. Raises ValueError for an unknown level or format name.
    """
    try:
        number = LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}") from None
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _AgentHandler):
            root.removeHandler(handler)
    handler = _AgentHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(number)
