"""Words of the report: labels of the report language, with English defaults for the prose.

Choice and dimension labels come from ``kobo_tip.labels`` (the form's own translations); the
headings and explanations below are used when the translation file has no ``[report]`` text
under the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kobo_tip import indicator
from kobo_tip.config import Location
from kobo_tip.labels import Labels

# Which choice list labels each dimension's categories.
DIMENSION_LISTS: Final[dict[str, str]] = {
    "gender": "gender",
    "stakeholder_type": "stakeholder_type",
    "country_of_origin": "country",
    "person_category": "person_category",
    "exploitation_type": "exploitation_type",
    "gbv_type": "gbv_type",
    "services": "service",
}
CATEGORY_WORDS: Final = ("all", indicator.UNKNOWN, indicator.NOT_RECORDED, indicator.NOT_ASKED, "yes", "no")

ENGLISH: Final[dict[str, str]] = {
    "title": "Victims of trafficking, exploitation and gender-based violence identified or referred",
    "audience.internal": "Internal report (M&E team only: not for sharing)",
    "audience.donor": "Report for donors and partners",
    "audience.public": "Public report",
    "audience.partner": "Partner report (this organisation's stakeholders' records only)",
    "section.definition": "What is counted",
    "definition": (
        "The number of people identified as victims of trafficking, exploitation or gender-based violence, "
        "or referred to services, by stakeholders the project trained or supports. Presumed victims count."
    ),
    "rule.new_only": (
        "Each person is counted once, in the quarter of their first eligible identification or referral, and "
        "never again: quarters add up to the fiscal year and to the life-of-project (LOP) total."
    ),
    "rule.person_key": (
        "The same person reported by several stakeholders is recognised by a code made from parts of their "
        "and their mother's names, birth year and gender; no name is stored."
    ),
    "rule.eligibility": (
        "An event counts when it was made by a stakeholder on the project roster, falls within the project "
        "period, is not rejected on review, and concerns a person category the project counts."
    ),
    "rule.attributes": (
        "Age, gender, location and the other breakdowns are those recorded at the person's first "
        "counted event."
    ),
    "rule.variants": (
        "Three figures are given: identified or referred (the headline), identified, and referred; a person "
        "both identified and referred counts once in the headline."
    ),
    "rule.suppression": (
        "Small numbers are hidden to protect the people counted: '<{k}' marks a number from 0 to "
        "{k_minus_1}, and 'x' a number of {k} or more hidden so that the small ones cannot be worked out. "
        "What is promised: a reader who solves every sum in this report (categories against totals, "
        "quarters against fiscal years and the life of project, the three indicators against each other) "
        "with a computer is still left with at least {need} possible values for every hidden small number."
    ),
    "rule.intruder": (
        "That reader is assumed to hold this report, every earlier edition of it, and every report "
        "published with more numbers hidden; each edition is checked against all of them before it is "
        "released, and none is released that cannot be checked."
    ),
    "rule.revisions": (
        "Numbers of a quarter already published change only when late or corrected records move them "
        "by 0 or by at least {k}, or when the changed number is hidden in the new edition; a smaller "
        "revision is held back until it can be published under this rule."
    ),
    "rule.as_reported": (
        "Quarters as reported: late cases count in the quarter they were reported. A quarter once "
        "published never changes; fiscal-year and LOP totals are the sums of the quarters as reported."
    ),
    "rule.event_date": (
        "Quarters by event date: each person counts in the quarter of their first identification or "
        "referral, so late or corrected records can change a quarter already published."
    ),
    "rule.running_quarter": (
        "Only quarters that have ended are shown; the fiscal-year and LOP totals cover those quarters only."
    ),
    "section.headline": "Headline numbers",
    "headline.quarter": "Last ended quarter",
    "headline.fiscal_year": "Fiscal year to date",
    "headline.fiscal_year_ended": "Fiscal year",
    "headline.lop": "Life of project",
    "headline.running": "Current quarter to date",
    "headline.none": "no quarter has ended yet",
    "section.chart": "New persons per quarter by stakeholder type",
    "section.charts": "At a glance",
    "section.iptt": "Performance against targets",
    "iptt.about": (
        "Target, actual and achievement per period; a fiscal year or the life of the project still "
        "running is compared with the targets of its quarters ended so far. Achievement more than "
        "{margin}% off target is flagged. Cumulative rows show the persons counted from the start "
        "against the life-of-project target."
    ),
    "iptt.target_to_date": "{target} to date (of {full})",
    "iptt.above": "above target",
    "iptt.below": "below target",
    "iptt.not_yet": "not yet",
    "iptt.not_published": "not published",
    "iptt.cumulative": "cumulative",
    "column.target": "Target",
    "column.actual": "Actual",
    "column.percent_achieved": "% achieved",
    "column.flag": "Flag",
    "column.notes": "Notes",
    "chart.cumulative": "Persons counted since the start against the target, {indicator}",
    "chart.actual_cumulative": "Counted since the start",
    "chart.target_cumulative": "Target",
    "summary.none": "No quarter of the project has ended yet.",
    "summary.quarter": "In {quarter}, the last ended quarter, {value} new persons were counted.",
    "summary.hidden": "a number hidden to protect small counts",
    "summary.up": "That is {n} more than in {previous} ({value}).",
    "summary.down": "That is {n} fewer than in {previous} ({value}).",
    "summary.same": "That is as many as in {previous}.",
    "summary.target": "{period}: {value} against a target of {target} ({percent}%).",
    "summary.target_to_date": (
        "{period} so far: {value} against the {target} planned through {quarter} ({percent}%; {full} in all)."
    ),
    "chart.hidden": "hidden (small numbers)",
    "chart.trend": "New persons per quarter, the three indicators",
    "chart.age_gender": "Age band by gender, {period}",
    "chart.location": "Locations with the most persons, {period}",
    "chart.country_of_origin": "Countries of origin with the most persons, {period}",
    "chart.more": "and {n} more",
    "column.fiscal_year_total": "Total",
    "cross_tab.not_recorded": "Not recorded (no consent to record personal details): {n}",
    "folded.location": "{n} more locations with no count shown",
    "folded.country_of_origin": "{n} more countries with no count shown",
    "stale": (
        "These numbers are from the last sync, {days} days ago ({date}): newer submissions are not in "
        "them yet."
    ),
    "revised": (
        "{n} figure(s) published in an earlier edition changed in this one (late or corrected records): "
        "see the list of revisions in restatements.csv."
    ),
    "restatements.cells": "cells changed",
    "restatements.rows": "Every changed cell, with its old and new value, is in restatements.csv.",
    "chart.empty": "No quarter to show yet.",
    "section.tables": "Breakdowns",
    "section.cross_tab": "Age band by gender",
    "not_additive": "Not additive: a person counts once in every category selected, so categories do not sum "
    "to the total.",
    "column.category": "Category",
    "section.data_quality": "Data quality",
    "dq.excluded": "Submissions not counted, by the first rule they failed",
    "dq.findings": "Findings",
    "dq.rule": "Rule",
    "dq.count": "Submissions",
    "dq.ids": "Submission ids",
    "dq.more": "and {n} more (see data_quality.csv)",
    "dq.none": "No data-quality findings.",
    "dq.deleted": "Deleted on the server",
    "dq.rejected": "Rejected on review",
    "dq.not_approved": "Not approved yet ([indicator] require_approved is on)",
    "dq.date_missing": "No readable event date",
    "dq.date_out_of_range": "Event date outside the project period",
    "dq.date_in_future": "Event date after the reporting date",
    "dq.action_missing": "Neither identified nor referred",
    "dq.stakeholder_not_on_roster": "Stakeholder not on the roster",
    "dq.event_before_training": "Event before the stakeholder was trained",
    "dq.category_not_counted": "No person category the project counts",
    "dq.possible_duplicate": "Possible duplicates (review; add reviewed pairs to the merges file)",
    "dq.not_linkable": "Records that cannot be linked to other reports of the same person",
    "dq.malformed": "Values that could not be read",
    "dq.field": "Field",
    "dq.detail": "Detail",
    "left_out.quarters": (
        "Shown by fiscal year and for the life of the project only: by quarter, the small numbers of "
        "this breakdown could not be protected."
    ),
    "left_out.all": "Not published in this edition: its small numbers could not be protected.",
    "section.protection": "Small-cell protection of the outside reports",
    "protection.about": (
        "Share of the cells, and of the persons they count, that suppression hides in each outside "
        "report (the audit proves that no small number can be worked out, see 'What is counted')."
    ),
    "protection.audience": "Report",
    "protection.cells": "Cells hidden",
    "protection.persons": "Persons in hidden cells",
    "protection.held": "Revisions held back from the outside reports",
    "protection.held_none": "No revision is held back.",
    "section.as_reported": "As reported",
    "as_reported.about": (
        "Outside reports count each quarter as it was first released: a person reported late counts "
        "in the next quarter released, a released person who no longer counts stays where released. "
        "Per released quarter: the value released, today's value by event date, and what separates "
        "them (released = event date - late added + reported late + removed + edited). Every cell is "
        "in as_reported.csv."
    ),
    "as_reported.none": "No quarter has been released outside yet.",
    "as_reported.indicator": "Indicator",
    "as_reported.period": "Quarter",
    "as_reported.released": "Released",
    "as_reported.event_basis": "By event date today",
    "as_reported.late_added": "Late added",
    "as_reported.reported_late": "Reported late here",
    "as_reported.removed": "Removed",
    "as_reported.edited": "Edited",
    "as_reported.removed_title": "Released persons who no longer count (they stay where released)",
    "as_reported.reason": "Reason",
    "as_reported.persons": "Persons",
    "as_reported.submissions": "Index submissions",
    "as_reported.waiting": "{n} person(s) reported late wait for the next quarter released.",
    "protection.changed": "Cells changed",
    "section.restatements": "Restatements since the last report",
    "restatements.none": "No published number changed since the last report.",
    "column.indicator": "Indicator",
    "column.period": "Period",
    "column.dimension": "Breakdown",
    "column.old": "Was",
    "column.new": "Now",
    "column.reason": "Reason",
    "footer.as_of": "Data as of",
    "footer.run_date": "Reporting date",
    "footer.source": "Source",
    "footer.form_versions": "Form version(s)",
    "footer.tool": "Produced by kobo-tip",
    "footer.never_synced": "never synced",
}


@dataclass(frozen=True)
class ReportWords:
    """Texts and labels in the report language."""

    labels: Labels
    locations: dict[str, str]  # location code -> name

    @classmethod
    def for_language(cls, labels: Labels, locations: tuple[Location, ...]) -> ReportWords:
        return cls(labels, {location.code: location.name for location in locations})

    def text(self, key: str, **values: object) -> str:
        """A report text: the translation's ``[report]`` entry, else the English default."""
        template = self.labels.texts.get(f"report.{key}", ENGLISH[key])
        return template.format(**values) if values else template

    def indicator(self, name: str) -> str:
        return self.labels.texts.get(f"report.indicator.{name}", name)

    def dimension(self, name: str) -> str:
        return self.labels.texts.get(f"report.dimension.{name}", name)

    def hidden_key(self, k: int) -> str:
        """The line beside every table and chart of an outside report: what ``<k`` and ``x`` mean."""
        return self.labels.texts["report.key.hidden"].format(k=k, k_minus_1=k - 1)

    def hidden_category(self, label: str) -> str:
        """A chart's legend entry for a category all of whose cells are hidden ("Male: hidden")."""
        return self.labels.texts["report.key.hidden_category"].format(category=label)

    def category(self, dimension: str, category: str) -> str:
        """The label of one category of ``dimension`` (the name itself when nothing better exists)."""
        if dimension == "age_band_x_gender":
            age, _, gender = category.partition("|")
            return f"{self.category('age_band', age)} / {self.category('gender', gender)}"
        if dimension == "location" and category in self.locations:
            return self.locations[category]
        if category in CATEGORY_WORDS and f"report.category.{category}" in self.labels.texts:
            return self.labels.texts[f"report.category.{category}"]
        if dimension == "location":
            return self.labels.country(category)
        list_name = DIMENSION_LISTS.get(dimension)
        return self.labels.choice(list_name, category) if list_name else category
