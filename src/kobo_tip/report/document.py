"""report.html and report.md from the Jinja templates shipped in the package.

HTML is autoescaped; Markdown output passes every value through ``markdown_text`` (via the
environment's ``finalize``), so no submission or config text can inject markup in either.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from kobo_tip import indicator, privacy
from kobo_tip.config import AS_REPORTED
from kobo_tip.partners import ALL_STAKEHOLDERS, VARIANT_COLUMNS
from kobo_tip.report import iptt
from kobo_tip.report.charts import Bar, Series, grouped_bars, horizontal_bars, stacked_bars, trend
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import readable
from kobo_tip.report.records import AsReportedTotal, LossRow, PartnerRow, ReferralRow, RestatementRow, records
from kobo_tip.report.tables import (
    CROSS_TAB,
    CROSS_TAB_SEPARATOR,
    Cell,
    KeyPeriods,
    PublishedCounts,
    cross_tab,
    dimension_tables,
    headlines,
)
from kobo_tip.report.texts import ReportWords

LIST_LIMIT = 200  # ids shown per data-quality rule; the rest are in data_quality.csv
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
# Only a "<" that could open a tag and an "&" that could start an entity need escaping: "<5" stays.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])|&(?=[A-Za-z#])")


@dataclass(frozen=True)
class FindingLine:
    field: str
    detail: str
    count: int  # submissions with this field and detail (a detail many share is one line)
    ids: list[str]  # the first of them


@dataclass(frozen=True)
class FindingGroup:
    rule: str
    title: str
    count: int
    lines: list[FindingLine]
    ids: list[str]  # every id the lines show, in the order of the findings
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


def report_charts(edition: Edition) -> list[dict[str, Any]]:
    """Every chart of the report page: its ``title``, its ``svg`` and the ``file`` name (without
    suffix) it is written under beside the page (``report.chart_files``), which says what it shows."""
    counts, key = _shown(edition)
    return _charts(counts, edition.words, key) + _target_chart(edition)


def _shown(edition: Edition) -> tuple[PublishedCounts, KeyPeriods]:
    """The counts the page shows (internal: without an empty running quarter) and their key periods."""
    run_date = edition.provenance.run_date
    counts = edition.counts.without_empty_running(run_date) if edition.k is None else edition.counts
    return counts, KeyPeriods.of(counts, edition.key_periods.headline, run_date)


def _context(edition: Edition, *, chart: bool) -> dict[str, Any]:
    words = edition.words
    counts, key = _shown(edition)
    sections = []
    for name in counts.indicators():
        crosses = [cross_tab(counts, words, name, p) for p in (key.headline, key.fiscal_year, key.lop) if p]
        sections.append(
            {
                "name": name,
                "title": words.indicator(name),
                "tables": dimension_tables(
                    counts, words, name, edition.left_out, fold=True, by_count=edition.k is not None
                ),
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
            *(
                [words.text("rule.as_reported")]
                if edition.basis == AS_REPORTED
                else [words.text("rule.event_date"), words.text("rule.revisions", k=edition.k)]
            ),
            words.text("rule.running_quarter"),
        ]
    return {
        "edition": edition,
        "t": words.text,
        "n": lambda value: words.number(str(value)),
        "direction": "rtl" if words.right_to_left else "ltr",
        "data_as_of": _moment(edition.provenance.data_as_of, words),
        "audience_title": words.text(f"audience.{edition.audience}"),
        "notes": notes,
        "stale": _staleness(edition),
        "revised": len(edition.restatements) if edition.k is not None else 0,
        "headlines": headlines(counts, words, key),
        "summary": edition.performance.summary,
        "iptt": _iptt(edition),
        "iptt_about": words.text("iptt.about", margin=words.percent(edition.performance.margin)),
        "charts": report_charts(edition) if chart else [],
        # Beside every table and chart of an outside report: what "<k" and "x" mean (contract section 6).
        "hidden_key": words.hidden_key(edition.k) if edition.k is not None else "",
        "iptt_key": _iptt_key(edition),
        "sections": sections,
        "data_quality": _data_quality(edition) if edition.findings is not None else None,
        "referrals": _referrals(edition) if edition.referrals is not None else None,
        "partners": _partners(edition) if edition.partners is not None else None,
        "restatements": _restatement_groups(edition) if edition.audience == indicator.INTERNAL else None,
        "protection": _protection(edition) if edition.disclosure is not None else None,
        "as_reported": _as_reported(edition) if edition.as_reported is not None else None,
        "provenance": edition.provenance,
    }


def _referrals(edition: Edition) -> dict[str, Any]:
    """The internal table of referrals by receiving organisation, with its texts."""
    assert edition.referrals is not None
    text = edition.words.labels.report_text
    return {
        "title": text("referrals.title"),
        "about": text("referrals.about"),
        "headers": [text(f"referrals.{name}") for name in ("organisation", "referrals", "consent_to_share")],
        "rows": [
            (row.organisation, row.referrals, row.consent_to_share)
            for row in records(edition.referrals, ReferralRow)
        ],
    }


def _moment(stamp: str | None, words: ReportWords) -> str:
    """The UTC time of the last sync (``2025-04-02T08:00:00Z``) as the report language writes it."""
    if not stamp:
        return ""
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return f"{words.date(moment.date())} {moment:%H:%M} UTC"


def _partners(edition: Edition) -> dict[str, Any]:
    """The internal tables of counts by partner organisation, then by each of its stakeholders."""
    assert edition.partners is not None
    text = edition.words.labels.report_text
    groups: dict[str, list[tuple[bool, str, str, int, int, int]]] = {}
    for row in records(edition.partners, PartnerRow):
        whole = row.stakeholder_id == ALL_STAKEHOLDERS
        who = text("partners.all") if whole else row.stakeholder
        groups.setdefault(row.organisation, []).append(
            (whole, who, row.period, row.new_persons, row.identified, row.referred)
        )
    return {
        "title": text("partners.title"),
        "about": text("partners.about"),
        "headers": [text(f"partners.{name}") for name in ("who", "period", *VARIANT_COLUMNS.values())],
        "groups": [(name or text("partners.no_organisation"), rows) for name, rows in groups.items()],
    }


def _staleness(edition: Edition) -> str:
    """A warning when the last sync is older than ``[report] stale_after_days``; else ''."""
    stamp = edition.provenance.data_as_of
    if not stamp:
        return ""
    synced = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()
    days = (edition.provenance.run_date - synced).days
    return (
        edition.words.text("stale", days=days, date=edition.words.date(synced))
        if days > edition.stale_after_days
        else ""
    )


def _charts(counts: PublishedCounts, words: ReportWords, key: KeyPeriods) -> list[dict[str, Any]]:
    """The charts of the report, each drawn from published cells only (see ``charts``)."""
    name = indicator.HEADLINE_VARIANT
    hidden = words.text("chart.hidden")
    quarters = [p.label for p in counts.of_kind("quarter")]
    out: list[dict[str, Any]] = []
    if quarters:
        trend_series = [
            Series(words.indicator(variant), [counts.cell(variant, q, "total", "all") for q in quarters])
            for variant in counts.indicators()
        ]
        out.append(
            {
                "title": words.text("chart.trend"),
                "file": "chart-persons-per-quarter",
                "svg": trend(quarters, trend_series, hidden, words=words),
            }
        )
        series = []
        for category in counts.categories.get((name, "stakeholder_type"), []):
            cells = [counts.cell(name, q, "stakeholder_type", category) for q in quarters]
            if label := _series_label(cells, words, words.category("stakeholder_type", category)):
                series.append(Series(label, cells))
        totals = [counts.cell(name, q, "total", "all") for q in quarters]
        out.append(
            {
                "title": words.text("section.chart"),
                "file": "chart-new-persons-by-stakeholder-type",
                "svg": stacked_bars(quarters, totals, series, hidden, words=words),
            }
        )
    if key.lop:
        charts = [
            _age_gender_chart(counts, words, name, key.lop, hidden),
            *(
                _ranking_chart(counts, words, name, key.lop, d, hidden=hidden)
                for d in ("location", "country_of_origin")
            ),
        ]
        out += [chart for chart in charts if chart]
    return out


def _age_gender_chart(
    counts: PublishedCounts, words: ReportWords, name: str, period: str, hidden: str
) -> dict[str, Any] | None:
    """Bars by age band and gender, drawn when some published number of them is above 0."""
    categories = counts.categories.get((name, CROSS_TAB), [])
    pairs = [c.partition(CROSS_TAB_SEPARATOR)[::2] for c in categories]
    ages = [
        a for a in dict.fromkeys(a for a, _ in pairs) if a not in (indicator.NOT_RECORDED, indicator.UNKNOWN)
    ]
    genders = [g for g in dict.fromkeys(g for _, g in pairs) if g != indicator.NOT_RECORDED]
    series = []
    for gender in genders:
        cells = [counts.cell(name, period, CROSS_TAB, f"{age}{CROSS_TAB_SEPARATOR}{gender}") for age in ages]
        if label := _series_label(cells, words, words.category("gender", gender)):
            series.append(Series(label, cells))
    if not series:
        return None
    title = words.text("chart.age_gender", period=words.period(period))
    return {
        "title": title,
        "file": "chart-persons-by-age-band-and-gender",
        "svg": grouped_bars([words.category("age_band", a) for a in ages], series, hidden, words=words),
    }


def _series_label(cells: list[Cell], words: ReportWords, label: str) -> str:
    """The legend label of a chart's series: its category's, or "<category>: hidden" when none of its
    cells is a published number above 0 but some are hidden (a chart never drops a hidden category);
    empty when the category has nothing to draw (only zeros)."""
    if any(c.is_number and c.text != "0" for c in cells):
        return label
    if any(c.text and not c.is_number for c in cells):
        return words.hidden_category(label)
    return ""


RANKED = 10  # bars in a ranking chart


def _ranking_chart(
    counts: PublishedCounts, words: ReportWords, name: str, period: str, dimension: str, *, hidden: str
) -> dict[str, Any] | None:
    """The categories with the largest published counts, then the hidden ones (code order)."""
    categories = [
        c
        for c in counts.categories.get((name, dimension), [])
        if c not in (indicator.UNKNOWN, indicator.NOT_RECORDED)
    ]
    cells = [(c, counts.cell(name, period, dimension, c)) for c in categories]
    numbers = sorted(
        ((c, cell) for c, cell in cells if cell.is_number and cell.text != "0"), key=lambda x: -int(x[1].text)
    )
    masked = [(c, cell) for c, cell in cells if cell.text and not cell.is_number]
    if not numbers and not masked:
        return None
    chosen = (numbers + masked)[:RANKED]
    left = len(numbers) + len(masked) - len(chosen)
    bars = [Bar(words.category(dimension, c), cell) for c, cell in chosen]
    more = words.text("chart.more", n=left) if left else ""
    title = words.text(f"chart.{dimension}", period=words.period(period))
    file = "chart-persons-by-" + dimension.replace("_", "-")
    return {"title": title, "file": file, "svg": horizontal_bars(bars, hidden, more, words=words)}


def _iptt(edition: Edition) -> list[dict[str, Any]]:
    """The IPTT as the page shows it: one table per indicator, a row per target, then the
    cumulative rows; every text in the report language."""
    words = edition.words
    tables: dict[str, list[dict[str, Any]]] = {}
    for row in edition.performance.rows:
        if row.dimension == "total":
            breakdown = words.dimension("total")
        else:
            breakdown = f"{words.dimension(row.dimension)}: {iptt.category_words(row, words)}"
        if row.target is None:
            target = words.number(str(row.full_target)) if row.full_target is not None else ""
        elif row.full_target is not None:
            target = words.text("iptt.target_to_date", target=row.target, full=row.full_target)
        else:
            target = words.number(str(row.target))
        tables.setdefault(row.indicator, []).append(
            {
                "period": iptt.period_words(row, words),
                "breakdown": breakdown,
                "target": target,
                "actual": _iptt_actual(row.actual, words),
                "hidden": bool(row.actual.text) and not row.actual.is_number,
                "percent": words.percent_text(row.percent),
                "flag": words.text(f"iptt.{row.flag}") if row.flag else "",
                "notes": row.notes,
                "cumulative": row.cumulative,
            }
        )
    return [{"title": words.indicator(name), "rows": rows} for name, rows in tables.items()]


def _iptt_key(edition: Edition, rows: Sequence[iptt.IpttRow] | None = None) -> str:
    """The key beside the IPTT's tables (or ``rows`` of it), with what "not published" means
    where one of its actuals is; none inside."""
    if edition.k is None:
        return ""
    shown = edition.performance.rows if rows is None else rows
    return edition.words.hidden_key(edition.k, not_published=iptt.unpublished(shown))


def _iptt_actual(actual: Cell, words: ReportWords) -> str:
    if not actual.text:
        return words.text("iptt.not_yet")
    return (
        words.text("iptt.not_published") if actual.text == iptt.NOT_PUBLISHED else words.number(actual.text)
    )


def _target_chart(edition: Edition) -> list[dict[str, Any]]:
    """Cumulative actual against the target over the quarters, for the headline total: the
    cumulative quarter targets where every quarter has one, else the LOP target."""
    words = edition.words
    name = indicator.HEADLINE_VARIANT
    mine = [r for r in edition.performance.rows if (r.indicator, r.dimension) == (name, "total")]
    cumulative = [r for r in mine if r.cumulative]
    if not cumulative:
        return []
    quarters = [r.period.removeprefix(iptt.CUMULATIVE_PREFIX) for r in cumulative]
    by_quarter = {r.period: r.target for r in mine if not r.cumulative and r.period in quarters}
    steps = [by_quarter.get(quarter) for quarter in quarters]
    if all(step is not None for step in steps):
        targets = [Cell(str(sum(s or 0 for s in steps[: n + 1]))) for n in range(len(steps))]
    else:
        targets = [Cell(str(row.target)) for row in cumulative]
    series = [
        Series(
            words.text("chart.actual_cumulative"),
            [Cell(iptt.actual_text(r.actual, words)) for r in cumulative],
        ),
        Series(words.text("chart.target_cumulative"), targets),
    ]
    title = words.text("chart.cumulative", indicator=words.indicator(name))
    svg = trend(quarters, series, words.text("chart.hidden"), words=words)
    file = "chart-cumulative-persons-against-target"
    return [{"title": title, "file": file, "svg": svg, "key": _iptt_key(edition, cumulative)}]


def _data_quality(edition: Edition) -> dict[str, list[FindingGroup]]:
    """Each rule's findings, one line per field and detail with its count and the first of its
    submission ids (``LIST_LIMIT`` a rule; the rest are in data_quality.csv)."""
    findings = edition.findings
    assert findings is not None
    text = findings.astype(object).fillna("")  # every value is text; a missing one is ""
    ids = text["submission_id"].to_numpy(dtype=object)
    rules, names = pd.factorize(text["rule"])  # each in the order it first occurs
    fields, _ = pd.factorize(text["field"])
    details, _ = pd.factorize(text["detail"])
    pairs = fields.astype(np.int64) * (int(details.max(initial=0)) + 1) + details
    groups = {}
    # Arrays, not a groupby and a loop over every id: for 789,965 findings 0.62 to 0.90 s CPU,
    # 1.35 to 1.76 s that way.
    for code, rule in enumerate(names):
        rows = np.flatnonzero(rules == code)
        _, first, inverse, counts = np.unique(
            pairs[rows], return_index=True, return_inverse=True, return_counts=True
        )
        by_pair = np.argsort(inverse.reshape(-1), kind="stable")  # each pair's rows, in order
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        lines, room = [], LIST_LIMIT
        for pair in np.argsort(first, kind="stable").tolist():  # pairs in the order they first occur
            if room == 0:
                break
            taken = rows[by_pair[starts[pair] : starts[pair] + min(room, counts[pair])]]
            row = rows[first[pair]]
            line_ids = [str(i) for i in ids[taken]]
            field, detail = str(text["field"].iat[row]), str(text["detail"].iat[row])
            lines.append(FindingLine(field, detail, int(counts[pair]), line_ids))
            room -= len(line_ids)
        shown = [i for line in lines for i in line.ids]
        listed = [str(i) for i in ids[rows][pd.Series(ids[rows]).isin(shown).to_numpy()]]
        title = edition.words.text(f"dq.{rule}")
        groups[rule] = FindingGroup(str(rule), title, len(rows), lines, listed, len(rows) - len(listed))
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
            "cells": words.percent(100 * row.hidden_cells / row.cells) if row.cells else "–",
            "persons": words.percent(100 * row.hidden_persons / row.persons) if row.persons else "–",
        }
        for row in records(loss, LossRow)
    ]
    held = [
        {"period": words.period(h.period), "changed": h.changed, "reason": h.reason} for h in edition.held
    ]
    return {"loss": rows, "held": held}


def _as_reported(edition: Edition) -> dict[str, Any]:
    """The internal "As reported" section: each indicator's released quarters, released against
    today's event-basis total and what separates them, and the released persons who no longer
    count, by quarter and reason."""
    reconciled = edition.as_reported
    assert reconciled is not None
    words = edition.words
    rows = [
        {"indicator": words.indicator(row.indicator), "period": words.period(row.period)}
        | {column: getattr(row, column) for column in AS_REPORTED_NUMBERS}
        for row in records(reconciled.totals, AsReportedTotal)
    ]
    removed = []
    grouped = reconciled.removed.groupby(["indicator", "period", "reason"], sort=False)["submission_id"]
    for (name, period, reason), ids in grouped:
        removed.append(
            {
                "indicator": words.indicator(str(name)),
                "period": words.period(str(period)),
                "reason": reason,
                "persons": len(ids),
                "submissions": ", ".join(map(str, ids)),
            }
        )
    waiting = words.text("as_reported.waiting", n=reconciled.waiting) if reconciled.waiting else ""
    return {"rows": rows, "removed": removed, "waiting": waiting, "columns": AS_REPORTED_NUMBERS}


AS_REPORTED_NUMBERS = ("released", "event_basis", "late_added", "reported_late", "removed", "edited")


def _restatement_groups(edition: Edition) -> list[dict[str, Any]]:
    """The restatements by reason, then by period in time order, each with its rows (folded)."""
    words = edition.words
    groups: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in records(edition.restatements, RestatementRow):
        groups.setdefault(row.reason, {}).setdefault(row.period, []).append(
            {
                "indicator": words.indicator(row.indicator),
                "dimension": words.dimension(row.dimension),
                "category": words.category(row.dimension, row.category),
                "old": row.old,
                "new": row.new,
            }
        )
    return [
        {
            "reason": reason,
            "periods": [
                {"period": words.period(p), "rows": by_period[p]}
                for p in sorted(by_period, key=_period_order)
            ],
        }
        for reason, by_period in groups.items()
    ]


def _period_order(label: str) -> tuple[str, int, str]:
    """FY2025 Q1 .. Q4, then FY2025, then FY2026 Q1 ...; LOP last."""
    year, _, quarter = label.partition(" ")
    return ("~" if year == "LOP" else year, 0 if quarter else 1, quarter)
