"""Form and report texts in one language: translations/<code>.toml, falling back to English.

Each translation file is keyed by the names the indicator specification fixes (fields, groups,
choices) plus a ``[report]`` table. A project's own file (``translations/<code>.toml`` beside the
config) overrides and adds to the shipped one. A form text a translation lacks is taken from
English and counted in a warning, so no label is ever blank. Country names come from pycountry's
gettext catalogues.
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
REPORT_PREFIX = "report."
COUNTRY_PREFIX = "choices.country"
# A translation file's top-level flag: ``reviewed = false`` until the project has checked its texts.
REVIEWED_KEY = "reviewed"


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
        translated = self.country_names.gettext(english)
        if translated == english and english != country.name:
            # Some catalogues (Arabic, Thai) translate only the official name ("Iran, Islamic
            # Republic of"), not the common one ("Iran"): a translated official name beats English.
            official = self.country_names.gettext(country.name)
            return official if official != country.name else english
        return translated

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
    """The texts of ``language``; missing ones come from English, counted in ``warnings``."""
    english = _flatten(_read_toml(TRANSLATIONS_DIR / "en.toml"))
    warnings: list[str] = []
    own = own_translation(language)
    if language.code != FALLBACK.code:
        missing = [key for key in english if key not in own.texts and not key.startswith(REPORT_PREFIX)]
        if missing:
            warnings.append(
                f"{language.label}: {len(missing)} form text(s) have no translation and show in English; "
                "export them for a translator with "
                f'kobo-tip translations export --language "{language.label}".'
            )
        unknown = [key for key in own.texts if key not in english and not is_country_name(key)]
        if unknown:
            warnings.append(
                f"{language.label}: {', '.join(path.name for path in own.paths)} has key(s) that English "
                f"lacks, ignored (check their spelling): {', '.join(unknown)}."
            )
        if own.texts and not own.reviewed:
            warnings.append(
                f"{language.label}: the translation kobo-tip ships has not been reviewed; have a native "
                "speaker check an export of it, then import it with "
                "kobo-tip translations import FILE --reviewed."
            )
    texts = {key: own.texts.get(key, text) for key, text in english.items()}
    texts.update({key: text for key, text in own.texts.items() if is_country_name(key)})
    country_names = _country_catalogue(language)
    if country_names is None:
        warnings.append(f"{language.label}: pycountry has no country names in this language; English used.")
        country_names = gettext.NullTranslations()
    return Labels(language=language, texts=texts, warnings=tuple(warnings), country_names=country_names)


@dataclass(frozen=True)
class OwnTranslation:
    """A language's own texts (no English fallback): the shipped file's, overridden key by key by the
    project's file; ``reviewed`` is false when the file that decides says ``reviewed = false``."""

    texts: Mapping[str, str]
    reviewed: bool
    paths: tuple[Path, ...]


def own_translation(language: Language) -> OwnTranslation:
    texts: dict[str, str] = {}
    reviewed = True
    paths = _translation_files(language)
    for path in paths:
        table = _read_toml(path)
        # The review mark is a top-level boolean, not a text; the project's file, read last, decides.
        mark = table.pop(REVIEWED_KEY, None)
        if isinstance(mark, bool):
            reviewed = mark
        texts.update(_flatten(table))
    return OwnTranslation(texts=texts, reviewed=reviewed, paths=paths)


def is_country_name(key: str) -> bool:
    """``choices.country.tr``: a translation may name a country its pycountry catalogue lacks
    (the Thai one has no "Türkiye" yet); any ISO 3166-1 alpha-2 code is a valid key."""
    head, _, code = key.rpartition(".")
    return head == COUNTRY_PREFIX and pycountry.countries.get(alpha_2=code.upper()) is not None


def english_texts() -> dict[str, str]:
    """Every text key with its English source, in the order of en.toml."""
    return _flatten(_read_toml(TRANSLATIONS_DIR / "en.toml"))


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


def _translation_files(language: Language) -> tuple[Path, ...]:
    """The shipped file, then the project's (``translations/`` beside the config), which overrides
    and adds to it; for each, the full code's file or else the primary language's (fr-CA -> fr)."""
    folders = [TRANSLATIONS_DIR, *([language.folder] if language.folder else [])]
    found = []
    for folder in folders:
        codes = dict.fromkeys((language.code, language.code.split("-")[0].lower()))
        path = next((folder / f"{code}.toml" for code in codes if (folder / f"{code}.toml").is_file()), None)
        if path is not None:
            found.append(path)
    return tuple(found)


def shipped_languages() -> tuple[str, ...]:
    """The codes of the translations kobo-tip ships."""
    return tuple(sorted(path.stem for path in TRANSLATIONS_DIR.glob("*.toml")))


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
