"""Logging set-up: one plain text line per event on stderr.

Lines are ``<timestamp> <LEVEL> <message>``, e.g.
``2025-01-01 12:00:00,123 INFO VI_1: BACKUP -> MASTER (startup as address owner ...)``.
Plain text because journald, ``kubectl logs`` and the tests all read lines; the
transition lines have a fixed format the lab and operators grep for.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed, so a second set-up replaces it instead of doubling."""


def setup_logging(level: str) -> None:
    """Send log records at ``level`` (debug|info|warning|error) and above to stderr.

    Idempotent: calling it again (the CLI and the daemon may both do so) only changes the
    level. Raises ValueError for an unknown level name.
    """
    try:
        number = LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}") from None
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _AgentHandler):
            root.removeHandler(handler)
    handler = _AgentHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(number)
