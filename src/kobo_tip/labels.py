"""Form and report texts in one language: translations/<code>.toml, falling back to English.

Each translation file is keyed by the names the indicator specification fixes (fields, groups,
choices) plus a ``[report]`` table. A text a translation lacks is taken from English and named in
a warning, so no label is ever blank. Country names come from pycountry's gettext catalogues.
"""

from __future__ import annotations

import functools
import gettext
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycountry

from kobo_tip.config import Language
from kobo_tip.errors import ConfigError

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
FALLBACK = Language(label="English (en)", name="English", code="en")


@dataclass(frozen=True)
class Labels:
    """Every text of one language, under dotted keys such as ``fields.consent.hint``."""

    language: Language
    texts: Mapping[str, str]
    warnings: tuple[str, ...]
    country_names: gettext.NullTranslations

    def field(self, name: str, kind: str = "label") -> str:
        """A field's ``label``, ``hint``, ``required_message`` or ``constraint_message``."""
        return self.texts[f"fields.{name}.{kind}"]

    def group(self, name: str) -> str:
        return self.texts[f"groups.{name}"]

    def choice(self, list_name: str, name: str) -> str:
        """A choice's label; the name itself when the list has no text for it (roster, locations)."""
        text = self.texts.get(f"choices.{list_name}.{name}")
        if text is not None:
            return text
        if list_name == "country":
            return self.country(name)
        return name

    def country(self, code: str) -> str:
        """The name of an ISO 3166-1 alpha-2 country in this language (English when untranslated)."""
        country = pycountry.countries.get(alpha_2=code.upper())
        if country is None:
            return code
        english = getattr(country, "common_name", None) or country.name
        return self.country_names.gettext(english)

    def report_text(self, key: str) -> str:
        """A report text such as ``dimension.age_band``; the key's last part when there is none."""
        return self.texts.get(f"report.{key}", key.rsplit(".", 1)[-1])


def country_codes() -> tuple[str, ...]:
    """Lower-case ISO 3166-1 alpha-2 codes, in the order of their English names (accents ignored)."""
    english = load_labels(FALLBACK)

    def sort_key(code: str) -> str:
        decomposed = unicodedata.normalize("NFKD", english.country(code))
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()

    return tuple(sorted((c.alpha_2.lower() for c in pycountry.countries), key=sort_key))


@functools.cache
def load_labels(language: Language) -> Labels:
    """The texts of ``language``; missing ones come from English, each named in ``warnings``."""
    english = _flatten(_read_toml(TRANSLATIONS_DIR / "en.toml"))
    warnings: list[str] = []
    path = _translation_file(language)
    own = _flatten(_read_toml(path)) if path else {}
    if language.code != FALLBACK.code:
        missing = [key for key in english if key not in own]
        if missing:
            where = f"in {path.name}" if path else f"(no {language.code}.toml: {how_to_translate(language)})"
            warnings.append(
                f"{language.label}: {len(missing)} text(s) have no translation {where}; English used for "
                f"{_describe(missing)}."
            )
        unknown = [key for key in own if key not in english]
        if path and unknown:
            warnings.append(
                f"{language.label}: {path.name} has key(s) that English lacks, ignored "
                f"(check their spelling): {', '.join(unknown)}."
            )
    texts = {key: own.get(key, text) for key, text in english.items()}
    country_names = _country_catalogue(language)
    if country_names is None:
        warnings.append(f"{language.label}: pycountry has no country names in this language; English used.")
        country_names = gettext.NullTranslations()
    return Labels(language=language, texts=texts, warnings=tuple(warnings), country_names=country_names)


@functools.cache
def field_labels(name: str) -> frozenset[str]:
    """The label of field ``name`` in every translation shipped (an export with labels as headers
    names its columns so)."""
    labels = set()
    for path in TRANSLATIONS_DIR.glob("*.toml"):
        text = _flatten(_read_toml(path)).get(f"fields.{name}.label")
        if text:
            labels.add(text)
    return frozenset(labels)


def _translation_file(language: Language) -> Path | None:
    folders = [language.folder] if language.folder else []
    for folder in (*folders, TRANSLATIONS_DIR):
        for code in dict.fromkeys((language.code, language.code.split("-")[0].lower())):
            path = folder / f"{code}.toml"
            if path.is_file():
                return path
    return None


def shipped_languages() -> tuple[str, ...]:
    """The codes of the translations kobo-tip ships."""
    return tuple(sorted(path.stem for path in TRANSLATIONS_DIR.glob("*.toml")))


def how_to_translate(language: Language) -> str:
    """How a team adds ``language``: a copy of the English texts in a folder beside the config."""
    return (
        f"copy {TRANSLATIONS_DIR / 'en.toml'} to translations/{language.code}.toml beside the config "
        "and translate its texts"
    )


def _country_catalogue(language: Language) -> gettext.NullTranslations | None:
    primary = language.code.split("-")[0].lower()
    if primary == FALLBACK.code:
        return gettext.NullTranslations()  # pycountry's names are English
    codes = list(dict.fromkeys((language.code.replace("-", "_"), primary)))
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=codes)
    except OSError:
        return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Translation file {path} is not valid UTF-8 TOML: {exc}.") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    texts: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            texts.update(_flatten(value, f"{prefix}{key}."))
        else:
            texts[f"{prefix}{key}"] = str(value)
    return texts


def _describe(keys: list[str]) -> str:
    """``fields.consent (label, hint); choices.gender (female)``: one entry per field or list."""
    grouped: dict[str, list[str]] = {}
    for key in keys:
        head, _, tail = key.rpartition(".")
        grouped.setdefault(head, []).append(tail)
    return "; ".join(f"{head} ({', '.join(tails)})" for head, tails in grouped.items())
