"""Property tests of the counting engine over random submission sets (contract section 4 consequences)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kobo_tip import indicator as ind
from kobo_tip.cases import build_cases
from kobo_tip.config import Settings, load_settings
from kobo_tip.counting import CountResult, count_indicator
from test_counting import AS_OF, stored

PEOPLE = ["Maria", "Jo", "Li", "Al", "Ko"]  # UIC parts differ: five possible persons per gender
STAKEHOLDERS = [
    ("bc_maesot", "border_control"),
    ("ngo_hope", "ngo_partner"),
    ("ngo_migrant", "ngo_partner"),
    ("li_tak", "labour_inspector"),
    ("not_listed", "other"),
]
FIRST_DAY = dt.date(2025, 9, 15)  # a little before the project start
LAST_DAY = dt.date(2027, 1, 15)  # a little after AS_OF
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def submission(draw: st.DrawFn, sid: int) -> SimpleNamespace:
    stakeholder, kind = draw(st.sampled_from(STAKEHOLDERS))
    day = draw(st.dates(FIRST_DAY, LAST_DAY))
    return stored(
        str(sid),
        day.isoformat(),
        action=draw(st.sampled_from(["identified", "referred", "identified referred", ""])),
        stakeholder=stakeholder,
        stakeholder_type=kind,
        category=draw(st.sampled_from(["trafficking_presumed", "gbv", "exploitation_other gbv", ""])),
        consent=draw(st.sampled_from(["yes", "yes", "yes", "no"])),
        given=draw(st.sampled_from(PEOPLE)),
        gender=draw(st.sampled_from(["female", "male", "unknown"])),
        age=draw(st.sampled_from(["3", "15", "30", "70", None, "x"])),
        origin=draw(st.sampled_from(["mm", "kh", "stateless", None])),
        admin1=draw(st.sampled_from(["TH-63", "TH-74", None])),
        services=draw(st.sampled_from([None, "shelter", "shelter medical"])),
        status=draw(st.sampled_from(["unreviewed", "approved", "on_hold", "rejected"])),
        submitted=f"{day.isoformat()}T{draw(st.integers(0, 23)):02d}:00:00",
        deleted=draw(st.integers(0, 9)) == 0,
    )


@st.composite
def submission_sets(draw: st.DrawFn, max_size: int = 14) -> list[SimpleNamespace]:
    size = draw(st.integers(0, max_size))
    return [draw(submission(sid)) for sid in range(1, size + 1)]


@pytest.fixture
def project(example_project: Path) -> Settings:
    return load_settings(example_project)


def run(rows: list[SimpleNamespace], project: Settings) -> CountResult:
    return count_indicator(build_cases(rows, project), project, AS_OF)


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@FUZZ
@given(submission_sets())
def test_tables_add_up(project, rows):
    counts = run(rows, project).counts
    total = counts[counts.dimension == "total"].set_index(["indicator", "period"]).value
    additive = counts[counts.additive & (counts.dimension != "total")]
    sums = additive.groupby(["indicator", "period", "dimension"], sort=False).value.sum()
    for (variant, period, dimension), value in sums.items():
        assert value == total[(variant, period)], (variant, period, dimension)
    # Quarters sum to their fiscal year and to the LOP, for every category of every dimension.
    cells = counts.set_index(["indicator", "dimension", "category", "period_kind", "period"]).value
    quarters = counts[counts.period_kind == "quarter"].copy()
    quarters["fiscal_year"] = quarters.period.str.split(" ").str[0]
    by_year = quarters.groupby(["indicator", "dimension", "category", "fiscal_year"], sort=False).value.sum()
    for (variant, dimension, category, year), value in by_year.items():
        assert cells[(variant, dimension, category, "fiscal_year", year)] == value
    by_lop = quarters.groupby(["indicator", "dimension", "category"], sort=False).value.sum()
    for (variant, dimension, category), value in by_lop.items():
        assert cells[(variant, dimension, category, "lop", "LOP")] == value
    # The headline lies between the larger variant and their sum.
    lop = {variant: total[(variant, "LOP")] for variant in ind.VARIANTS}
    assert max(lop["identified"], lop["referred"]) <= lop["identified_or_referred"]
    assert lop["identified_or_referred"] <= lop["identified"] + lop["referred"]


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@FUZZ
@given(submission_sets(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_submission_order(project, rows, random):
    shuffled = list(rows)
    random.shuffle(shuffled)
    first, second = run(rows, project), run(shuffled, project)
    pd.testing.assert_frame_equal(first.counts, second.counts)
    pd.testing.assert_frame_equal(first.findings, second.findings)


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@FUZZ
@given(submission_sets(max_size=10), st.data())
def test_adding_a_submission_never_lowers_the_lop(project, rows, data):
    extra = data.draw(submission(len(rows) + 1))
    before = lop_totals(run(rows, project))
    after = lop_totals(run([*rows, extra], project))
    for variant in ind.VARIANTS:
        assert before[variant] <= after[variant] <= before[variant] + 1  # one event: one person at most


def lop_totals(result: CountResult) -> dict[str, int]:
    counts = result.counts
    lop = counts[(counts.period == "LOP") & (counts.dimension == "total")]
    return dict(zip(lop.indicator, lop.value, strict=True))
