"""Every chart of the report page also as files beside ``report.html``: SVG, and PNG rendered from
that same SVG, for a donor narrative or a slide (contract section 7).

A file is the page's chart with what the page says around it: its title above and, outside
internal, the key of ``<k`` and ``x`` below (contract section 6: beside every chart), so a chart
pasted alone still says what a hidden mark means. The PNG is drawn at ``SCALE`` times the SVG's
400 units, 900 pixels wide, and says it is 150 dpi, so a document shows it 6 inches wide with its
text at about 14 points (12 for the smallest).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markupsafe import escape

from kobo_tip.report.charts import FONT, LEFT, SMALL, WIDTH
from kobo_tip.report.document import report_charts
from kobo_tip.report.edition import Edition
from kobo_tip.report.files import write_text

log = logging.getLogger(__name__)

DPI = 150
SCALE = 2.25  # 400 units -> 900 pixels: 6 inches at 150 dpi
TITLE_CHARS, KEY_CHARS = 52, 60  # characters of a title or key line that fit in 400 units
LINE = FONT + 6
_VIEW_BOX = re.compile(r'viewBox="0 0 (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)"')


def chart_svg(chart: dict[str, Any], key: str) -> str:
    """The standalone SVG of one of ``report_charts``' charts: a white page with the title, the
    chart itself (the same drawing as the page's, moved down) and ``key`` (empty: none)."""
    inline = str(chart["svg"])
    match = _VIEW_BOX.search(inline)
    assert match, "a chart of charts.py has a viewBox"
    height = float(match.group(2))
    head_end = inline.index(">") + 1
    body = inline[head_end : inline.rindex("</svg>")]
    parts = []
    y = 0.0
    for line in textwrap.wrap(str(chart["title"]), TITLE_CHARS):
        y += LINE
        parts.append(_line(y, line, FONT, bold=True))
    top = y + 6
    parts.append(f'<g transform="translate(0 {top:.0f})">{body}</g>')
    y = top + height
    for line in textwrap.wrap(key, KEY_CHARS):
        y += SMALL + 5
        parts.append(_line(y, line, SMALL))
    total = y + 8
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total:.0f}" '
        f'viewBox="0 0 {WIDTH} {total:.0f}" font-family="system-ui, sans-serif">'
        f'<rect width="{WIDTH}" height="{total:.0f}" fill="#ffffff"/>' + "".join(parts) + "</svg>\n"
    )


def _line(y: float, text: str, size: int, *, bold: bool = False) -> str:
    weight = ' font-weight="600"' if bold else ""
    return f'<text x="{LEFT / 4:.0f}" y="{y:.0f}" font-size="{size}"{weight}>{escape(text)}</text>'


def png_at_dpi(png: bytes, dpi: int) -> bytes:
    """``png`` with a ``pHYs`` chunk saying ``dpi``, so a document sizes it from its pixels."""
    per_metre = round(dpi / 0.0254)
    data = struct.pack(">IIB", per_metre, per_metre, 1)
    chunk = struct.pack(">I", len(data)) + b"pHYs" + data + struct.pack(">I", zlib.crc32(b"pHYs" + data))
    end_of_header = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:end_of_header] + chunk + png[end_of_header:]


def write_chart_files(folder: Path, edition: Edition) -> list[Path]:
    """Write ``<file>.svg`` and ``<file>.png`` for every chart of ``edition``'s page into ``folder``;
    without the Cairo library the PNG files are left out, with a warning."""
    key = edition.words.hidden_key(edition.k) if edition.k is not None else ""
    written = []
    render = _png_renderer()
    for chart in report_charts(edition):
        svg = chart_svg(chart, chart.get("key") or key)  # the IPTT's chart has its own
        written.append(write_text(folder / f"{chart['file']}.svg", svg))
        if render is not None:
            png = folder / f"{chart['file']}.png"
            temporary = png.with_name(png.name + ".tmp")
            temporary.write_bytes(png_at_dpi(render(svg), DPI))
            os.replace(temporary, png)
            written.append(png)
    return written


def _png_renderer() -> Callable[[str], bytes] | None:
    """cairosvg's renderer of an SVG text to PNG bytes at ``SCALE``, or None without Cairo."""
    try:
        import cairosvg  # Cairo is optional  # noqa: PLC0415
    except (ImportError, OSError) as exc:  # cairocffi raises OSError when libcairo is missing
        log.warning("Charts are written as SVG only: PNG needs CairoSVG and the Cairo library (%s).", exc)
        return None

    def render(svg: str) -> bytes:
        return bytes(cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=SCALE))

    return render
