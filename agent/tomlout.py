"""A TOML writer for the agent's own configuration documents.

``vrrp-agent config --from-env`` prints the configuration it built so that an operator can
review it or keep it as a file. The documents are small and of one known shape (top-level
tables and arrays of tables holding strings, numbers, booleans, arrays and inline tables),
so this is a few dozen lines rather than a dependency; :func:`dumps` refuses anything
outside that shape instead of writing something :mod:`tomllib` would read differently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: Keys that need no quotes (TOML "bare keys").
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: Characters a TOML basic string must escape: the quote, the backslash and the control
#: characters other than tab (TOML 1.0, "String").
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps(document: Mapping[str, Any], header: str = "") -> str:
    """``document`` as TOML text; ``header`` lines become comments at the top.

    Top-level values must be tables (written ``[name]``) or arrays of tables (written
    ``[[name]]``); inside them, any value :func:`tomllib.loads` can return except dates.
    Raises TypeError or ValueError for anything else.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, value in document.items():
        if isinstance(value, Mapping):
            tables = [value]
            heading = f"[{_key(name)}]"
        elif isinstance(value, list) and value and all(isinstance(t, Mapping) for t in value):
            tables = value
            heading = f"[[{_key(name)}]]"
        else:
            raise TypeError(f"{name}: top-level values must be tables or arrays of tables")
        for table in tables:
            if lines:
                lines.append("")
            lines.append(heading)
            lines.extend(f"{_key(key)} = {_value(item)}" for key, item in table.items())
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r}: only finite numbers are written")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{_key(key)} = {_value(item)}" for key, item in value.items())
        return "{" + pairs + "}"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML")


def _string(text: str) -> str:
    escaped = "".join(
        _ESCAPES.get(char)
        or (
            f"\\u{ord(char):04X}" if (ord(char) < 0x20 and char != "\t") or char == "\x7f" else char
        )
        for char in text
    )
    return f'"{escaped}"'
