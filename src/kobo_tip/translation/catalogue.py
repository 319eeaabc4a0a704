"""Every text of one language, as a translator needs it: key, English source, where it appears,
the current translation, and what must not change."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kobo_tip.config import Language
from kobo_tip.labels import REPORT_PREFIX, english_texts, own_translation

# {k} in a report key, ${field} in a form text: a name the program fills in.
_PLACEHOLDER = re.compile(r"\$\{\w+\}|\{\w+\}")
_NUMBER = re.compile(r"\d+")
_KINDS = {
    "label": "question text",
    "hint": "hint under the question",
    "required_message": "message when the question is left empty",
    "constraint_message": "message when the answer is refused",
}


@dataclass(frozen=True)
class Entry:
    key: str
    english: str
    where: str
    translation: str  # empty when the language has none
    kept: tuple[str, ...]  # placeholders and numbers, each as in the English

    @property
    def note(self) -> str:
        """The translator's comment: what must stay as it is."""
        if not self.kept:
            return ""
        return "Keep unchanged: " + ", ".join(dict.fromkeys(self.kept)) + "."


def catalogue(language: Language) -> list[Entry]:
    """Every text of en.toml (form and report, any table), with ``language``'s current translation."""
    own = own_translation(language).texts
    return [
        Entry(key, english, where_it_appears(key), own.get(key, ""), kept_parts(english))
        for key, english in english_texts().items()
    ]


def kept_parts(text: str) -> tuple[str, ...]:
    """The parts of ``text`` a translation must carry unchanged, in the order they appear."""
    # The name-code examples are a placeholder ({examples}), filled per form language at build time.
    return (*_PLACEHOLDER.findall(text), *_NUMBER.findall(_PLACEHOLDER.sub("", text)))


def numbers(text: str) -> list[int]:
    """The numbers of ``text`` outside placeholders, by value (Thai or Arabic-Indic digits count)."""
    return sorted(int(digits) for digits in _NUMBER.findall(_PLACEHOLDER.sub("", text)))


def placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


def where_it_appears(key: str) -> str:
    """``fields.consent.hint`` -> "Form, question consent: hint under the question"."""
    parts = key.split(".")
    if key.startswith(REPORT_PREFIX):
        return f"Report: {' / '.join(parts[1:])}"
    if parts[0] == "groups":
        return f"Form, title of the screen (group) {parts[1]}"
    if parts[0] == "fields" and len(parts) == 3:
        return f"Form, question {parts[1]}: {_KINDS.get(parts[2], parts[2])}"
    if parts[0] == "choices" and len(parts) == 3:
        return f"Form, answer {parts[2]} of the list {parts[1]}"
    return key
