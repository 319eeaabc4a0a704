"""Export a language of the project for a translator, and import the translated file as the
project's ``translations/<code>.toml`` (beside the config), which overrides the shipped texts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kobo_tip.config import TRANSLATIONS_FOLDER, Language, Settings, parse_language
from kobo_tip.errors import ConfigError
from kobo_tip.labels import REVIEWED_KEY, english_texts, field_labels, load_labels
from kobo_tip.translation.catalogue import catalogue
from kobo_tip.translation.checks import problems
from kobo_tip.translation.files import FORMATS, read_file, write_file

_SHOWN_PROBLEMS = 12


@dataclass(frozen=True)
class Exported:
    path: Path
    texts: int
    untranslated: int


@dataclass(frozen=True)
class Imported:
    path: Path
    language: Language
    texts: int
    reviewed: bool


def export_translation(
    settings: Settings, language_label: str, *, fmt: str | None = None, out: Path | None = None
) -> Exported:
    """Write every text of the language, translated or not, to ``out`` (default
    translations/<code>.<fmt> beside the config)."""
    language = _project_language(settings, language_label)
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if fmt is not None and suffix in FORMATS and suffix != fmt:
        raise ConfigError(f"--format {fmt} would write {out} in another format; name it .{fmt}.")
    if fmt is None:
        fmt = suffix if suffix in FORMATS else FORMATS[0]
    path = out if out is not None else settings.path.parent / TRANSLATIONS_FOLDER / f"{language.code}.{fmt}"
    if not path.is_absolute():
        path = settings.path.parent / path
    entries = catalogue(language)
    write_file(entries, language, path, fmt)
    return Exported(path, len(entries), sum(1 for entry in entries if not entry.translation))


def import_translation(settings: Settings, path: Path, *, reviewed: bool = False) -> Imported:
    """Check a translated file and write it as the project's translation of its language; on any
    problem nothing is written and the error names each one."""
    translated = read_file(path)
    found = problems(translated.texts)
    if found:
        shown = "; ".join(found[:_SHOWN_PROBLEMS])
        more = f"; and {len(found) - _SHOWN_PROBLEMS} more" if len(found) > _SHOWN_PROBLEMS else ""
        raise ConfigError(
            f"{path.name} was not imported: fix {len(found)} problem(s) in it and import it again: "
            f"{shown}{more}."
        )
    target = settings.path.parent / TRANSLATIONS_FOLDER / f"{translated.language.code}.toml"
    _write_toml(target, translated.language, translated.texts, reviewed=reviewed, source=path.name)
    # Texts are cached per language for the process: the next build must read the new file.
    load_labels.cache_clear()
    field_labels.cache_clear()
    return Imported(target, translated.language, len(translated.texts), reviewed)


def _project_language(settings: Settings, label: str) -> Language:
    try:
        language = parse_language(label)
    except ValueError as exc:
        raise ConfigError(f"--language: {exc}.") from exc
    configured = next((lang for lang in settings.project.languages if lang.code == language.code), None)
    if configured is not None:
        return configured
    folder = settings.path.parent / TRANSLATIONS_FOLDER
    return dataclasses.replace(language, folder=folder) if folder.is_dir() else language


def _write_toml(
    path: Path, language: Language, texts: dict[str, str], *, reviewed: bool, source: str
) -> None:
    """Tables in the order of en.toml; a JSON string is a valid TOML basic string."""
    tables: dict[str, list[str]] = {}
    for key in (*english_texts(), *(key for key in texts if key not in english_texts())):
        if key in texts:
            head, _, leaf = key.rpartition(".")
            tables.setdefault(head, []).append(f"{leaf} = {json.dumps(texts[key], ensure_ascii=False)}")
    lines = [
        f"# {language.label} texts of the form and reports, imported from {source} on "
        f"{dt.date.today().isoformat()} by 'kobo-tip translations import'.",
        "# They override the texts kobo-tip ships; export, translate and import again to change them.",
    ]
    if reviewed:
        lines.append(f"{REVIEWED_KEY} = true  # the project has reviewed these texts")
    for head, rows in tables.items():
        lines += ["", f"[{head}]", *rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"Cannot write {path}: {exc.strerror}; check the folder's permissions.") from None
