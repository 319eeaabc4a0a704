"""Write a value back into the user's config file without losing its comments or layout.

The TOML text is edited line by line (only the one ``key = value`` line changes, its trailing
comment kept), then parsed again to check the result says exactly what was meant.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path

from kobo_tip.errors import ConfigError

_UID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[")
_KEY_LINE = r"^(?P<lead>\s*{key}\s*=\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*')(?P<tail>\s*(#.*)?)$"


def save_asset_uid(path: Path, uid: str) -> None:
    """Set ``[source] asset_uid = "<uid>"`` in the config at ``path``, keeping every other line."""
    if not _UID.match(uid):
        raise ConfigError(f"'{uid}' is not a KoboToolbox asset uid (letters and digits only); nothing saved.")
    set_string(path, "source", "asset_uid", uid)


def set_string(path: Path, table: str, key: str, value: str) -> None:
    """Set the string ``key`` of ``[table]`` to ``value`` in the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {path} ({exc.strerror}).") from None
    edited = _with_string(text, table, key, value)
    try:
        parsed = tomllib.loads(edited)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"Editing {path} would make it invalid TOML ({exc}); set [{table}] {key} by hand."
        ) from None
    if parsed.get(table, {}).get(key) != value:
        raise ConfigError(
            f'Could not set [{table}] {key} in {path} automatically; set it by hand to "{value}".'
        )
    _replace_file(path, edited)


def _with_string(text: str, table: str, key: str, value: str) -> str:
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    literal = f'"{value}"'
    key_line = re.compile(_KEY_LINE.format(key=re.escape(key)))
    start = end = None
    for index, line in enumerate(lines):
        match = _TABLE.match(line.rstrip("\r\n"))
        if match or _ARRAY_TABLE.match(line):
            if start is not None:
                end = index
                break
            if match and match.group(1) == table:
                start = index + 1
    if start is None:
        separator = "" if not text or text.endswith(("\n", "\r")) else newline
        return f"{text}{separator}{newline}[{table}]{newline}{key} = {literal}{newline}"
    end = len(lines) if end is None else end
    for index in range(start, end):
        body = lines[index].rstrip("\r\n")
        match = key_line.match(body)
        if match:
            ending = lines[index][len(body) :]
            lines[index] = f"{match['lead']}{literal}{match['tail']}{ending}"
            return "".join(lines)
    lines.insert(start, f"{key} = {literal}{newline}")
    return "".join(lines)


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the file's permissions."""
    mode = path.stat().st_mode & 0o777
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(f"Cannot write the config file {path} ({exc.strerror}).") from None
