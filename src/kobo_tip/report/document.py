"""report.html and report.md from the Jinja templates shipped in the package.

HTML is autoescaped; Markdown output passes every value through ``markdown_text`` (via the
environment's ``finalize``), so no submission or config text can inject markup in either.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from kobo_tip import indicator, privacy
from kobo_tip.report.charts import Series, stacked_bars
from kobo_tip.report.files import readable
from kobo_tip.report.tables import cross_tab, dimension_tables, headlines

if TYPE_CHECKING:
    from kobo_tip.report.render import Edition

LIST_LIMIT = 200  # ids shown per data-quality rule; the rest are in data_quality.csv
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
# Only a "<" that could open a tag and an "&" that could start an entity need escaping: "<5" stays.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])|&(?=[A-Za-z#])")


@dataclass(frozen=True)
class FindingGroup:
    rule: str
    title: str
    count: int
    rows: list[tuple[str, str, str]]  # (submission_id, field, detail)
    more: int


def html_text(value: Any) -> Any:
    """A value for the HTML page: control characters as U+FFFD (autoescape does the rest)."""
    return readable(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def markdown_text(value: Any) -> Any:
    """Escape a value for a Markdown table cell: HTML characters, Markdown syntax, line breaks."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    text = _HTML_START.sub(lambda match: "&lt;" if match.group() == "<" else "&amp;", readable(value))
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.split())


@functools.cache
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.PackageLoader("kobo_tip", "templates")
    options: dict[str, Any] = {"loader": loader, "trim_blocks": True, "lstrip_blocks": True}
    html = jinja2.Environment(
        autoescape=True, finalize=html_text, undefined=jinja2.StrictUndefined, **options
    )
    markdown = jinja2.Environment(
        autoescape=False, finalize=markdown_text, undefined=jinja2.StrictUndefined, **options
    )
    return html, markdown


def render_html(edition: Edition) -> str:
    """The self-contained HTML report."""
    html, _ = _environments()
    return html.get_template("report.html.j2").render(_context(edition, chart=True))


def render_markdown(edition: Edition) -> str:
    """The same content as GitHub-flavoured Markdown tables."""
    _, markdown = _environments()
    return markdown.get_template("report.md.j2").render(_context(edition, chart=False))


def _context(edition: Edition, *, chart: bool) -> dict[str, Any]:
    words, counts, key = edition.words, edition.counts, edition.key_periods
    sections = []
    for name in counts.indicators():
        crosses = [cross_tab(counts, words, name, p) for p in (key.headline, key.fiscal_year, key.lop) if p]
        sections.append(
            {
                "name": name,
                "title": words.indicator(name),
                "tables": dimension_tables(counts, words, name, edition.left_out),
                "cross_tabs": [table for table in crosses if table is not None],
            }
        )
    rules = [
        "definition",
        "rule.variants",
        "rule.new_only",
        "rule.eligibility",
        "rule.person_key",
        "rule.attributes",
    ]
    notes = [words.text(rule) for rule in rules]
    if edition.k is not None:
        notes += [
            words.text(
                "rule.suppression", k=edition.k, k_minus_1=edition.k - 1, need=privacy.need_of(edition.k)
            ),
            words.text("rule.intruder"),
            words.text("rule.revisions", k=edition.k),
            words.text("rule.running_quarter"),
        ]
    return {
        "edition": edition,
        "t": words.text,
        "audience_title": words.text(f"audience.{edition.audience}"),
        "notes": notes,
        "headlines": headlines(counts, words, key),
        "chart": _chart(edition) if chart else None,
        "sections": sections,
        "data_quality": _data_quality(edition) if edition.findings is not None else None,
        "restatements": _restatement_rows(edition) if edition.audience == "internal" else None,
        "protection": _protection(edition) if edition.disclosure is not None else None,
        "provenance": edition.provenance,
    }


def _chart(edition: Edition) -> Markup:
    words, counts = edition.words, edition.counts
    name = indicator.HEADLINE_VARIANT
    quarters = [p.label for p in counts.of_kind("quarter")]
    series = []
    for category in counts.categories.get((name, "stakeholder_type"), []):
        cells = [counts.cell(name, q, "stakeholder_type", category) for q in quarters]
        if any(c.is_number and c.text != "0" for c in cells):
            series.append(Series(words.category("stakeholder_type", category), cells))
    totals = [counts.cell(name, q, "total", "all") for q in quarters]
    return stacked_bars(quarters, totals, series, words.text("chart.hidden"))


def _data_quality(edition: Edition) -> dict[str, list[FindingGroup]]:
    """The first ``LIST_LIMIT`` findings of each rule, and how many more data_quality.csv holds."""
    findings = edition.findings
    assert findings is not None
    totals = findings["rule"].value_counts()
    shown = findings.groupby("rule", sort=False).head(LIST_LIMIT).fillna("").astype(str)
    groups = {}
    for rule, rows in shown.groupby("rule", sort=False):
        listed = list(zip(rows["submission_id"], rows["field"], rows["detail"], strict=True))
        title = rule if rule in indicator.EXCLUSION_RULES else edition.words.text(f"dq.{rule}")
        groups[rule] = FindingGroup(rule, title, int(totals[rule]), listed, int(totals[rule]) - len(listed))
    return {
        "excluded": [groups[rule] for rule in indicator.EXCLUSION_RULES if rule in groups],
        "findings": [groups[rule] for rule in indicator.FINDING_RULES if rule in groups],
    }


def _protection(edition: Edition) -> dict[str, Any]:
    """The internal report's account of the outside releases: what suppression hid, per audience
    and breakdown, and the revisions held back."""
    words = edition.words
    loss = edition.disclosure
    assert loss is not None
    rows = [
        {
            "audience": words.text(f"audience.{row.audience}"),
            "dimension": words.dimension(row.dimension),
            "cells": f"{row.hidden_cells / row.cells:.1%}" if row.cells else "–",
            "persons": f"{row.hidden_persons / row.persons:.1%}" if row.persons else "–",
        }
        for row in loss.itertuples()
    ]
    held = [{"period": h.period, "changed": h.changed, "reason": h.reason} for h in edition.held]
    return {"loss": rows, "held": held}


def _restatement_rows(edition: Edition) -> list[dict[str, str]]:
    words = edition.words
    return [
        {
            "indicator": words.indicator(row.indicator),
            "period": row.period,
            "dimension": words.dimension(row.dimension),
            "category": words.category(row.dimension, row.category),
            "old": row.old,
            "new": row.new,
            "reason": row.reason,
        }
        for row in edition.restatements.itertuples()
    ]
