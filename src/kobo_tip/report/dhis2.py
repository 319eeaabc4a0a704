"""dhis2_datavalueset.json: quarter values for a DHIS2 ``POST /api/dataValueSets`` import.

Each data value carries its own data element, period (the calendar quarter, ``2025Q4``), org
unit, category option combo and attribute option combo; values are strings. Only cells the
``[dhis2] category_option_combos`` table maps (``"gender:female"``, ``"total:all"``) are sent;
suppressed cells are left out and counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kobo_tip.config import Settings
from kobo_tip.periods import QUARTER, dhis2_period
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import write_text
from kobo_tip.targets import project_periods


def data_value_set(edition: Edition, settings: Settings) -> tuple[dict[str, Any], int]:
    """The payload, and how many mapped cells were left out because they are suppressed.

    Quarters still running on the run date are not sent (they are not final).
    """
    assert settings.dhis2 is not None
    mapping = settings.dhis2
    quarters = [p for p in edition.counts.of_kind(QUARTER) if p.end < edition.provenance.run_date]
    values: list[dict[str, str]] = []
    left_out = 0
    for name, element in mapping.data_elements.items():
        for quarter in quarters:
            period = dhis2_period(quarter)
            for combo_key, combo in mapping.category_option_combos.items():
                dimension, _, category = combo_key.partition(":")
                cell = edition.counts.cell(name, quarter.label, dimension, category)
                if not cell.address:
                    continue
                if not cell.is_number:
                    left_out += 1
                    continue
                value = {
                    "dataElement": element,
                    "period": period,
                    "orgUnit": mapping.org_unit,
                    "categoryOptionCombo": combo,
                    "value": cell.text,
                }
                if mapping.attribute_option_combo:
                    value["attributeOptionCombo"] = mapping.attribute_option_combo
                values.append(value)
    values += _target_values(edition, settings)
    payload: dict[str, Any] = {"dataValues": values}
    if mapping.data_set:
        payload = {"dataSet": mapping.data_set, **payload}
    return payload, left_out


def _target_values(edition: Edition, settings: Settings) -> list[dict[str, str]]:
    """The quarter targets, under ``[dhis2] target_attribute_option_combo`` (DHIS2 keeps targets
    as an attribute option of the same data elements); none without that combo."""
    mapping = settings.dhis2
    assert mapping is not None
    if not mapping.target_attribute_option_combo:
        return []
    quarters = {p.label: p for p in project_periods(settings.project) if p.kind == QUARTER}
    values = []
    for row in edition.performance.rows:
        element = mapping.data_elements.get(row.indicator)
        combo = mapping.category_option_combos.get(f"{row.dimension}:{row.category}")
        target = row.full_target if row.full_target is not None else row.target
        if row.cumulative or row.period not in quarters or not element or not combo or target is None:
            continue
        values.append(
            {
                "dataElement": element,
                "period": dhis2_period(quarters[row.period]),
                "orgUnit": mapping.org_unit,
                "categoryOptionCombo": combo,
                "attributeOptionCombo": mapping.target_attribute_option_combo,
                "value": str(target),
            }
        )
    return values


def write_data_value_set(path: Path, edition: Edition, settings: Settings) -> tuple[Path, int]:
    """Write the payload as JSON; returns the path and the number of suppressed cells left out."""
    payload, left_out = data_value_set(edition, settings)
    return write_text(path, json.dumps(payload, indent=1, ensure_ascii=False) + "\n"), left_out
