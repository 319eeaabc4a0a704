"""Targets of the M&E plan, as the officer keeps them: a CSV or an XLSX sheet, checked, and a
pre-filled template to start from (``kobo-tip targets template``).

A target is for one cell of ``counts.csv`` (indicator, period, dimension, category), or for a
group of categories of one additive dimension: written out (``0-4+5-11+12-17``) or named
(``GROUPS``: ``children`` and ``adults`` of ``age_band``; ``girls``, ``boys``, ``women`` and ``men``
of ``age_band_x_gender``, where under 18 means the age bands that end before 18). A group's actual
is the sum of its published cells, one more figure the disclosure audit sees (contract section 6).
Rows with an empty target are the template's blanks and are skipped. A target (and the optional
``baseline``) may separate its thousands as English or French writes them (``1,800``, ``1 800``).
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill

from kobo_tip import indicator
from kobo_tip.config import ProjectSettings, Settings, decode_text
from kobo_tip.errors import ConfigError
from kobo_tip.periods import FISCAL_YEAR, LOP_LABEL, QUARTER, Period, reporting_periods

COLUMNS = ("indicator", "period", "dimension", "category", "target", "notes")
BASELINE = "baseline"  # an optional column: the value before the project, for the IPTT
GROUP_SEPARATOR = "+"
ADULT_AGE = 18
# Named groups: their dimension, and the gender (of the cross-tab) and side of ADULT_AGE they take.
GROUPS: dict[str, tuple[str, str, bool]] = {
    "children": ("age_band", "", False),
    "adults": ("age_band", "", True),
    "girls": ("age_band_x_gender", "female", False),
    "boys": ("age_band_x_gender", "male", False),
    "women": ("age_band_x_gender", "female", True),
    "men": ("age_band_x_gender", "male", True),
}
TOTAL = ("total", "all")
_HEADER_FILL = PatternFill("solid", fgColor="1F4E79")

TargetKey = tuple[str, str, str, str]  # indicator, period, dimension, category


@dataclass(frozen=True)
class Target:
    indicator: str
    period: str
    dimension: str
    category: str
    target: int
    notes: str  # the officer's own words
    line: int  # where it is in the file, for messages
    # The categories of counts.csv a group target adds up (empty: ``category`` is one of them).
    parts: tuple[str, ...] = ()
    baseline: int | None = None

    @property
    def key(self) -> TargetKey:
        return (self.indicator, self.period, self.dimension, self.category)


@dataclass(frozen=True)
class Targets:
    by_key: dict[TargetKey, Target]
    warnings: tuple[str, ...]

    def get(self, key: TargetKey) -> Target | None:
        return self.by_key.get(key)


def project_periods(project: ProjectSettings) -> list[Period]:
    """Every quarter, fiscal year and the LOP of the whole project (targets may be for the future)."""
    return reporting_periods(project, project.end_date)


def read_targets(path: Path, sheet: str = "") -> list[tuple[int, dict[str, str]]]:
    """The rows of the targets file with their line numbers (header checked, blanks dropped)."""
    what = f"Targets file {path}"
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(path, sheet, what)
    else:
        try:
            text = decode_text(path.read_bytes(), what)
        except OSError as exc:
            raise ConfigError(f"{what} cannot be read: {exc.strerror}.") from None
        first = text.split("\n", 1)[0]
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=max(",;\t", key=first.count)))
    if not rows:
        raise ConfigError(f"{what} is empty: its first line must be the header {','.join(COLUMNS)}.")
    header = [cell.strip().lower() for cell in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConfigError(
            f"{what} lacks the column(s) {', '.join(missing)}: its first line must be the header "
            f"{','.join(COLUMNS)} ('kobo-tip targets template' writes one)."
        )
    out = []
    for number, cells in enumerate(rows[1:], start=2):
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        if any(row.get(c) for c in COLUMNS):
            out.append((number, row))
    return out


def _xlsx_rows(path: Path, sheet: str, what: str) -> list[list[str]]:
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors on bad files
        raise ConfigError(f"{what} is not a readable XLSX workbook ({type(exc).__name__}).") from None
    try:
        if sheet and sheet not in book.sheetnames:
            raise ConfigError(f"{what} has no sheet '{sheet}' (it has {', '.join(book.sheetnames)}).")
        worksheet = book[sheet] if sheet else book.worksheets[0]
        return [[_cell_text(value) for value in row] for row in worksheet.iter_rows(values_only=True)]
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps every number as a float
    return str(value)


# Digits in groups of three, one separator throughout: "1,800" as English writes it, "1 800" (a
# space, a no-break space or the narrow one) as French does, "1'800" as Swiss forms do. A point
# is not one of them: "1.800" is a fraction in English, refused rather than guessed.
GROUPED = re.compile(r"\d{1,3}(?P<separator>[, \u00a0\u202f'])\d{3}(?:(?P=separator)\d{3})*")


def whole_number(text: str) -> int | None:
    """``text`` as a whole number of persons, its thousands separated or not; None if it is not one."""
    if re.fullmatch(r"\d+", text):
        return int(text)
    if GROUPED.fullmatch(text):
        return int(re.sub(r"\D", "", text))
    return None


def check_targets(
    rows: Iterable[tuple[int, dict[str, str]]],
    settings: Settings,
    categories: Mapping[str, set[str]],
    what: str,
) -> Targets:
    """Targets from ``rows``, each checked against the project's periods and ``categories`` (the
    categories of each dimension); an error names the line and the fix. Warnings: quarter targets
    that do not add up to their fiscal year's, a fiscal year without quarter targets."""
    periods = {p.label: p for p in project_periods(settings.project)}
    found: dict[TargetKey, Target] = {}
    for line, row in rows:
        if not row.get("target", ""):
            continue  # a blank of the template: no target for that period
        where = f"{what} line {line}"
        name, period, dimension, category = (row.get(c, "") for c in COLUMNS[:4])
        if name not in indicator.VARIANTS:
            raise ConfigError(f"{where}: indicator '{name}' is not one of {', '.join(indicator.VARIANTS)}.")
        if period not in periods:
            raise ConfigError(
                f"{where}: period '{period}' is not a quarter, fiscal year or LOP of the project "
                f"(such as '{next(iter(periods))}', or 'LOP')."
            )
        if dimension not in categories:
            raise ConfigError(
                f"{where}: dimension '{dimension}' is not a breakdown of counts.csv "
                f"({', '.join(categories)})."
            )
        parts = group_parts(dimension, category, categories[dimension], settings.indicator.age_bands, where)
        text = row.get("target", "")
        number = whole_number(text)
        if number is None:
            raise ConfigError(f"{where}: target '{text}' must be a whole number of persons, 0 or more.")
        baseline = whole_number(row.get(BASELINE, "")) if row.get(BASELINE, "") else None
        if row.get(BASELINE, "") and baseline is None:
            raise ConfigError(
                f"{where}: baseline '{row[BASELINE]}' must be a whole number of persons, or empty."
            )
        target = Target(
            name, period, dimension, category, number, row.get("notes", ""), line, parts, baseline
        )
        if target.key in found:
            raise ConfigError(
                f"{where}: a second target for {name} {period} {dimension}={category} "
                f"(the first is on line {found[target.key].line}); keep one."
            )
        found[target.key] = target
    return Targets(found, tuple(_warnings(found, periods, what)))


def group_parts(
    dimension: str, category: str, known: set[str], age_bands: tuple[int, ...], where: str
) -> tuple[str, ...]:
    """The categories a target's ``category`` adds up: none for a category of ``dimension``
    (``known``), else those of a named group (``GROUPS``) or of ``a+b+c``; an error names the fix."""
    if category in known:
        return ()
    if dimension not in (*indicator.SINGLE_RESPONSE_DIMENSIONS, "age_band_x_gender"):
        raise ConfigError(
            f"{where}: category '{category}' is not a category of {dimension}, and a group of {dimension} "
            "cannot be counted (a person may be in several of its categories): set one per category."
        )
    if category in GROUPS:
        wanted, gender, adult = GROUPS[category]
        if dimension != wanted:
            raise ConfigError(
                f"{where}: the group '{category}' is a group of {wanted}; write {wanted} as its dimension."
            )
        bands = _bands_beside(age_bands, adult, where, category)
        return tuple(f"{band}|{gender}" for band in bands) if gender else bands
    parts = tuple(part.strip() for part in category.split(GROUP_SEPARATOR))
    unknown = [part for part in parts if part not in known]
    if len(parts) < 2 or unknown or len(set(parts)) != len(parts):
        named = ", ".join(g for g, (d, _, _) in GROUPS.items() if d == dimension)
        raise ConfigError(
            f"{where}: category '{category}' is not a category of {dimension}; for a group, "
            + (f"name it ({named}) or " if named else "")
            + f"join two or more different categories with '{GROUP_SEPARATOR}' (such as 0-4+5-11)."
        )
    return parts


def _bands_beside(age_bands: tuple[int, ...], adult: bool, where: str, group: str) -> tuple[str, ...]:
    """The age bands of ``age_bands`` that end before ``ADULT_AGE`` (or, ``adult``, start from it)."""
    if ADULT_AGE not in age_bands:
        raise ConfigError(
            f"{where}: the group '{group}' needs an age band starting at {ADULT_AGE}, which [indicator] "
            "age_bands lacks; join the bands it holds with '+' instead."
        )
    labels = indicator.age_band_labels(age_bands)
    return tuple(label for label, low in zip(labels, age_bands, strict=True) if (low >= ADULT_AGE) == adult)


def _warnings(found: Mapping[TargetKey, Target], periods: Mapping[str, Period], what: str) -> list[str]:
    quarters: dict[TargetKey, list[Target]] = defaultdict(list)
    for target in found.values():
        period = periods[target.period]
        if period.kind == QUARTER:
            year = next(
                p for p in periods.values() if p.kind == FISCAL_YEAR and p.start <= period.start <= p.end
            )
            quarters[(target.indicator, year.label, target.dimension, target.category)].append(target)
    warnings = []
    for key, target in found.items():
        if periods[target.period].kind != FISCAL_YEAR:
            continue
        parts = quarters.get(key, [])
        cell = f"{target.indicator} {target.dimension}={target.category}"
        if not parts:
            warnings.append(
                f"{what} line {target.line}: {target.period} has a target for {cell} but none of its "
                "quarters has: quarter by quarter, the report shows actuals only."
            )
        elif sum(p.target for p in parts) != target.target:
            warnings.append(
                f"{what} line {target.line}: the quarter targets of {target.period} for {cell} add up to "
                f"{sum(p.target for p in parts)}, not the year's {target.target}."
            )
    return warnings


def write_template(path: Path, settings: Settings) -> Path:
    """A targets file to fill in: a row per indicator and project period for the total, and one
    example row of a breakdown; XLSX (header styled, columns sized) or CSV by the suffix."""
    rows: list[list[object]] = []
    for name in indicator.VARIANTS:
        for period in project_periods(settings.project):
            rows.append([name, period.label, *TOTAL, None, ""])
    rows.append(
        [
            indicator.HEADLINE_VARIANT,
            LOP_LABEL,
            "gender",
            "female",
            None,
            "example of a breakdown target: edit or delete",
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise ConfigError(
            f"{path} already exists: the template never overwrites a file; choose another name."
        )
    if path.suffix.lower() == ".xlsx":
        book = Workbook()
        sheet = book.active
        sheet.title = "targets"
        sheet.append(list(COLUMNS))
        for cell in sheet[1]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = _HEADER_FILL
        for row in rows:
            sheet.append(row)
        for letter, width in zip("ABCDEF", (24, 12, 18, 14, 10, 50), strict=True):
            sheet.column_dimensions[letter].width = width
        sheet.freeze_panes = "A2"
        book.save(path)
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path
