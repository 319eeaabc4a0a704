"""``kobo-tip init``: starter config, example roster and ISO 3166-2 locations that build a valid form."""

from __future__ import annotations

from pathlib import Path

import pycountry
import pytest

from kobo_tip import indicator as ind
from kobo_tip.cli import main
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError
from kobo_tip.form import build_form
from kobo_tip.form.writer import read_sheet
from kobo_tip.init_project import STARTER_CONFIG, write_starter
from kobo_tip.labels import english_texts


@pytest.fixture(scope="module")
def france(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project started for France, whose ISO 3166-2 tree has regions and departments."""
    folder = tmp_path_factory.mktemp("france")
    write_starter(folder, "FR")
    return folder


def test_writes_the_four_files(tmp_path: Path) -> None:
    written = write_starter(tmp_path / "new", "th")
    assert written == [
        tmp_path / "new" / "kobo-tip.toml",
        tmp_path / "new" / "forms" / "stakeholders.csv",
        tmp_path / "new" / "forms" / "locations.csv",
        tmp_path / "new" / "forms" / "referral_directory.csv",
    ]
    assert all(path.is_file() for path in written)
    # The starter is the commented example config, with the chosen country.
    assert written[0].read_text(encoding="utf-8") == STARTER_CONFIG.read_text(encoding="utf-8")


def test_the_starter_config_loads_with_the_country_roster_and_locations(france: Path) -> None:
    settings = load_settings(france / "kobo-tip.toml")
    assert settings.project.country == "fr"
    assert "# " in (france / "kobo-tip.toml").read_text(encoding="utf-8")  # still commented
    assert {s.type for s in settings.form.roster} == set(ind.CHOICES["stakeholder_type"])
    admin1 = {loc.code: loc for loc in settings.form.locations if loc.level == 1}
    admin2 = [loc for loc in settings.form.locations if loc.level == 2]
    top = [s for s in pycountry.subdivisions.get(country_code="FR") if s.parent_code is None]
    assert set(admin1) == {s.code for s in top}
    assert all(loc.parent == "fr" for loc in admin1.values())
    assert admin2 and all(loc.parent in admin1 for loc in admin2)
    assert {loc.code for loc in admin2} == {
        s.code for s in pycountry.subdivisions.get(country_code="FR") if s.parent_code in admin1
    }
    assert next(loc for loc in admin2 if loc.code == "FR-2A").name == "Corse-du-Sud"
    # The example referral directory: organisations offering services of the form's list.
    assert len(settings.form.referral_directory) >= 2
    assert all(set(org.services) <= set(ind.CHOICES["service"]) for org in settings.form.referral_directory)


def test_the_started_project_builds_a_validated_form(france: Path) -> None:
    build = build_form(load_settings(france / "kobo-tip.toml"))
    assert build.validated and build.warnings == []
    assert build.xlsx_path == france / "forms" / "tip_victims.xlsx"
    survey = read_sheet(build.xlsx_path, "survey")
    identification = next(row for row in survey if row["name"] == ind.IDENTIFICATION_COUNTRY)
    assert identification["default"] == "fr"
    assert ind.LOCATION_ADMIN2 in {row["name"] for row in survey}


def test_a_country_without_admin2_gets_admin1_only(tmp_path: Path) -> None:
    write_starter(tmp_path, "th")
    levels = {loc.level for loc in load_settings(tmp_path / "kobo-tip.toml").form.locations}
    assert levels == {1}


def test_never_overwrites_a_config(tmp_path: Path) -> None:
    config = tmp_path / "kobo-tip.toml"
    config.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kobo-tip\.toml already exists"):
        write_starter(tmp_path, "th")
    assert config.read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "forms").exists()


def test_never_overwrites_a_roster(tmp_path: Path) -> None:
    roster = tmp_path / "forms" / "stakeholders.csv"
    roster.parent.mkdir()
    roster.write_text("id,name,type,trained_on\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"stakeholders\.csv already exists"):
        write_starter(tmp_path, "th")
    assert not (tmp_path / "kobo-tip.toml").exists()


@pytest.mark.parametrize("country", ["zz", "tha", "", "Thailand"])
def test_unknown_country_is_a_config_error(tmp_path: Path, country: str) -> None:
    with pytest.raises(ConfigError, match="ISO 3166-1 alpha-2"):
        write_starter(tmp_path, country)
    assert list(tmp_path.iterdir()) == []


def test_cli_init_then_init_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path), "--country", "mm"]) == 0
    assert "kobo-tip.toml" in capsys.readouterr().out
    assert load_settings(tmp_path / "kobo-tip.toml").project.country == "mm"
    assert main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_init_says_which_translations_exist_and_a_project_adds_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path), "--country", "kh"]) == 0
    out = capsys.readouterr().out
    shipped = "(kobo-tip ships translations for ar, en, es, fr, pt, th)"
    assert f"Form languages: English (en), French (fr) {shipped}" in out
    assert "To add the language of Cambodia, " in out and "kobo-tip translations export --language" in out
    assert "it writes translations/<code>.toml beside kobo-tip.toml" in out
    # A Khmer file beside the config with two texts translated (as a hand-written file would be).
    (tmp_path / "translations").mkdir()
    (tmp_path / "translations" / "km.toml").write_text(
        '[groups]\nintro = "ការយល់ព្រម"\n\n[fields.consent]\nlabel = "តើបុគ្គលនេះយល់ព្រមទេ?"\n', encoding="utf-8"
    )
    config = tmp_path / "kobo-tip.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('"French (fr)"]', '"French (fr)", "Khmer (km)"]', 1), encoding="utf-8")
    build = build_form(load_settings(config))
    survey = read_sheet(build.xlsx_path, "survey")
    consent = next(row for row in survey if row["name"] == ind.CONSENT)
    assert consent["label::Khmer (km)"] == "តើបុគ្គលនេះយល់ព្រមទេ?"
    assert consent["label::French (fr)"].startswith("La personne accepte")
    (warning,) = [w for w in build.warnings if w.startswith("Khmer (km)")]
    form_texts = sum(1 for key in english_texts() if not key.startswith("report."))
    assert f"{form_texts - 2} form text(s) have no translation" in warning
    assert "translations export" in warning
