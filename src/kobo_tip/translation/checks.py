"""What a translated file must satisfy before it becomes the project's translation: every text
translated, placeholders and numbers kept, and lengths a phone can show."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping

from kobo_tip.labels import english_texts, is_country_name
from kobo_tip.translation.catalogue import numbers, placeholders

# Displayed characters (vowel and tone marks written on a letter take no place of their own).
# ODK Collect wraps every text and cuts none, so the limits keep a screen readable rather than
# possible: a group's title heads the screen of a field-list group, and an answer is one row of a
# list a case worker scans, about 35 characters a line on a 360 dp phone at the default font size;
# 60 and 100 characters are two and three lines. Any other text may grow to twice its English
# length (at least 40): the W3C's "Text size in translation" gives up to 200-300 % for short
# strings and about 130-170 % for longer ones, so more than twice is an added or pasted text.
GROUP_LIMIT = 60
CHOICE_LIMIT = 100
GROWTH_LIMIT = 2
SHORT_TEXT_LIMIT = 40
_MARKS = {"Mn", "Me", "Cf"}
_SHOWN_MISSING = 5


def displayed_length(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch) not in _MARKS)


def length_limit(key: str, english: str) -> int:
    if key.startswith("groups."):
        return GROUP_LIMIT
    if key.startswith("choices."):
        return CHOICE_LIMIT
    return max(SHORT_TEXT_LIMIT, GROWTH_LIMIT * displayed_length(english))


def problems(translated: Mapping[str, str]) -> list[str]:
    """One phrase per problem, in the order of en.toml; empty when the file can be imported."""
    english = english_texts()
    found = [
        f"{key} is not a kobo-tip text (check its spelling)"
        for key in translated
        if key not in english and not is_country_name(key)
    ]
    missing = [key for key in english if not translated.get(key, "").strip()]
    if missing:
        shown = ", ".join(missing[:_SHOWN_MISSING]) + (", ..." if len(missing) > _SHOWN_MISSING else "")
        found.append(f"{len(missing)} text(s) have no translation ({shown})")
    for key, source in english.items():
        if key not in missing:
            found.extend(
                f"{key} {problem}" for problem in _text_problems(key, source, translated[key].strip())
            )
    return found


def _text_problems(key: str, source: str, text: str) -> list[str]:
    found = []
    lost = Counter(placeholders(source)) - Counter(placeholders(text))
    added = Counter(placeholders(text)) - Counter(placeholders(source))
    if lost:
        found.append(f"lost the placeholder(s) {', '.join(sorted(lost))}")
    if added:
        found.append(f"has placeholder(s) the English lacks: {', '.join(sorted(added))}")
    missing_numbers = Counter(numbers(source)) - Counter(numbers(text))
    if missing_numbers:
        found.append(f"lost the number(s) {', '.join(str(n) for n in sorted(missing_numbers))}")
    length, limit = displayed_length(text), length_limit(key, source)
    if length > limit:
        found.append(f"is {length} characters long, more than a phone screen should show here ({limit})")
    return found
