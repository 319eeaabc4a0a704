"""Tidy files: counts.csv, data_quality.csv, restatements.csv (spec section 7).

Every cell that a spreadsheet could read as a formula (``= + - @``, and the tab and carriage
return OWASP lists) is made inert with a leading ``'``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kobo_tip import indicator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> str:
    """``value`` as text that no spreadsheet evaluates: ``=1+1`` -> ``'=1+1``."""
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


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
    text = values.astype(object).where(values.notna(), "")
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
