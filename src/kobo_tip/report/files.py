"""Tidy files: counts.csv, data_quality.csv, restatements.csv (contract section 7).

Every cell that a spreadsheet could read as a formula (``= + - @``, and the tab and carriage
return OWASP lists) is made inert with a leading ``'``, and control characters (which XLSX cannot
hold and no reader wants) become U+FFFD, in every output.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kobo_tip import indicator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The C0 controls but tab, line feed and carriage return, and DEL: what XML 1.0 (XLSX) cannot hold.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def readable(text: str) -> str:
    """``text`` with each control character replaced by U+FFFD."""
    return CONTROL.sub("\ufffd", text)


def inert(value: Any) -> str:
    """``value`` as text that no spreadsheet evaluates: ``=1+1`` -> ``'=1+1``; controls as U+FFFD."""
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else readable(str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600
GROUP_FOLDER, GROUP_FILE = 0o750, 0o640


@contextlib.contextmanager
def new_folder(folder: Path, *, group: str = "", carry: bool = False) -> Iterator[Path]:
    """A new, empty folder to write ``folder``'s files into; when the block ends without an error,
    ``folder`` becomes a link to it in one rename, so a reader sees the old files or the new ones,
    never a mix, and the old version is removed. On an error the new folder is removed instead.
    With ``carry`` the new folder starts with the current version's files (hard links, so nothing
    is copied; a file written in the block replaces its link, never the old file): the one file
    written shows before the rest are written again (serve's ``report.html``), and for that
    while it stands beside the previous version's other files.

    The folder and its files are its owner's only, or with ``group`` that group's to read too.
    ``folder`` is a symbolic link to ``.<name>.<time>-<pid>`` beside it (a folder left by an
    earlier version of kobo-tip is replaced by the link the first time)."""
    parent = folder.parent
    parent.mkdir(mode=GROUP_FOLDER if group else PRIVATE_FOLDER, parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    version = parent / f".{folder.name}.{stamp}-{os.getpid()}"
    version.mkdir(mode=PRIVATE_FOLDER)
    try:
        if carry and folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and not path.is_symlink():
                    os.link(path, version / path.name)
        yield version
        _restrict(version, group)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    previous = Path(os.readlink(folder)) if folder.is_symlink() else None
    if folder.is_dir() and not folder.is_symlink():
        folder.rename(parent / f".{folder.name}.{stamp}-{os.getpid()}.old")
        previous = parent / f".{folder.name}.{stamp}-{os.getpid()}.old"
    link = parent / f".{folder.name}.{stamp}-{os.getpid()}.link"
    link.symlink_to(version.name)
    os.replace(link, folder)
    if previous is not None:
        shutil.rmtree(previous if previous.is_absolute() else parent / previous, ignore_errors=True)


def _restrict(version: Path, group: str) -> None:
    """Owner-only modes, or the group's to read: set on the folder and each file before it is shown."""
    gid = grp.getgrnam(group).gr_gid if group else -1
    for path in (version, *version.iterdir()):
        os.chmod(
            path,
            (GROUP_FOLDER if group else PRIVATE_FOLDER)
            if path.is_dir()
            else (GROUP_FILE if group else PRIVATE_FILE),
        )
        if group:
            os.chown(path, -1, gid)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8", newline="")
    os.replace(temporary, path)
    return path


def inert_column(values: pd.Series) -> pd.Series:
    """``inert`` over a whole column (data-quality lists can hold millions of rows)."""
    if pd.api.types.is_numeric_dtype(values):  # only text can hold a formula
        return values
    text = (
        values.astype(object).where(values.notna(), "").astype(str).str.replace(CONTROL, "\ufffd", regex=True)
    )
    risky = text.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
    if risky.any():
        text = text.copy()
        text[risky] = "'" + text[risky]
    return text


def write_table(path: Path, table: pd.DataFrame, columns: Sequence[str]) -> Path:
    """Write ``columns`` of ``table`` (in that order) as UTF-8 CSV, every cell made inert."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    cells = pd.DataFrame({name: inert_column(table[name]) for name in columns}, columns=list(columns))
    cells.to_csv(temporary, index=False, encoding="utf-8", lineterminator="\n")
    os.replace(temporary, path)
    return path


def write_counts(path: Path, published: pd.DataFrame) -> Path:
    """counts.csv: ``indicator,period,period_start,period_end,dimension,category,value``."""
    return write_table(path, published, indicator.COUNTS_COLUMNS)


def write_data_quality(path: Path, findings: pd.DataFrame) -> Path:
    """data_quality.csv (internal only): ``submission_id,rule,field,detail``."""
    return write_table(path, findings, indicator.DATA_QUALITY_COLUMNS)


def write_restatements(path: Path, restatements: pd.DataFrame) -> Path:
    """restatements.csv: ``indicator,period,dimension,category,old,new,reason``."""
    return write_table(path, restatements, indicator.RESTATEMENT_COLUMNS)
