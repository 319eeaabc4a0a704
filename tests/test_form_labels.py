"""Translations: complete English and French files, English fallback with named warnings."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobo_tip import indicator as ind
from kobo_tip.config import Language, parse_language
from kobo_tip.errors import ConfigError
from kobo_tip.labels import TRANSLATIONS_DIR, load_labels

ENGLISH = parse_language("English (en)")
FRENCH = parse_language("French (fr)")
# Every question of the form: the selects plus the text, date and integer fields.
QUESTIONS = (
    *ind.FIELD_LIST,
    ind.EVENT_DATE,
    ind.CASE_REF,
    ind.UIC_GIVEN,
    ind.UIC_MOTHER,
    ind.BIRTH_YEAR,
    ind.AGE_YEARS,
)


@pytest.fixture
def translations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch translations folder holding the shipped English file."""
    shutil.copy(TRANSLATIONS_DIR / "en.toml", tmp_path / "en.toml")
    monkeypatch.setattr("kobo_tip.labels.TRANSLATIONS_DIR", tmp_path)
    load_labels.cache_clear()
    yield tmp_path
    load_labels.cache_clear()


def test_english_and_french_label_every_question_and_choice() -> None:
    for language in (ENGLISH, FRENCH):
        labels = load_labels(language)
        assert labels.warnings == ()
        for name in QUESTIONS:
            assert labels.field(name).strip() and labels.field(name, "hint").strip(), (language, name)
        for list_name, names in ind.CHOICES.items():
            for name in names:
                assert labels.texts[f"choices.{list_name}.{name}"].strip(), (language, list_name, name)
        for group in (ind.GROUP_INTRO, ind.GROUP_EVENT, ind.GROUP_PERSON, ind.GROUP_WG, ind.GROUP_REFERRAL):
            assert labels.group(group).strip()
        for extra in ind.COUNTRY_EXTRAS:
            assert labels.texts[f"choices.country.{extra}"].strip()
        assert labels.texts[f"choices.stakeholder.{ind.NOT_LISTED}"].strip()


def test_french_file_has_exactly_the_english_keys_and_differs_from_english() -> None:
    def keys(table: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in table.items():
            out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    english = tomllib.loads((TRANSLATIONS_DIR / "en.toml").read_text(encoding="utf-8"))
    french = tomllib.loads((TRANSLATIONS_DIR / "fr.toml").read_text(encoding="utf-8"))
    assert keys(english) == keys(french)
    assert load_labels(FRENCH).field(ind.CONSENT) != load_labels(ENGLISH).field(ind.CONSENT)
    assert load_labels(FRENCH).choice("gender", "female") == "Femme"


def test_country_names_come_from_pycountry_in_each_language() -> None:
    assert load_labels(ENGLISH).choice("country", "th") == "Thailand"
    assert load_labels(FRENCH).choice("country", "th") == "Thaïlande"
    assert load_labels(ENGLISH).choice("country", "kr") == "South Korea"  # common name preferred
    assert load_labels(FRENCH).choice("country", "stateless") == "Apatride"
    assert load_labels(parse_language("Spanish (es)")).country("th") == "Tailandia"
    # A regional variant uses its language's file and catalogue.
    british = load_labels(parse_language("English (en-GB)"))
    assert british.warnings == () and british.country("th") == "Thailand"
    assert load_labels(parse_language("French (fr-CA)")).choice("country", "th") == "Thaïlande"


def test_a_language_without_a_file_falls_back_to_english_and_names_the_fields() -> None:
    khmer = load_labels(parse_language("Khmer (km)"))
    english = load_labels(ENGLISH)
    assert khmer.texts == english.texts
    (warning,) = khmer.warnings
    assert warning.startswith("Khmer (km): ")
    assert "(no km.toml: copy " in warning and "to translations/km.toml beside the config" in warning
    assert "fields.consent (label, hint, required_message)" in warning
    assert "choices.wg_difficulty (no_difficulty" in warning


def test_a_partial_translation_names_each_missing_and_unknown_key(translations: Path) -> None:
    (translations / "xx.toml").write_text(
        '[fields.consent]\nlabel = "Consent?"\n\n[choices.gender]\nfemale = "F"\nfemal = "typo"\n',
        encoding="utf-8",
    )
    labels = load_labels(Language("Test (xx)", "Test", "xx"))
    assert labels.field(ind.CONSENT) == "Consent?"
    assert labels.field(ind.CONSENT, "hint") == load_labels(ENGLISH).field(ind.CONSENT, "hint")
    assert labels.choice("gender", "female") == "F"
    assert labels.choice("gender", "male") == "Male"
    missing, unknown, no_countries = labels.warnings
    assert "in xx.toml" in missing and "fields.consent (hint, required_message)" in missing
    assert "choices.gender (male, non_binary_other" in missing and "choices.gender (female" not in missing
    assert "choices.gender.femal" in unknown
    assert "no country names" in no_countries


def test_a_broken_translation_file_is_a_config_error(translations: Path) -> None:
    (translations / "fr.toml").write_text("[fields\nlabel = ", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"fr\.toml is not valid UTF-8 TOML"):
        load_labels(FRENCH)


def test_report_texts_and_unlabelled_choices() -> None:
    french = load_labels(FRENCH)
    assert french.report_text("dimension.age_band") == "Tranche d'âge"
    assert french.report_text("indicator.identified_or_referred") == "Victimes identifiées ou orientées"
    assert french.report_text("dimension.no_such_dimension") == "no_such_dimension"
    # Roster ids and location codes have no translation: the name itself.
    assert french.choice("stakeholder", "bc_maesot") == "bc_maesot"
    for name in ind.DIMENSIONS + ind.MULTI_RESPONSE_DIMENSIONS:
        assert f"report.dimension.{name}" in french.texts
    for variant in ind.VARIANTS:
        assert f"report.indicator.{variant}" in french.texts
