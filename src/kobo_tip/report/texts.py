"""Words of the report in the report language: the ``[report]`` table of its translation file.

Every heading, explanation, column title and sheet name is a ``[report]`` text of
``translations/<code>.toml``; ``en.toml`` holds the English ones, used for any text a translation
lacks (``kobo_tip.labels``), so a report language works whatever part of the form is translated.
Choice and dimension labels come from the same files (the form's own translations).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from kobo_tip import indicator
from kobo_tip.config import Location
from kobo_tip.labels import Labels
from kobo_tip.periods import FISCAL_YEAR, LOP, QUARTER, LabelParts, label_parts

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


@dataclass(frozen=True)
class ReportWords:
    """Texts and labels in the report language."""

    labels: Labels
    locations: dict[str, str]  # location code -> name

    @classmethod
    def for_language(cls, labels: Labels, locations: tuple[Location, ...]) -> ReportWords:
        # A COD-AB locations file names each place in the report language where it has a column for it.
        return cls(labels, {location.code: location.name_in(labels.language.code) for location in locations})

    def text(self, key: str, **values: object) -> str:
        """A report text: the translation's ``[report]`` entry (English where it has none), its
        whole-number values written as the report language writes numbers."""
        template = self.labels.texts[f"report.{key}"]
        if not values:
            return template
        shown = {
            name: self.number(str(value)) if isinstance(value, int) and not isinstance(value, bool) else value
            for name, value in values.items()
        }
        return template.format(**shown)

    @functools.cached_property
    def locale(self) -> Locale:
        """The report language's CLDR locale (English when Babel does not know the language)."""
        code = self.labels.language.code.replace("-", "_")
        for candidate in (code, code.split("_")[0]):
            try:
                return Locale.parse(candidate)
            except (UnknownLocaleError, ValueError):
                continue
        return Locale.parse("en")

    @property
    def right_to_left(self) -> bool:
        return self.locale.character_order == "right-to-left"

    def number(self, text: str) -> str:
        """A published cell's text for reading: a count with the locale's digit grouping, ``<k``
        with its ``k`` so written; anything else (``x``, a dash) as it is."""
        if text.isdigit():
            return format_decimal(int(text), locale=self.locale)
        if text.startswith("<") and text[1:].isdigit():
            return "<" + format_decimal(int(text[1:]), locale=self.locale)
        return text

    def digits(self, value: int) -> str:
        """A year or a quarter's number in the locale's digits, without grouping ("2026", not "2,026").

        Like every number of the report, it takes Babel's ``latn`` digits: CLDR's default numbering
        system for Arabic (``ar``) and Thai (``th``) alike, and the only digits Babel writes dates in,
        so one page never mixes two digit systems."""
        return format_decimal(value, "0", locale=self.locale)

    def period(self, label: str) -> str:
        """A period label (``FY2026 Q1``, ``FY2026``, ``2026 Q1``, ``2026``, ``LOP``: codes, kept in
        counts.csv) as the report language writes it; any other text as it is."""
        parts = label_parts(label)
        if parts is None:
            return label
        if parts.kind == LOP:
            return self.text("period.lop")
        if parts.kind == FISCAL_YEAR:
            return self._year(parts)
        kind = "fiscal" if parts.fiscal else "calendar"
        return self.text(
            f"period.{kind}_quarter", year=self.digits(parts.year), quarter=self.digits(parts.quarter)
        )

    def period_group(self, label: str) -> tuple[str, str]:
        """(the header over a period's column, its own header under it): a quarter's year and its
        "Q1" ("Exercice 2026" and "T1" in French); a fiscal year or the LOP itself and nothing."""
        parts = label_parts(label)
        if parts is None or parts.kind != QUARTER:
            return self.period(label), ""
        return self._year(parts), self.text("period.quarter", quarter=self.digits(parts.quarter))

    def _year(self, parts: LabelParts) -> str:
        kind = "fiscal" if parts.fiscal else "calendar"
        return self.text(f"period.{kind}_year", year=self.digits(parts.year))

    def percent(self, value: float) -> str:
        """``value`` percent (``97.5`` -> "97.5%", "97,5 %" in French) as the locale writes it."""
        return format_percent(value / 100, "#,##0.#%", locale=self.locale)

    def percent_text(self, text: str) -> str:
        """A percentage held as text ("97.5"): formatted; "n/a" or empty as it is."""
        try:
            return self.percent(float(text))
        except ValueError:
            return text

    def date(self, day: dt.date) -> str:
        """A date in the locale's medium form ("31 Mar 2025", "31 mars 2025")."""
        return format_date(day, "medium", locale=self.locale)

    def indicator(self, name: str) -> str:
        return self.labels.texts.get(f"report.indicator.{name}", name)

    def dimension(self, name: str) -> str:
        return self.labels.texts.get(f"report.dimension.{name}", name)

    def hidden_key(self, k: int, *, not_published: bool = False) -> str:
        """The line beside every table and chart of an outside report: what ``<k`` and ``x`` mean;
        and, ``not_published``, what a figure shown as not published means (the IPTT's)."""
        key = self.labels.texts["report.key.hidden"].format(k=k, k_minus_1=k - 1)
        if not_published:
            key += " " + self.labels.texts["report.key.not_published"].format(k=k)
        return key

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
