"""The rendered report in headless Chromium: a phone (390 px), a desktop (1280 px) and A4 print.

A copy of each report gets a probe script (the report itself runs none, and its CSP forbids
one) that measures the laid-out page and writes what it saw into the DOM, which Chromium dumps.
Print is checked twice: the print rules laid out at A4's printable width, and the real PDF
Chromium prints with its default settings, whose text must keep every table's LOP column.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdf
import pytest

from kobo_tip.config import Settings
from report_project import rendered_project

A4_PRINTABLE_PX = 703  # 210 mm less the report's 12 mm side margins, at 96 px an inch
PROBE = """
<script>
addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const boxes = [...document.querySelectorAll(".scroll")];
  const lop = [...document.querySelectorAll("thead th.lop")];
  const svgs = [...document.querySelectorAll("svg.chart")];
  const fonts = svgs.flatMap(svg => [...svg.querySelectorAll("text")].map(
    t => parseFloat(t.getAttribute("font-size")) * svg.getBoundingClientRect().width / 400));
  const headline = document.querySelector("table.headline");
  const head = document.querySelector("thead th:not(.label)");
  const wide = boxes.find(box => box.scrollWidth > box.clientWidth + 1);
  let sticky = null;
  if (wide) {
    wide.scrollLeft = 300;
    const label = wide.querySelector("tbody th");
    sticky = Math.abs(label.getBoundingClientRect().left - wide.getBoundingClientRect().left);
  }
  const seen = {
    width,
    tables: boxes.length,
    overflowing: boxes.filter(box => box.scrollWidth > box.clientWidth + 1).length,
    lopColumns: lop.length,
    lopOutOfView: lop.filter(th => th.getBoundingClientRect().right > width + 0.5).length,
    smallestChartText: Math.min(...fonts),
    headlineWidth: headline.getBoundingClientRect().width,
    headlineCells: getComputedStyle(headline.querySelector("td")).display,
    headerColour: getComputedStyle(head).color,
    headerBackground: getComputedStyle(head).backgroundColor,
    stickyOffset: sticky,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.append(out);
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.fail("the layout tests need headless Chromium: apt-get install chromium")


def run_chromium(*arguments: str, profile: Path) -> str:
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with rendered_project(tmp_path_factory.mktemp("layout"), with_targets=True) as settings:
        yield settings


def measure(
    settings: Settings, audience: str, width: int, tmp_path: Path, *, print_rules: bool = False
) -> dict[str, Any]:
    html = (settings.report.out_dir / audience / "report.html").read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    if print_rules:  # the print rules, applied on screen at the printable width of A4
        html = html.replace("@media print", "@media all")
    probe = tmp_path / f"{audience}-{width}.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(
        f"--window-size={width},1200",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
        profile=tmp_path / "profile",
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe ran"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def luminance(css_colour: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


@pytest.mark.parametrize("audience", ["donor", "internal"])
def test_desktop_shows_every_lop_column_without_scrolling(
    reports: Settings, audience: str, tmp_path: Path
) -> None:
    seen = measure(reports, audience, 1280, tmp_path)
    assert seen["lopColumns"] > 20
    assert seen["lopOutOfView"] == 0
    assert seen["overflowing"] == 0, "no table scrolls sideways on a desktop"
    assert seen["smallestChartText"] >= 11


@pytest.mark.parametrize("audience", ["donor", "internal"])
def test_phone_has_cards_sticky_labels_and_readable_charts(
    reports: Settings, audience: str, tmp_path: Path
) -> None:
    seen = measure(reports, audience, 390, tmp_path)
    assert seen["headlineCells"] == "flex", "the headline is laid out as cards"
    assert seen["headlineWidth"] <= seen["width"]
    assert seen["smallestChartText"] >= 11, "chart text of at least 11 px on a phone"
    assert seen["overflowing"] > 0, "period tables scroll on a phone..."
    assert seen["stickyOffset"] is not None and seen["stickyOffset"] < 1, "...with their labels kept in view"


@pytest.mark.parametrize("audience", ["donor", "internal"])
def test_print_rules_fit_a4_with_dark_headers(reports: Settings, audience: str, tmp_path: Path) -> None:
    seen = measure(reports, audience, A4_PRINTABLE_PX, tmp_path, print_rules=True)
    assert seen["width"] == A4_PRINTABLE_PX
    assert seen["overflowing"] == 0, "every table fits the printed page"
    assert seen["lopOutOfView"] == 0
    assert luminance(seen["headerColour"]) < 0.3, "header text is dark ink: printers drop backgrounds"
    assert seen["headerBackground"] in ("rgba(0, 0, 0, 0)", "transparent")


@pytest.mark.parametrize("audience", ["donor", "internal"])
def test_printed_pdf_keeps_every_lop_column(reports: Settings, audience: str, tmp_path: Path) -> None:
    pdf = tmp_path / f"{audience}.pdf"
    page = (reports.report.out_dir / audience / "report.html").as_uri()
    run_chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page, profile=tmp_path / "profile")
    pages = pypdf.PdfReader(pdf).pages
    assert len(pages) > 3
    tables = 0
    for number, sheet in enumerate(pages, 1):
        words = re.findall(r"\S+", sheet.extract_text())
        headers = words.count("Category")  # each breakdown table's first header, repeated on a new page
        tables += headers
        assert words.count("LOP") >= headers, f"page {number} lost a LOP column"
    assert tables > 20
