"""Reports in Thai, Khmer, Burmese and Arabic, rendered and printed by headless Chromium.

Every character of those scripts in the page must be drawn by a font of the report's font stack
that is installed here (fontconfig says which fonts hold which characters), so none falls back to
an empty box; the printed PDF must embed that font. An Arabic report is laid out right to left.
Khmer and Burmese ship no translation: the project gives a few report texts in its own
``translations/`` folder, and English fills the rest (a report language need not be complete).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import html5lib
import pypdf
import pytest

from kobo_tip.config import Settings
from kobo_tip.report import render_reports
from report_project import AS_OF, make_project, rename_locations, sync
from test_report_layout import run_chromium

SCRIPTS = {
    # language: (the Unicode names' script word, place names, the project's own report texts)
    "Thai (th)": ("THAI", ["กรุงเทพมหานคร", "เชียงใหม่", "ขอนแก่น", "สงขลา", "ตาก"], ""),
    "Khmer (km)": (
        "KHMER",
        ["ភ្នំពេញ", "បាត់ដំបង", "សៀមរាប", "កំពត", "បន្ទាយមានជ័យ"],
        '[report]\ntitle = "ជនរងគ្រោះដែលត្រូវបានកំណត់អត្តសញ្ញាណ ឬបញ្ជូនបន្ត"\n'
        '[report.section]\nheadline = "តួលេខសំខាន់ៗ"\n',
    ),
    "Burmese (my)": (
        "MYANMAR",
        ["ရန်ကုန်", "မန္တလေး", "နေပြည်တော်", "မော်လမြိုင်", "ပုသိမ်"],
        '[report]\ntitle = "ဖော်ထုတ်ခံရ သို့မဟုတ် လွှဲပြောင်းခံရသော ဒုက္ခသည်များ"\n'
        '[report.section]\nheadline = "အဓိက ကိန်းဂဏန်းများ"\n',
    ),
    "Arabic (ar)": ("ARABIC", ["القاهرة", "الإسكندرية", "الجيزة", "أسوان", "الأقصر"], ""),
}
FONT_IN_PDF = {"THAI": "NotoSansThai", "KHMER": "NotoSansKhmer", "MYANMAR": "NotoSansMyanmar"}


def project_in(language: str, root: Path, secret: str) -> Settings:
    """A small project whose report language is ``language``, its places named in its script."""
    _, places, own_texts = SCRIPTS[language]
    config = make_project(
        root, submissions=60, dhis2=False, languages=("English (en)", language), report_language=language
    )
    if own_texts:
        folder = root / "translations"
        folder.mkdir()
        code = language.split("(")[1].rstrip(")")
        (folder / f"{code}.toml").write_text(own_texts, encoding="utf-8")
    locations = root / "forms" / "locations.csv"
    codes = [line.split(",")[1] for line in locations.read_text(encoding="utf-8").splitlines()[1:]]
    rename_locations(locations, {code: places[n % len(places)] for n, code in enumerate(codes)})
    settings = sync(config)
    render_reports(settings, audiences=["internal"], as_of=AS_OF)
    return settings


def page_text(html: str) -> str:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    body = document.find("body")
    assert body is not None
    return "".join(body.itertext())


def font_stack(html: str) -> list[str]:
    """The families the report's stylesheet names for its text, in order."""
    found = re.search(r"--text-font:([^;]+);", html)
    assert found, "the stylesheet names its font stack"
    generic = {"system-ui", "-apple-system", "sans-serif", "serif"}  # a browser's aliases, not families
    return [name.strip().strip('"') for name in found.group(1).split(",") if name.strip() not in generic]


def covered_by(family: str, characters: set[str]) -> set[str]:
    """The characters of ``characters`` that an installed font of ``family`` holds (fontconfig)."""
    fc_list = shutil.which("fc-list")
    assert fc_list, "fontconfig's fc-list is installed with the fonts (apt-get install fontconfig)"
    held = set()
    for character in characters:
        pattern = f"{family}:charset={ord(character):x}"
        done = subprocess.run([fc_list, pattern, "family"], capture_output=True, text=True, check=True)
        if done.stdout.strip():
            held.add(character)
    return held


@pytest.mark.parametrize("language", ["Thai (th)", "Khmer (km)", "Burmese (my)"])
def test_thai_khmer_and_burmese_reports_print_with_their_script(
    language: str, tmp_path: Path, secret: str
) -> None:
    script, places, _ = SCRIPTS[language]
    settings = project_in(language, tmp_path / "project", secret)
    page = settings.report.out_dir / "internal" / "report.html"
    html = page.read_text(encoding="utf-8")
    text = page_text(html)
    characters = {c for c in text if script in unicodedata.name(c, "")}
    assert places[0] in text and len(characters) > 15, "the page holds text in the script"
    missing = set(characters)
    for family in font_stack(html):
        missing -= covered_by(family, missing)
        if not missing:
            break
    assert not missing, f"no font of the stack holds {sorted(missing)}: they would show as empty boxes"
    pdf = tmp_path / "report.pdf"
    run_chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri(), profile=tmp_path / "p")
    fonts = set()
    for sheet in pypdf.PdfReader(pdf).pages:
        for font in sheet["/Resources"].get("/Font", {}).values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    assert any(FONT_IN_PDF[script] in font for font in fonts), (FONT_IN_PDF[script], fonts)


RTL_PROBE = """
<script>
addEventListener("load", () => {
  const label = document.querySelector("#headline tbody th");
  const number = document.querySelector("#headline tbody td");
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    direction: getComputedStyle(document.body).direction,
    labelRight: label.getBoundingClientRect().right,
    numberRight: number.getBoundingClientRect().right,
    chartDirection: getComputedStyle(document.querySelector("svg.chart")).direction,
  });
  document.body.append(out);
});
</script>
"""


def test_an_arabic_report_reads_right_to_left(tmp_path: Path, secret: str) -> None:
    settings = project_in("Arabic (ar)", tmp_path / "project", secret)
    html = (settings.report.out_dir / "internal" / "report.html").read_text(encoding="utf-8")
    root = html5lib.parse(html, namespaceHTMLElements=False)
    assert (root.get("lang"), root.get("dir")) == ("ar", "rtl")
    assert "الأرقام الرئيسية" in page_text(html), "the headings are Arabic"
    probe = tmp_path / "probe.html"
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    probe.write_text(html.replace("</body>", RTL_PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(
        "--window-size=1280,1200",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
        profile=tmp_path / "p",
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe ran"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["direction"] == "rtl"
    assert seen["labelRight"] > seen["numberRight"], (
        "the row's label is on the right, its numbers to its left"
    )
    assert seen["chartDirection"] == "ltr", "a chart's time axis still runs left to right"
