"""Small-cell and complementary suppression on hand-made tables (spec section 6)."""

from __future__ import annotations

import pandas as pd
import pytest

from counts_factory import Person, counts_table
from kobo_tip import privacy
from kobo_tip.errors import UsageError

BOTH = frozenset({"identified", "referred"})


def cell(table: pd.DataFrame, period: str, dimension: str, category: str, name: str = "identified") -> str:
    row = table[
        (table["indicator"] == name)
        & (table["period"] == period)
        & (table["dimension"] == dimension)
        & (table["category"] == category)
    ]
    assert len(row) == 1
    return str(row["value"].iloc[0])


def people(count: int, quarter: int = 0, **attributes: object) -> list[Person]:
    return [Person(quarter, BOTH, **attributes) for _ in range(count)]  # type: ignore[arg-type]


def test_small_cell_is_published_as_less_than_k_and_zero_stays_zero() -> None:
    counts = counts_table(people(3, stakeholder_type="border_control") + people(20), quarters=1)
    published = privacy.publish(counts, "donor", 5)
    assert cell(published, "FY2026 Q1", "stakeholder_type", "border_control") == "<5"
    assert cell(published, "FY2026 Q1", "stakeholder_type", "labour_inspector") == "0"
    assert cell(published, "FY2026 Q1", "total", "all") == "23"


def test_lone_small_cell_takes_the_next_smallest_category_with_it() -> None:
    counts = counts_table(
        people(3, stakeholder_type="border_control")
        + people(7, stakeholder_type="private_sector")
        + people(30, stakeholder_type="ngo_partner"),
        quarters=1,
    )
    published = privacy.publish(counts, "donor", 5)
    assert cell(published, "FY2026 Q1", "stakeholder_type", "border_control") == "<5"
    assert cell(published, "FY2026 Q1", "stakeholder_type", "private_sector") == "x"
    assert cell(published, "FY2026 Q1", "stakeholder_type", "ngo_partner") == "30"
    assert cell(published, "FY2026 Q1", "total", "all") == "40"


def test_a_relation_with_no_other_non_zero_part_hides_its_margin() -> None:
    # ngo_partner (6) is hidden to protect border_control (3). With one quarter, that quarter is
    # the only part of its fiscal year, so the fiscal year's ngo_partner cell, then LOP's, go too.
    counts = counts_table(people(3, stakeholder_type="border_control") + people(6), quarters=1)
    published = privacy.publish(counts, "donor", 5)
    for period in ("FY2026 Q1", "FY2026", "LOP"):
        assert cell(published, period, "stakeholder_type", "border_control") == "<5"
        assert cell(published, period, "stakeholder_type", "ngo_partner") == "x"
        assert cell(published, period, "total", "all") == "9"


def test_hidden_quarter_is_protected_across_the_fiscal_year() -> None:
    # Q1 small, Q2 large: Q1 alone hidden would be FY - Q2; so Q2 or the FY must be hidden too.
    counts = counts_table(people(2, quarter=0) + people(40, quarter=1), quarters=2)
    published = privacy.publish(counts, "donor", 5)
    quarter_one = cell(published, "FY2026 Q1", "total", "all")
    quarter_two = cell(published, "FY2026 Q2", "total", "all")
    year = cell(published, "FY2026", "total", "all")
    assert quarter_one == "<5"
    assert [quarter_two, year].count("x") >= 1


def test_cross_tab_cell_is_protected_against_both_margins() -> None:
    counts = counts_table(
        people(2, age_band="0-4", gender="male") + people(30, age_band="18-59", gender="female"),
        quarters=1,
    )
    published = privacy.publish(counts, "donor", 5)
    row_cells = [cell(published, "FY2026 Q1", "age_band_x_gender", f"0-4|{g}") for g in ("female", "male")]
    assert row_cells[1] == "<5"
    # the 0-4 row: its only non-zero part is hidden, so its margin (age band 0-4) is hidden too
    assert cell(published, "FY2026 Q1", "age_band", "0-4") == "<5"
    assert cell(published, "FY2026 Q1", "gender", "male") == "<5"
    assert cell(published, "FY2026 Q1", "age_band_x_gender", "18-59|female") == "x"


def test_multi_response_cells_are_protected_across_periods_but_not_against_the_total() -> None:
    counts = counts_table(
        people(3, person_categories=frozenset({"gbv"}))
        + people(8, quarter=1, person_categories=frozenset({"gbv"}))
        + people(40, person_categories=frozenset({"trafficking_presumed"})),
        quarters=2,
    )
    published = privacy.publish(counts, "donor", 5)
    assert cell(published, "FY2026 Q1", "person_category", "gbv") == "<5"
    # Q1 + Q2 = FY2026 for gbv too (a person counts in one quarter): Q2 hides with Q1
    assert cell(published, "FY2026 Q2", "person_category", "gbv") == "x"
    assert cell(published, "FY2026", "person_category", "gbv") == "11"
    # categories of a multi-response breakdown do not sum to the total: no hiding there
    assert cell(published, "FY2026 Q1", "person_category", "trafficking_presumed") == "40"
    assert cell(published, "FY2026 Q1", "total", "all") == "43"


def test_internal_keeps_every_value_as_text() -> None:
    counts = counts_table(people(1) + people(2, quarter=1), quarters=2)
    published = privacy.publish(counts, "internal", None)
    assert published["value"].tolist() == [str(v) for v in counts["value"]]
    assert list(published.columns) == list(counts.columns)


def test_default_threshold_comes_from_the_audience() -> None:
    counts = counts_table(people(7), quarters=1)
    assert cell(privacy.publish(counts, "donor", None), "FY2026 Q1", "total", "all") == "7"
    assert cell(privacy.publish(counts, "public", None), "FY2026 Q1", "total", "all") == "<10"


def test_unknown_audience_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="audience 'press'"):
        privacy.publish(counts_table([], quarters=1), "press", 5)
