"""Charts as inline SVG, drawn here so the report needs no script and no network.

Every chart is drawn from published cells only: a hidden cell (``<k`` or ``x``) is drawn as
hidden, never with a length or a position that would say its value, and axis scales come from
the published numbers alone. Colours are Okabe-Ito's (safe for the common colour-vision
deficiencies, and in print); text is 12 or 13 units in a 400-unit-wide drawing, so at least 11 px
on a 390 px phone and no more than about 16 px on a desktop.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from kobo_tip.report.tables import Cell
from kobo_tip.report.texts import ReportWords

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
HIDDEN_PATTERN = "hidden-hatch"
_HATCH = f"url(#{HIDDEN_PATTERN})"
WIDTH, FONT, SMALL = 400, 13, 12
LEFT, RIGHT, TOP = 44, 8, 12
BAR_GAP = 0.3
LEGEND_CHARS = 46  # characters of a legend line that fit beside its swatch


@dataclass(frozen=True)
class Series:
    label: str
    cells: Sequence[Cell]  # one per column (quarter, age band...)


@dataclass(frozen=True)
class Bar:
    label: str
    cell: Cell


def _number(cell: Cell) -> int | None:
    return int(cell.text) if cell.is_number else None


def _numeral(value: int | str, words: ReportWords | None) -> str:
    """A count (or ``<k``, ``x``) as the report's tables write it: the report language's digits
    and grouping; as it is without ``words``."""
    return words.number(str(value)) if words else str(value)


def _year_and_quarter(label: str, words: ReportWords | None) -> tuple[str, str]:
    """(the fiscal year under a quarter's tick, the tick): ("FY2026", "Q1"), in the report language."""
    if words is None:
        year, _, quarter = label.rpartition(" ")
        return year, quarter or label
    group, short = words.period_group(label)
    return (group, short) if short else ("", group)


def _svg(height: float, title: str, body: list[str]) -> Markup:
    hatch = (
        f'<defs><pattern id="{HIDDEN_PATTERN}" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#999999" stroke-width="3"/></pattern></defs>'
    )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        # Left to right in every language (time runs rightwards), also where the SVG stands alone.
        'class="chart" direction="ltr" '
        f'font-family="system-ui, sans-serif"><title>{escape(title)}</title>{hatch}'
    )
    return Markup(head + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = FONT, weight: str = "") -> str:
    bold = ' font-weight="600"' if weight else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{bold}>{escape(text)}</text>'
    )


def _legend(entries: Sequence[tuple[str, str]], y: float) -> tuple[list[str], float]:
    """One entry a line, a long label wrapped onto the next ones; the height it takes."""
    parts = []
    row = y
    for fill, label in entries:
        parts.append(f'<rect x="{LEFT}" y="{row:.1f}" width="11" height="11" fill="{fill}"/>')
        for line in textwrap.wrap(label, LEGEND_CHARS) or [""]:
            parts.append(_text(LEFT + 16, row + 10, line))
            row += FONT + 6
    return parts, row - y


def stacked_bars(
    columns: Sequence[str],
    totals: Sequence[Cell],
    series: Sequence[Series],
    hidden_label: str,
    *,
    words: ReportWords | None = None,
) -> Markup:
    """Stacked bars per column (the visible parts of each published total); the part hidden by
    suppression is hatched. That part is the published total minus the visible parts, which a
    reader of the tables can already work out; a column whose total is hidden gets no bar."""
    plot = 180
    count = max(len(columns), 1)
    slot = (WIDTH - LEFT - RIGHT) / count
    scale, _, body = _value_axis(totals, plot, words)
    colours = [PALETTE[number % len(PALETTE)] for number in range(len(series))]
    hatched = False
    for index, total in enumerate(totals):
        x = LEFT + index * slot + slot * BAR_GAP / 2
        width = slot * (1 - BAR_GAP)
        base: float = TOP + plot
        value = _number(total)
        if value is not None:
            visible = [
                (colour, n)
                for colour, s in zip(colours, series, strict=True)
                if (n := _number(s.cells[index])) is not None
            ]
            rest = value - sum(v for _, v in visible)
            segments = [*((fill, n, _numeral(n, words)) for fill, n in visible), (_HATCH, rest, hidden_label)]
            for fill, part, title in segments:
                if part <= 0:
                    continue
                hatched = hatched or fill == _HATCH
                base -= part * scale
                body.append(_rect(x, base, width, part * scale, fill, title=title))
        body.append(_text(x + width / 2, base - 3, _numeral(total.text, words), anchor="middle", size=SMALL))
    centres = [LEFT + (i + 0.5) * slot for i in range(len(columns))]
    body += _period_axis(columns, centres, TOP + plot + 14, words)
    # A category with no published number above 0 is in the hatched part: its swatch says so.
    entries = [
        (colour if any(_number(c) for c in s.cells) else _HATCH, s.label)
        for colour, s in zip(colours, series, strict=True)
    ]
    legend, used = _legend([*entries, (_HATCH, hidden_label)] if hatched else entries, TOP + plot + 40)
    return _svg(TOP + plot + 40 + used, hidden_label, body + legend)


def _value_axis(
    cells: Sequence[Cell], plot: float, words: ReportWords | None
) -> tuple[float, float, list[str]]:
    """(units a person, the baseline's y, the axis): scaled to the largest published number, whose
    label tops the axis (none when nothing is above 0)."""
    top = max([n for c in cells if (n := _number(c)) is not None], default=0)
    base = TOP + plot
    axis = [
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#444"/>',
        _text(LEFT - 4, base, _numeral(0, words), anchor="end", size=SMALL),
    ]
    if top:
        axis.append(_text(LEFT - 4, TOP + 4, _numeral(top, words), anchor="end", size=SMALL))
    return plot / max(top, 1), base, axis


def _period_axis(
    columns: Sequence[str], centres: Sequence[float], y: float, words: ReportWords | None
) -> list[str]:
    """Quarter labels (``Q1``) at their centres, and under them each fiscal year once, centred on
    its quarters: eight quarters fit a phone."""
    parts = []
    runs: list[tuple[str, list[float]]] = []
    for label, x in zip(columns, centres, strict=True):
        year, quarter = _year_and_quarter(label, words)
        parts.append(_text(x, y, quarter, anchor="middle", size=SMALL))
        if runs and runs[-1][0] == year:
            runs[-1][1].append(x)
        else:
            runs.append((year, [x]))
    for year, xs in runs:
        if year:
            parts.append(_text((xs[0] + xs[-1]) / 2, y + SMALL + 3, year, anchor="middle", size=SMALL))
            if len(xs) > 1:
                line_y = y + 4
                parts.append(
                    f'<line x1="{xs[0] - 8:.1f}" y1="{line_y:.1f}" x2="{xs[-1] + 8:.1f}" y2="{line_y:.1f}" '
                    'stroke="#bbb"/>'
                )
    return parts


def trend(
    columns: Sequence[str], series: Sequence[Series], hidden_label: str, *, words: ReportWords | None = None
) -> Markup:
    """One line per series over the columns (quarters); a hidden point breaks its line and is
    drawn as a hollow marker on the baseline, saying nothing of its value."""
    plot = 160
    count = max(len(columns), 1)
    slot = (WIDTH - LEFT - RIGHT) / count
    scale, base, body = _value_axis([c for s in series for c in s.cells], plot, words)
    body += _period_axis(columns, [LEFT + (i + 0.5) * slot for i in range(len(columns))], base + 14, words)
    hollow = False
    entries = []
    dashes = ("", "6 3", "2 3")
    for number, s in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        entries.append((colour, s.label))
        runs: list[list[tuple[float, float, int]]] = [[]]
        for index, cell in enumerate(s.cells):
            x = LEFT + (index + 0.5) * slot
            value = _number(cell)
            if value is None:
                runs.append([])
                hollow = True
                body.append(
                    f'<circle cx="{x:.1f}" cy="{base - 4:.1f}" r="3.5" fill="white" stroke="{colour}">'
                    f"<title>{escape(_numeral(cell.text, words))}</title></circle>"
                )
                continue
            runs[-1].append((x, base - value * scale, value))
        dash = f' stroke-dasharray="{dashes[number % len(dashes)]}"' if dashes[number % len(dashes)] else ""
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in run)
                body.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
                )
            for x, y, value in run:
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(_numeral(value, words))}</title></circle>"
                )
    legend, used = _legend([*entries, ("white", hidden_label)] if hollow else entries, base + 40)
    if hollow:  # the hidden entry's swatch is the hollow marker the chart draws
        swatch = next(i for i in range(len(legend) - 1, -1, -1) if legend[i].startswith("<rect"))
        centre = base + 40 + used - FONT - 0.5
        legend[swatch] = f'<circle cx="{LEFT + 5.5}" cy="{centre:.1f}" r="4" fill="white" stroke="#444"/>'

    return _svg(base + 40 + used, hidden_label, body + legend)


def horizontal_bars(
    bars: Sequence[Bar], hidden_label: str, more: str = "", *, words: ReportWords | None = None
) -> Markup:
    """One bar per published number, longest first, scaled to the largest published number; the
    hidden ones after them, each drawn as a short hatched mark of the same length whatever its
    value, with its text (``<k`` or ``x``). ``more``: a last line saying what was left out."""
    row_height, label_width = FONT + 10, 150
    top = max([n for b in bars if (n := _number(b.cell)) is not None], default=0)
    room = WIDTH - LEFT - label_width - RIGHT - 30
    body = []
    y = TOP
    for bar in bars:
        value = _number(bar.cell)
        x0 = LEFT + label_width
        body.append(_text(x0 - 6, y + FONT, _shorten(bar.label), anchor="end"))
        if value is None:
            body.append(_rect(x0, y + 2, 18, FONT + 2, _HATCH))
            body.append(_text(x0 + 24, y + FONT, _numeral(bar.cell.text, words), size=SMALL))
        else:
            length = room * value / max(top, 1)
            body.append(_rect(x0, y + 2, length, FONT + 2, PALETTE[0], title=_numeral(value, words)))
            body.append(_text(x0 + length + 4, y + FONT, _numeral(value, words), size=SMALL))
        y += row_height
    if more:
        body.append(_text(LEFT, y + FONT, more, size=SMALL))
        y += row_height
    body.append(
        f'<line x1="{LEFT + label_width}" y1="{TOP}" x2="{LEFT + label_width}" y2="{y:.1f}" stroke="#444"/>'
    )
    return _svg(y + TOP, hidden_label, body)


def grouped_bars(
    groups: Sequence[str], series: Sequence[Series], hidden_label: str, *, words: ReportWords | None = None
) -> Markup:
    """Bars side by side per group (an age band), one colour per series (a gender); a hidden cell
    is a short hatched mark on the baseline outlined in its series' colour, the same for every
    hidden value, so a series all of whose cells are hidden is still drawn."""
    plot = 160
    count = max(len(groups), 1)
    slot = (WIDTH - LEFT - RIGHT) / count
    inner = slot * (1 - BAR_GAP) / max(len(series), 1)
    scale, base, body = _value_axis([c for s in series for c in s.cells], plot, words)
    for index, group in enumerate(groups):
        x0 = LEFT + index * slot + slot * BAR_GAP / 2
        for number, s in enumerate(series):
            cell = s.cells[index]
            value = _number(cell)
            x = x0 + number * inner
            colour = PALETTE[number % len(PALETTE)]
            if value is None:
                title = f"{s.label}: {_numeral(cell.text, words)}"
                body.append(_rect(x, base - 6, inner, 6, _HATCH, title=title, stroke=colour))
            elif value:
                body.append(
                    _rect(x, base - value * scale, inner, value * scale, colour, title=_numeral(value, words))
                )
        body.append(_text(x0 + slot * (1 - BAR_GAP) / 2, base + 14, group, anchor="middle", size=SMALL))
    entries = [(PALETTE[n % len(PALETTE)], s.label) for n, s in enumerate(series)]
    if any(c.text and not c.is_number for s in series for c in s.cells):
        entries.append((_HATCH, hidden_label))
    legend, used = _legend(entries, base + 30)
    return _svg(base + 30 + used, hidden_label, body + legend)


def _rect(
    x: float, y: float, width: float, height: float, fill: str, *, title: str = "", stroke: str = ""
) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    line = f' stroke="{stroke}" stroke-width="1.5"' if stroke else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}"{line}>'
        f"{tip}</rect>"
    )


def _shorten(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
