"""Kobo CSV and JSON exports of Kobo data-API submissions, written as Kobo's exporter (formpack)
writes them: names ("XML values and headers") or labels in one of the form's languages, for the
values, the headers or both; group paths in the headers or not; select_multiple answers as one
column of labels joined by spaces, as 0/1 columns per choice, or both.

The labels are read from the XLSForm kobo-tip writes (``forms/<form_id>.xlsx``), as Kobo reads
them from the deployed form.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from kobo_tip import indicator as ind
from kobo_tip import synthetic
from kobo_tip.config import Settings

XML = "_xml"  # Kobo's lang for names
META_BEFORE = ("start", "end", "today", "deviceid", "username")
META_AFTER = (
    ind.FORM_VERSION,
    "__version__",
    "meta/instanceID",
    "_id",
    "_uuid",
    "_submission_time",
    "_validation_status",
    "_notes",
    "_status",
    "_submitted_by",
    "_tags",
    "_index",
)
AS_OF = dt.date(2026, 11, 15)


@dataclass(frozen=True)
class Question:
    name: str
    path: tuple[str, ...]  # group names
    group_labels: tuple[Mapping[str, str], ...]  # per group: language -> label
    labels: Mapping[str, str]  # language -> label
    list_name: str | None
    multiple: bool


@dataclass(frozen=True)
class Form:
    questions: list[Question]
    choices: dict[str, dict[str, dict[str, str]]]  # list -> name -> language -> label
    languages: list[str]


def read_form(xlsx: Path) -> Form:
    """The questions and choices of the XLSForm, with their labels in every language."""
    book = load_workbook(xlsx, read_only=True)
    header, survey = _rows(book["survey"])
    languages = [key.split("::", 1)[1] for key in header if key.startswith("label::")]
    questions: list[Question] = []
    groups: list[tuple[str, dict[str, str]]] = []
    for row in survey:
        kind = row.get("type") or ""
        labels = {lang: row.get(f"label::{lang}") or "" for lang in languages}
        if kind == "begin_group":
            groups.append((row["name"], labels))
        elif kind == "end_group":
            groups.pop()
        elif any(labels.values()):
            words = kind.split()
            questions.append(
                Question(
                    name=row["name"],
                    path=tuple(name for name, _ in groups),
                    group_labels=tuple(labels for _, labels in groups),
                    labels=labels,
                    list_name=words[1] if words[0].startswith("select_") else None,
                    multiple=words[0] == "select_multiple",
                )
            )
    choices: dict[str, dict[str, dict[str, str]]] = {}
    for row in _rows(book["choices"])[1]:
        choices.setdefault(row["list_name"], {})[row["name"]] = {
            lang: row.get(f"label::{lang}") or row["name"] for lang in languages
        }
    return Form(questions, choices, languages)


def _rows(sheet: Any) -> tuple[list[str], list[dict[str, str]]]:
    values = list(sheet.iter_rows(values_only=True))
    header = [str(cell) if cell is not None else "" for cell in values[0]]
    return header, [
        {key: str(cell) for key, cell in zip(header, row, strict=False) if cell is not None and key}
        for row in values[1:]
    ]


@dataclass(frozen=True)
class Style:
    """How the export was asked for (Kobo's export dialog)."""

    values: str = XML  # XML or a language label
    headers: str = XML
    groups: bool = True  # "Include groups in headers"
    separator: str = "/"  # "Group separator"
    multiple: str = "summary"  # "summary" | "details" | "both"


def _header(question: Question, style: Style) -> str:
    if style.headers == XML:
        parts = [*question.path, question.name] if style.groups else [question.name]
    else:
        lang = style.headers
        groups = [labels[lang] for labels in question.group_labels]
        parts = [*groups, question.labels[lang]] if style.groups else [question.labels[lang]]
    return style.separator.join(parts)


def _choice_text(form: Form, question: Question, name: str, lang: str) -> str:
    assert question.list_name is not None
    if lang == XML:
        return name
    return form.choices.get(question.list_name, {}).get(name, {}).get(lang, name)


def export_rows(form: Form, submissions: Sequence[Mapping[str, Any]], style: Style) -> list[dict[str, str]]:
    """The rows of the export, column -> cell text, in Kobo's column order."""
    rows = []
    for index, sub in enumerate(submissions, start=1):
        row: dict[str, str] = {name: str(sub.get(name, "")) for name in META_BEFORE}
        for question in form.questions:
            answer = sub.get("/".join((*question.path, question.name)))
            header = _header(question, style)
            answer_text = "" if answer is None else str(answer)
            if question.list_name is None:
                row[header] = answer_text
                continue
            chosen = answer_text.split() if question.multiple else [answer_text]
            if question.multiple and style.multiple in ("details", "both"):
                summary_wanted = style.multiple == "both"
            else:
                summary_wanted = True
            if summary_wanted:
                row[header] = " ".join(_choice_text(form, question, c, style.values) for c in chosen if c)
            if question.multiple and style.multiple in ("details", "both"):
                for choice in form.choices[question.list_name]:
                    label = _choice_text(form, question, choice, style.headers)
                    row[f"{header}{style.separator}{label}"] = (
                        "" if not answer_text else ("1" if choice in chosen else "0")
                    )
        for name in META_AFTER:
            if name == "_validation_status":
                row[name] = (sub.get(name) or {}).get("label", "")
            elif name == "_index":
                row[name] = str(index)
            else:
                value = sub.get(name, "")
                row[name] = json.dumps(value) if isinstance(value, list) else str(value)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A Kobo CSV export: ';' between cells, every cell quoted, UTF-8 with a BOM."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(key, "") for key in header])
    return path


def write_json(path: Path, rows: list[dict[str, str]]) -> Path:
    """The same rows as a JSON list, blank cells left out (as Kobo leaves unanswered questions out)."""
    kept = [{key: value for key, value in row.items() if value != ""} for row in rows]
    path.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    return path


def demo_submissions(settings: Settings, n: int = 300, seed: int = 2026) -> list[dict[str, Any]]:
    """``n`` submissions as the demo generates them, for this project's roster and locations."""
    return synthetic.generate_submissions(
        n,
        seed=seed,
        roster=settings.form.roster,
        locations=settings.form.locations,
        start_date=settings.project.start_date,
        end_date=AS_OF - dt.timedelta(days=1),
        as_of=AS_OF,
        country=settings.project.country,
        disability=settings.form.disability,
        ethnicities=settings.form.ethnicities,
    )
