"""Suppression invariants over random, internally consistent counts tables (spec section 6)."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counts_factory import AGE_BANDS, GENDERS, STAKEHOLDER_TYPES, Person, counts_table
from kobo_tip import privacy

ACTIONS = st.sampled_from(
    [frozenset({"identified"}), frozenset({"referred"}), frozenset({"identified", "referred"})]
)
persons_strategy = st.lists(
    st.builds(
        Person,
        quarter=st.integers(0, 5),
        actions=ACTIONS,
        age_band=st.sampled_from(AGE_BANDS),
        gender=st.sampled_from(GENDERS),
        stakeholder_type=st.sampled_from(STAKEHOLDER_TYPES[:4]),  # few types: more cells near k
        consent=st.booleans(),
    ),
    max_size=60,
)
k_strategy = st.sampled_from([2, 3, 5, 10])
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def relations_of(table: pd.DataFrame) -> list[tuple[list[tuple], tuple]]:
    """Every additive relation, derived here from the spec rather than from privacy.py.

    Categories sum to the total in additive dimensions only; every dimension (multi-response
    too: a person counts in one quarter) sums over quarters to fiscal years and to LOP.
    """
    key = ["indicator", "period", "dimension", "category", "additive"]
    relations: dict[tuple, list[tuple]] = defaultdict(list)
    fiscal_year = {}
    periods = table.drop_duplicates("period")
    for quarter in periods[periods["period_kind"] == "quarter"].itertuples():
        year = periods[
            (periods["period_kind"] == "fiscal_year")
            & (periods["period_start"] <= quarter.period_start)
            & (periods["period_end"] >= quarter.period_start)
        ]
        fiscal_year[quarter.period] = year["period"].iloc[0]
    for fy in periods[periods["period_kind"] == "fiscal_year"]["period"]:
        fiscal_year[fy] = "LOP"
    for name, period, dimension, category, additive in table[key].itertuples(index=False):
        cell = (name, period, dimension, category)
        if additive and dimension == "age_band_x_gender":
            age, gender = category.split("|")
            relations[((name, period, "age_band", age), dimension)].append(cell)
            relations[((name, period, "gender", gender), dimension)].append(cell)
        elif additive and dimension != "total":
            relations[((name, period, "total", "all"), dimension)].append(cell)
        if period in fiscal_year:
            relations[((name, fiscal_year[period], dimension, category), "time")].append(cell)
    return [(parts, margin) for (margin, _), parts in relations.items()]


def as_cells(table: pd.DataFrame) -> dict[tuple, object]:
    return dict(
        zip(
            zip(table["indicator"], table["period"], table["dimension"], table["category"], strict=True),
            table["value"],
            strict=True,
        )
    )


@PROPERTY_SETTINGS
@given(persons=persons_strategy, k=k_strategy, audience=st.sampled_from(["donor", "public"]))
def test_suppression_invariants(persons: list[Person], k: int, audience: str) -> None:
    counts = counts_table(persons, quarters=6)
    published = privacy.publish(counts, audience, k)
    exact, shown = as_cells(counts), as_cells(published)

    for cell, text in shown.items():
        if text == f"<{k}":
            assert 0 < exact[cell] < k
        elif text == "x":
            assert exact[cell] > 0, "a zero is never hidden"
        else:
            assert int(text) == exact[cell]
            assert int(text) == 0 or int(text) >= k, f"{cell} published {text} below k={k}"

    for parts, margin in relations_of(counts):
        members = [*parts, margin]
        hidden = [m for m in members if not shown[m].isdigit()]
        assert len(hidden) != 1, f"only {hidden} hidden in the relation of {margin}"
        if shown[margin].isdigit():
            visible_sum = sum(int(shown[p]) for p in parts if shown[p].isdigit())
            assert visible_sum <= int(shown[margin])
            if not hidden:
                assert visible_sum == int(shown[margin])


@PROPERTY_SETTINGS
@given(persons=persons_strategy, k=k_strategy)
def test_internal_is_unchanged_and_publishing_is_deterministic(persons: list[Person], k: int) -> None:
    counts = counts_table(persons, quarters=5)
    internal = privacy.publish(counts, "internal", k)
    assert internal["value"].tolist() == [str(v) for v in counts["value"]]
    assert internal.drop(columns="value").equals(counts.drop(columns="value"))
    first, second = privacy.publish(counts, "donor", k), privacy.publish(counts, "donor", k)
    assert first.equals(second)
