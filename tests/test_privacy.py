"""Releases for outside audiences on hand-made tables (contract section 6): what is hidden, nested,
held back or released, and proven against the independent intruder of ``attack.py``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attack import attack, exposed, held
from counts_factory import AGE_BANDS, GENDERS, STAKEHOLDER_TYPES, Person, counts_table, quarter_periods
from kobo_tip import indicator, privacy
from kobo_tip.privacy import DisclosureError, Release
from kobo_tip.privacy.relations import scoped, table_relations
from kobo_tip.privacy.suppression import MARGIN, _closed_needs, _growth_needs, _Suppression, need_of
from kobo_tip.privacy.system import IntruderSystem, _relations_of

BOTH = frozenset({"identified", "referred"})
KS = {"donor": 5, "public": 10}
LAYOUT = ["indicator", "period", "period_start", "period_end", "dimension", "category"]


def through(quarters: int) -> str:
    return max(p.end for p in quarter_periods(quarters) if p.kind == "quarter").isoformat()


def people(count: int, quarter: int = 0, **attributes: object) -> list[Person]:
    return [Person(quarter, BOTH, **attributes) for _ in range(count)]  # type: ignore[arg-type]


def mixed(quarters: int = 4) -> list[Person]:
    """A project whose cells run from 0 to well above k."""
    crowd = []
    for quarter in range(quarters):
        crowd += people(30 + quarter, quarter)
        crowd += people(3, quarter, stakeholder_type="border_control", gender="male")
        crowd += people(7, quarter, stakeholder_type="private_sector", age_band="12-17")
        crowd += people(1 + quarter % 2, quarter, consent=False)
    return crowd


def protect(
    counts: pd.DataFrame, quarters: int, history: dict[str, list[Release]] | None = None
) -> privacy.Outcome:
    return privacy.protect(counts, KS, history or {}, through(quarters))


def cell(release: Release, period: str, dimension: str, category: str, name: str = "identified") -> str:
    table = release.table
    row = table[
        (table["indicator"] == name)
        & (table["period"] == period)
        & (table["dimension"] == dimension)
        & (table["category"] == category)
    ]
    assert len(row) == 1
    return str(row["published"].iloc[0])


def saved(release: Release) -> Release:
    """The release as the store hands it back: with a save time."""
    return Release(release.audience, release.k, release.through, release.table, "2026-01-01T00:00:00Z")


def assert_safe(*outcomes: privacy.Outcome) -> None:
    assert_safe_over({}, *outcomes)


def assert_safe_over(history: dict[str, list[Release]], *outcomes: privacy.Outcome) -> None:
    """No small cell narrowed by an intruder holding ``history`` and then ``outcomes``."""
    releases = {a: [*history.get(a, []), *(o.releases[a] for o in outcomes)] for a in KS}
    donor = attack([held(r) for a in KS for r in releases[a]], KS["donor"])
    public = attack([held(r) for r in releases["public"]], KS["public"])
    assert not exposed(donor, KS["donor"]), exposed(donor, KS["donor"])[:3]
    assert not exposed(public, KS["public"]), exposed(public, KS["public"])[:3]


def test_published_text_tells_the_truth_and_small_counts_never_appear() -> None:
    outcome = protect(counts_table(mixed()), 4)
    for audience, k in KS.items():
        table = outcome.releases[audience].table
        for value, text in zip(table["value"], table["published"], strict=True):
            if text.isdigit():
                assert int(text) == value and (value == 0 or value >= k)
            elif text == f"<{k}":
                assert value < k
            else:
                assert text == "x" and value >= k
    donor = outcome.releases["donor"]
    assert cell(donor, "FY2026 Q1", "stakeholder_type", "border_control") == "<5"
    assert cell(donor, "FY2026 Q1", "total", "all") == str(30 + 3 + 7 + 1)
    assert_safe(outcome)


def test_a_cell_hidden_for_the_donor_is_hidden_for_the_public() -> None:
    outcome = protect(counts_table(mixed()), 4)
    donor, public = outcome.releases["donor"].table, outcome.releases["public"].table
    hidden = ~donor["published"].str.isdigit()
    assert hidden.any() and not public.loc[hidden, "published"].str.isdigit().any()
    assert (~public["published"].str.isdigit()).sum() > hidden.sum(), "k = 10 hides more"


persons_strategy = st.lists(
    st.builds(
        Person,
        quarter=st.integers(0, 1),
        actions=st.sampled_from([frozenset({"identified"}), frozenset({"referred"}), BOTH]),
        age_band=st.sampled_from(AGE_BANDS),
        gender=st.sampled_from(GENDERS[:3]),
        stakeholder_type=st.sampled_from(STAKEHOLDER_TYPES[:3]),  # few types: more cells near k
        consent=st.booleans(),
    ),
    min_size=1,
    max_size=80,
)


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(persons=persons_strategy)
def test_any_table_is_released_so_the_intruder_narrows_no_small_cell(persons: list[Person]) -> None:
    assert_safe(protect(counts_table(persons, quarters=2), 2))


def test_an_unchanged_table_is_the_same_release() -> None:
    counts = counts_table(mixed())
    first = protect(counts, 4)
    again = protect(counts, 4, {a: [saved(first.releases[a])] for a in KS})
    for audience in KS:
        assert again.releases[audience].same_cells(first.releases[audience])
    assert again.held == []


def test_a_revision_of_one_person_is_held_back_and_the_quarter_keeps_its_published_values() -> None:
    before = counts_table(mixed())
    first = protect(before, 4)
    late = counts_table([*mixed(), *people(1, 0)])  # one more person, in an ended quarter
    second = protect(late, 4, {a: [saved(first.releases[a])] for a in KS})
    assert [h.period for h in second.held] == ["FY2026 Q1"]
    assert "move by fewer than 10" in second.held[0].reason
    for audience in KS:
        old, new = first.releases[audience], second.releases[audience]
        assert cell(new, "FY2026 Q1", "total", "all") == cell(old, "FY2026 Q1", "total", "all")
        assert new.table["value"].sum() == old.table["value"].sum(), (
            "FY and LOP keep the held quarter's values"
        )
    assert_safe(first, second)


def test_a_revision_of_k_or_more_is_released_and_small_moves_are_hidden() -> None:
    before = counts_table(mixed())
    first = protect(before, 4)
    late = counts_table(
        [*mixed(), *people(12, 1, gender="female"), *people(1, 1, gender="male", age_band="60+")]
    )
    second = protect(late, 4, {a: [saved(first.releases[a])] for a in KS})
    assert second.held == []
    for audience, k in KS.items():
        keys = ["indicator", "period", "dimension", "category"]
        old, new = (o.releases[audience].table[[*keys, "value", "published"]] for o in (first, second))
        both = old.merge(new, on=keys, suffixes=("_old", "_new"))
        quarter = both["period"] == "FY2026 Q2"
        assert (both.loc[quarter, "value_new"] != both.loc[quarter, "value_old"]).any()
        shown = both[both["published_old"].str.isdigit() & both["published_new"].str.isdigit()]
        moved = (shown["published_new"].astype(int) - shown["published_old"].astype(int)).abs()
        assert ((moved == 0) | (moved >= k)).all(), f"{audience}: a shown cell moved by 1..k-1"
    assert_safe(first, second)


def test_a_release_that_an_earlier_one_gave_away_fails_closed() -> None:
    counts = counts_table(mixed())
    first = protect(counts, 4)
    # An earlier donor release (made by hand here, never by kobo-tip) printed a small cell.
    leaked = first.releases["donor"].table.copy()
    small = (leaked["value"] > 0) & (leaked["value"] < 5) & (leaked["dimension"] == "stakeholder_type")
    leaked.loc[small, "published"] = leaked.loc[small, "value"].astype(str)
    history = {"donor": [saved(Release("donor", 5, through(4), leaked))]}
    with pytest.raises(DisclosureError, match=r"cannot be protected|narrowed below"):
        protect(counts, 4, history)


def by_fiscal_year_only(release: Release, dimension: str) -> Release:
    """``release`` with ``dimension`` published by fiscal year and LOP only: its quarters left out,
    its fiscal-year and LOP cells of k or more shown."""
    table = release.table.copy()
    rows = (table["dimension"] == dimension).to_numpy()
    quarter = (table["period_kind"] == "quarter").to_numpy()
    table.loc[rows & quarter, "published"] = privacy.OMITTED
    large = rows & ~quarter & (table["value"] >= release.k).to_numpy()
    table.loc[large, "published"] = table.loc[large, "value"].astype(str)
    return saved(Release(release.audience, release.k, release.through, table))


def test_a_left_out_quarter_is_protected_from_the_difference_of_two_fiscal_years() -> None:
    """A breakdown published by fiscal year and LOP only still has its quarters: the fiscal year
    through Q3 minus the fiscal year through Q2, both shown, is the Q3 cell, left out or not."""
    persons = []
    for quarter, border in enumerate((10, 10, 3)):
        persons += people(30, quarter)
        persons += people(border, quarter, stakeholder_type="border_control")
        persons += people(12, quarter, stakeholder_type="private_sector")
    first = protect(counts_table(persons, 2), 2)
    history = {
        "donor": [by_fiscal_year_only(first.releases["donor"], "stakeholder_type")],
        "public": [saved(first.releases["public"])],
    }
    donor = history["donor"][0]
    assert cell(donor, "FY2026 Q2", "stakeholder_type", "border_control") == privacy.OMITTED
    assert cell(donor, "FY2026", "stakeholder_type", "border_control") == "20"
    assert not exposed(attack([held(r) for a in KS for r in history[a]], KS["donor"]), KS["donor"])
    second = protect(counts_table(persons, 3), 3, history)
    now = second.releases["donor"]
    assert cell(now, "FY2026 Q3", "stakeholder_type", "border_control") == privacy.OMITTED
    assert_safe_over(history, second)


def test_information_loss_counts_hidden_cells_and_the_persons_in_them() -> None:
    outcome = protect(counts_table(mixed()), 4)
    loss = privacy.information_loss(outcome.releases.values()).set_index(["audience", "dimension"])
    donor = outcome.releases["donor"].table
    hidden = ~donor["published"].str.isdigit()
    rows = donor["dimension"] == "stakeholder_type"
    assert loss.loc[("donor", "stakeholder_type"), "cells"] == rows.sum()
    assert loss.loc[("donor", "stakeholder_type"), "hidden_cells"] == (rows & hidden).sum()
    assert (
        loss.loc[("donor", "stakeholder_type"), "hidden_persons"] == donor.loc[rows & hidden, "value"].sum()
    )
    assert loss.loc[("donor", "total"), "hidden_cells"] == 0


def test_the_internal_view_keeps_every_value() -> None:
    counts = counts_table(mixed())
    internal = privacy.internal_view(counts)
    assert internal["value"].tolist() == [str(v) for v in counts["value"]]
    assert dt.date.fromisoformat(through(4)) == dt.date(2026, 9, 30)


# --- programmes: a person seen in several projects ----------------------------------------------

appearances_strategy = st.lists(  # (person, project, the event's quarter, actions, attributes)
    st.tuples(
        st.integers(0, 30),
        st.sampled_from(["a", "b"]),
        st.integers(0, 1),
        st.sampled_from([frozenset({"identified"}), frozenset({"referred"}), BOTH]),
        st.sampled_from(AGE_BANDS[:3]),
        st.sampled_from(GENDERS[:2]),
    ),
    min_size=1,
    max_size=60,
)


def first_events(events: list[tuple], quarters: int) -> pd.DataFrame:
    """The counts of ``events``, each person counted per variant at their earliest event of it."""
    parts = []
    for variant, actions in indicator.VARIANTS.items():
        first: dict[int, tuple] = {}
        for event in sorted(events, key=lambda e: e[2]):
            if event[3] & actions and event[0] not in first:
                first[event[0]] = event
        persons = [Person(e[2], BOTH, age_band=e[4], gender=e[5]) for e in first.values()]
        table = counts_table(persons, quarters)
        parts.append(table[table["indicator"] == variant])
    return pd.concat(parts, ignore_index=True)


@pytest.mark.slow  # many generated examples: 'make test' runs it, 'make test-fast' leaves it out
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=appearances_strategy)
def test_the_programme_relations_hold_wherever_persons_are_seen(events: list[tuple]) -> None:
    """Counted by the rule (each person at their first event, per variant), a programme's cells
    and its projects' meet every relation the audit gives the intruder, the assumed ones included."""
    programme = first_events(events, 2)
    projects = [
        first_events([e for e in events if e[1] == name], 2).assign(
            indicator=lambda t, name=name: t["indicator"].map(lambda n: scoped(name, n))
        )
        for name in ("a", "b")
    ]
    joint = pd.concat([programme, *projects], ignore_index=True).assign(published="x")
    system = IntruderSystem()
    variables = system.variables_of(joint, through(2))
    system.add_relations(joint, variables)
    a, equal, rhs = system.matrix()
    truth = pd.Series(system.truth).to_numpy(dtype=float)
    lhs = a @ truth
    assert ((lhs <= rhs + 1e-9) & (~equal | (abs(lhs - rhs) < 1e-9))).all()
    alone = IntruderSystem()
    for table in (programme, *projects):
        alone.add_relations(table, alone.variables_of(table, through(2)))
    cross = a.shape[0] - alone.matrix()[0].shape[0]
    quarter_cells = int((programme["period_kind"] == "quarter").sum())
    cumulative = len(indicator.VARIANTS) * (2 + 1) * len(projects)  # two quarters and LOP, per project
    assert cross == quarter_cells + cumulative, "each quarter cell bounded, each cumulative total kept"


def test_a_small_cell_has_a_value_to_spare_only_where_a_later_release_extends_it() -> None:
    """The margin for later releases goes to the small cells of the running fiscal year and LOP,
    which the next release extends; an ended quarter's small cell needs ceil(k/2) values, no more
    (a margin there hid far more than it saved)."""
    crowd = people(40, 0) + people(2, 0, stakeholder_type="border_control") + people(35, 1)
    counts = counts_table(crowd, 2)
    end = through(2)
    growing = (counts["period_kind"] != "quarter").to_numpy() & (
        counts["period_end"].astype(str) > end
    ).to_numpy()
    run = _Suppression(
        counts,
        5,
        end,
        [],
        set(),
        thresholds=(5, 10),
        forced=np.zeros(len(counts), dtype=bool),
        guarded=np.zeros(len(counts), dtype=bool),
        growing=growing,
        omitted=np.zeros(len(counts), dtype=bool),
    )
    small = (counts["value"] > 0) & (counts["value"] < 5) & (counts["dimension"] == "stakeholder_type")
    for row in np.flatnonzero(small.to_numpy()):
        need = run.protected[int(run.variables[row])]
        kind = counts["period_kind"].iloc[row]
        assert need.values == (need_of(5) + MARGIN if growing[row] else need_of(5)), (kind, need)
    assert small[(counts["period_kind"] == "quarter").to_numpy()].any()
    assert small[growing].any()


def test_a_growing_cell_one_below_a_threshold_needs_no_range_for_its_next_quarter() -> None:
    """A LOP cell of T - 1 reaches T with any next quarter of 1..k-1, so that release publishes
    ``x`` whatever the quarter and tells nothing by it: the cell may be shown. One of T - 2 may be
    left below T (a ``<T`` then says the quarter is small), so it still needs to range down."""
    values = np.array([9, 8, 7, 6, 12])
    needs = _growth_needs(values, np.ones(len(values), dtype=bool), 5, (5, 10))
    assert needs[0].met(9, 9)  # shown as it is
    for row in (1, 2, 3):
        assert not needs[row].met(values[row], values[row])
        assert needs[row].met(7, 8)
    assert 4 not in needs  # 12 is past every threshold


def test_a_closed_fiscal_years_small_cell_keeps_room_for_the_next_release() -> None:
    """FY2026 closed with 1 border-control person, FY2027 running with 2, LOP 3: should the next
    release carry LOP to 5 (``x``), FY2027 = LOP - FY2026 keeps three values only if FY2026 can be
    3, so the first release leaves it that room (the demo's second release left a breakdown out
    when it did not). A LOP of 8 may reach the public's 10 instead: its closed year needs to reach
    8. A running year of k or more is never small, so asks nothing of its closed years."""
    crowd = people(40, 0) + people(35, 4) + people(1, 1, stakeholder_type="border_control")
    crowd += people(2, 4, stakeholder_type="border_control") + people(1, 1, stakeholder_type="private_sector")
    crowd += people(6, 4, stakeholder_type="private_sector") + people(
        4, 1, stakeholder_type="labour_inspector"
    )
    crowd += people(4, 4, stakeholder_type="labour_inspector")
    counts = counts_table(crowd, 6)
    end = through(6)
    growing = (counts["period_kind"] != "quarter").to_numpy() & (
        counts["period_end"].astype(str) > end
    ).to_numpy()
    values = counts["value"].astype(int).to_numpy()
    needs = _closed_needs(counts, values, growing, 5, (5, 10))

    at = ((counts["indicator"] == "identified") & (counts["dimension"] == "stakeholder_type")).to_numpy()

    def row(category: str, period: str = "FY2026") -> int:
        match = at & (counts["category"] == category).to_numpy() & (counts["period"] == period).to_numpy()
        return int(np.flatnonzero(match)[0])

    assert values[row("border_control")] == 1 and values[row("border_control", "LOP")] == 3
    assert needs[row("border_control")].high == 5 - 5 + need_of(5)
    assert not needs[row("border_control")].met(0, 2) and needs[row("border_control")].met(0, 4)
    assert row("private_sector") not in needs  # FY2027 is 6
    assert needs[row("labour_inspector")].high == 10 - 5 + need_of(5)  # LOP 8
    outcome = protect(counts, 6)
    assert_safe(outcome)
    fy2026 = ("identified", "FY2026", "stakeholder_type", "border_control")
    (finding,) = attack(
        [held(outcome.releases["donor"]), held(outcome.releases["public"])], 5, cells={fy2026}
    )
    assert finding.high >= 3, finding


def test_tables_of_one_layout_share_their_relations_and_another_layout_gets_its_own() -> None:
    """The relations know the layout only, so a protection builds them once per layout."""
    counts = counts_table(mixed(), 4)
    other_values = counts.assign(value=counts["value"] + 1)
    assert _relations_of(counts) is _relations_of(other_values)
    fewer = counts[counts["dimension"] != "stakeholder_type"].reset_index(drop=True)
    found = _relations_of(fewer)
    assert found is not _relations_of(counts)
    assert found.cells == table_relations(fewer).cells
    assert max(max(cells) for cells in found.cells) == len(fewer) - 1
