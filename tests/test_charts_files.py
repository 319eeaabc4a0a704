"""The report's charts as files beside report.html: SVG that parses, PNG that decodes, both the
page's own drawings (same series and labels), named for what they show, readable when pasted."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest
from PIL import Image

from kobo_tip.config import Settings
from kobo_tip.report.chart_files import DPI, SCALE, png_at_dpi
from report_project import rendered_project

SVG = "{http://www.w3.org/2000/svg}"
EXPECTED = {
    "chart-persons-per-quarter",
    "chart-new-persons-by-stakeholder-type",
    "chart-persons-by-age-band-and-gender",
    "chart-persons-by-location",
    "chart-persons-by-country-of-origin",
    "chart-cumulative-persons-against-target",
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with rendered_project(tmp_path_factory.mktemp("charts"), with_targets=True) as settings:
        yield settings


def texts(svg: ET.Element) -> list[str]:
    return [(element.text or "") for element in svg.iter(f"{SVG}text")]


def inline_charts(page: Path) -> dict[str, list[str]]:
    """Each figure's caption -> the texts of its inline SVG, in drawing order."""
    tree = html5lib.parse(page.read_text(encoding="utf-8"), namespaceHTMLElements=False)
    out = {}
    for figure in tree.iter("figure"):
        caption = figure.find("figcaption")
        svg = figure.find(f"{SVG}svg")  # html5lib keeps SVG's own namespace
        if caption is not None and svg is not None:
            out[caption.text or ""] = texts(svg)
    return out


@pytest.mark.parametrize("audience", ["internal", "donor"])
def test_every_chart_is_written_as_svg_and_png_matching_the_page(reports: Settings, audience: str) -> None:
    folder = reports.report.out_dir / audience
    inline = inline_charts(folder / "report.html")
    assert len(inline) == len(EXPECTED)
    svgs = sorted(folder.glob("chart-*.svg"))
    assert {path.stem for path in svgs} == EXPECTED
    assert {path.stem for path in folder.glob("chart-*.png")} == EXPECTED
    key = "<5: 0 to 4 persons"
    for path in svgs:
        root = ET.parse(path).getroot()
        written = texts(root)
        # The title first (wrapped over as many lines as it needs), then the page's drawing, then
        # outside internal the key of "<k" and "x" (contract section 6: it travels with the chart).
        n = next(n for n in range(1, len(written)) if " ".join(written[:n]) in inline)
        drawn = inline[" ".join(written[:n])]
        assert drawn and written[n : n + len(drawn)] == drawn, path.name
        rest = " ".join(written[n + len(drawn) :])
        assert rest.startswith(key) if audience == "donor" else rest == "", path.name
        sizes = [float(size) for size in (e.get("font-size") for e in root.iter(f"{SVG}text")) if size]
        assert min(sizes) * SCALE / DPI * 72 >= 12, "at least 12 points when pasted at 150 dpi"
        with Image.open(folder / f"{path.stem}.png") as image:
            image.load()
            width, height = image.size
            assert width == round(float(root.get("width") or 0) * SCALE)
            assert height == round(float(root.get("height") or 0) * SCALE)
            assert tuple(round(d) for d in image.info["dpi"]) == (DPI, DPI)
            assert width / DPI == pytest.approx(6, abs=0.01)  # a page's text width
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
            assert image.convert("RGB").getpixel((0, 0)) == (255, 255, 255)
            # Drawn, not blank: the first series' Okabe-Ito blue is there.
            assert any(colour == (0, 114, 178) for _, colour in colours), path.name


def test_chart_files_hold_no_hidden_value_the_page_does_not(reports: Settings) -> None:
    folder = reports.report.out_dir / "donor"
    page = folder / "report.html"
    inline = {text for texts_ in inline_charts(page).values() for text in texts_}
    for path in folder.glob("chart-*.svg"):
        numbers = {t for t in texts(ET.parse(path).getroot()) if re.fullmatch(r"\d+", t)}
        assert numbers <= inline, path.name


def test_png_says_its_resolution() -> None:
    plain = io.BytesIO()
    Image.new("RGB", (3, 2), (255, 255, 255)).save(plain, format="PNG")
    with Image.open(io.BytesIO(png_at_dpi(plain.getvalue(), 150))) as image:
        image.load()
        assert image.size == (3, 2)
        assert tuple(round(d) for d in image.info["dpi"]) == (150, 150)
