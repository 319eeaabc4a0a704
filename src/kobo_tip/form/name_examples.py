"""The examples of the name-code hint (``uic_given``): names written in the scripts of the form's
languages, so a Cambodian team sees Khmer names and no Thai ones."""

from __future__ import annotations

from collections.abc import Iterable

# A name and the first two letters (with their marks) that the enumerator types for it, per
# ISO 639-1 language. Thai shows a leading vowel (the เ of เมย์), a letter of its own in Unicode.
EXAMPLES_BY_LANGUAGE: dict[str, tuple[tuple[str, str], ...]] = {
    "th": (("สมศรี", "สม"), ("ที่นี่", "ที่นี่"), ("เมย์", "เม")),
    "km": (("សុភាព", "សុភា"), ("ដារា", "ដារា")),
    "lo": (("ສົມພອນ", "ສົມ"),),
    "ar": (("مريم", "مر"),),
    "uk": (("Олена", "Ол"),),
    "ru": (("Олена", "Ол"),),
    "es": (("José", "Jo"),),
    "pt": (("João", "Jo"),),
}
# Shown in every form, and alone when no language has examples of its own: a name in Latin
# letters, which every project's staff meet.
NEUTRAL_EXAMPLES: tuple[tuple[str, str], ...] = (("Maria", "Ma"),)
PLACEHOLDER = "{examples}"


def name_examples(language_codes: Iterable[str]) -> str:
    """``Maria → Ma; សុភាព → សុភា``: the neutral example, then those of each form language."""
    pairs = dict(NEUTRAL_EXAMPLES)
    for code in language_codes:
        pairs.update(EXAMPLES_BY_LANGUAGE.get(code, ()))
    return "; ".join(f"{name} → {letters}" for name, letters in pairs.items())
