"""Charts as inline SVG, drawn here so the report needs no script and no network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from kobo_tip.report.tables import Cell

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
HIDDEN_COLOUR = "#BBBBBB"
WIDTH, PLOT_HEIGHT, LEFT, TOP, BAR_GAP = 640, 220, 40, 16, 0.3


@dataclass(frozen=True)
class Series:
    label: str
    cells: Sequence[Cell]  # one per quarter


def stacked_bars(
    quarters: Sequence[str], totals: Sequence[Cell], series: Sequence[Series], hidden_label: str
) -> Markup:
    """Stacked bars of the visible parts per quarter; the part hidden by suppression is grey.

    The grey part is the published total minus the visible parts, which a reader of the tables
    can already work out; a quarter whose total is hidden gets no bar, only its label.
    """
    colours = [PALETTE[number % len(PALETTE)] for number in range(len(series))]
    count = max(len(quarters), 1)
    slot = (WIDTH - LEFT) / count
    top = max([int(c.text) for c in totals if c.is_number] + [1])
    scale = PLOT_HEIGHT / top
    legend_rows = len(series) + 1  # one entry a row: long (translated) labels keep the full width
    height = TOP + PLOT_HEIGHT + 40 + 18 * legend_rows
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" class="chart">',
        f'<line x1="{LEFT}" y1="{TOP + PLOT_HEIGHT}" x2="{WIDTH}" y2="{TOP + PLOT_HEIGHT}" stroke="#444"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" font-size="10">{top}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + PLOT_HEIGHT}" text-anchor="end" font-size="10">0</text>',
    ]
    for index, (quarter, total) in enumerate(zip(quarters, totals, strict=True)):
        x = LEFT + index * slot + slot * BAR_GAP / 2
        width = slot * (1 - BAR_GAP)
        base: float = TOP + PLOT_HEIGHT
        if total.is_number:
            visible = [
                (colour, int(s.cells[index].text))
                for colour, s in zip(colours, series, strict=True)
                if s.cells[index].is_number
            ]
            segments = [*visible, (HIDDEN_COLOUR, int(total.text) - sum(v for _, v in visible))]
            for colour, value in segments:
                if value <= 0:
                    continue
                base -= value * scale
                parts.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{width:.1f}" height="{value * scale:.1f}" '
                    f'fill="{colour}"><title>{value}</title></rect>'
                )
        parts.append(
            f'<text x="{x + width / 2:.1f}" y="{base - 3:.1f}" text-anchor="middle" font-size="10">'
            f"{escape(total.text)}</text>"
        )
        parts.append(
            f'<text x="{x + width / 2:.1f}" y="{TOP + PLOT_HEIGHT + 14}" text-anchor="middle" font-size="10">'
            f"{escape(quarter)}</text>"
        )
    entries = [*zip(colours, (s.label for s in series), strict=True), (HIDDEN_COLOUR, hidden_label)]
    for number, (colour, label) in enumerate(entries):
        x = LEFT
        y = TOP + PLOT_HEIGHT + 30 + number * 18
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="{y + 10}" font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
