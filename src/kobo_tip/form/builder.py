"""Settings -> the XLSForm of contract section 2 as plain sheets (rows of column -> text)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from kobo_tip import indicator as ind
from kobo_tip.cod_ab import name_order
from kobo_tip.config import Location, Settings
from kobo_tip.form.name_examples import PLACEHOLDER, name_examples
from kobo_tip.labels import Labels, country_codes


def _unicode_class(kinds: str) -> str:
    """A regex class body of every character of the Basic Multilingual Plane whose Unicode
    category starts with one of ``kinds`` (``L`` letters, ``M`` marks), as ranges of \\uXXXX
    escapes: the same in JavaScript (Enketo, ODK Web Forms) and Java (ODK Collect), which \\p{L}
    is not (Enketo lacks it). Digits of every script, punctuation, symbols, spaces and emoji
    (outside the plane) are in neither class."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code))[0] not in kinds or 0xD800 <= code <= 0xDFFF:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(f"\\u{a:04X}" if a == b else f"\\u{a:04X}-\\u{b:04X}" for a, b in ranges)


# The first two letters, each with the vowel and tone marks written on it: a third letter is refused.
# One letter is taken, for a name that has only one (a Chinese given name of one character, a
# Burmese syllable such as မြ); the person key pads it with 9 (contract section 3). A Thai leading
# vowel (the เ of เม) is a letter in Unicode, so it counts as one. A Thai or Burmese
# letter can carry three marks, so the length check stops pasted text before the regex runs.
_UIC_MAX_CHARACTERS = 12
_UIC_CONSTRAINT = (
    f"string-length(.) <= {_UIC_MAX_CHARACTERS} and "
    f"regex(., '^([{_unicode_class('L')}][{_unicode_class('M')}]*){{1,2}}$')"
)
_UIC_UNKNOWN = "99"
# Choice names the form's logic tests, at their places in the contract's lists.
_YES = ind.CHOICES["yes_no"][0]
_REFERRED = ind.CHOICES["action"][1]
*_EXPLOITATION_CATEGORIES, _GBV = ind.CHOICES["person_category"]
# Age on the event date against the birth year: one year apart at most, five if the age is estimated.
_AGE_CONSTRAINT = (
    f". >= 0 and . <= 120 and (${{{ind.BIRTH_YEAR}}} = '' or ${{{ind.EVENT_DATE}}} = '' or "
    f"abs(int(format-date(${{{ind.EVENT_DATE}}}, '%Y')) - ${{{ind.BIRTH_YEAR}}} - .) <= "
    f"if(${{{ind.AGE_ESTIMATED}}} = '{ind.CHOICES['yes_no'][0]}', 5, 1))"
)
# Presumed and confirmed trafficking exclude each other (contract section 2).
_PRESUMED, _CONFIRMED = ind.CHOICES["person_category"][:2]
_CATEGORY_CONSTRAINT = (
    f"count-selected(.) >= 1 and not(selected(., '{_PRESUMED}') and selected(., '{_CONFIRMED}'))"
)
_OTHER_ORG_MAX = 80
_NOTE = "note"
_DATE = "date"
_FIELD_LIST = "field-list"
_AUTOCOMPLETE = "autocomplete"
# Above this many choices under one parent, a location question searches as one types.
LONG_LIST = 12
_META_TYPES = ("start", "end", "today", "deviceid", "username")


@dataclass(frozen=True)
class Sheet:
    """One worksheet: its header and its rows (a missing column is an empty cell)."""

    name: str
    columns: tuple[str, ...]
    rows: list[dict[str, str]]


@dataclass(frozen=True)
class FormSheets:
    survey: Sheet
    choices: Sheet
    settings: Sheet

    def __iter__(self) -> Iterator[Sheet]:
        return iter((self.survey, self.choices, self.settings))


@dataclass(frozen=True)
class _Question:
    name: str
    type: str = ""  # default: select_one/select_multiple of the field's list
    required: bool = False
    constraint: str = ""
    relevant: str = ""
    choice_filter: str = ""
    appearance: str = ""
    default: str = ""


@dataclass(frozen=True)
class _Group:
    name: str
    children: list[_Question | _Group]
    relevant: str = ""


def build_sheets(settings: Settings, version: str, labels: Sequence[Labels]) -> FormSheets:
    """The survey, choices and settings sheets; ``labels`` has one entry per form language."""
    choices = _choice_rows(settings, labels)
    return FormSheets(
        survey=_survey_sheet(settings, version, labels),
        choices=Sheet(
            "choices",
            ("list_name", "name", *_lang_columns("label", labels), *_filter_columns(choices)),
            choices,
        ),
        settings=_settings_sheet(settings, version, labels, choices),
    )


# --- survey ---------------------------------------------------------------------------------


def _survey_sheet(settings: Settings, version: str, labels: Sequence[Labels]) -> Sheet:
    rows = [{"type": meta, "name": meta} for meta in _META_TYPES]
    rows.append({"type": "calculate", "name": ind.FORM_VERSION, "calculation": f"'{version}'"})
    for group in _groups(settings):
        rows.extend(_group_rows(group, labels))
    columns = (
        "type",
        "name",
        *_lang_columns("label", labels),
        *_lang_columns("hint", labels),
        "required",
        *_lang_columns("required_message", labels),
        "constraint",
        *_lang_columns("constraint_message", labels),
        "relevant",
        "choice_filter",
        "appearance",
        "default",
        "calculation",
    )
    return Sheet("survey", columns, rows)


def _groups(settings: Settings) -> list[_Group]:
    form = settings.form
    person: list[_Question | _Group] = [
        _Question(ind.UIC_GIVEN, "text", required=True, constraint=_UIC_CONSTRAINT),
        _Question(
            ind.UIC_MOTHER, "text", required=True, constraint=f". = '{_UIC_UNKNOWN}' or ({_UIC_CONSTRAINT})"
        ),
        _Question(
            ind.BIRTH_YEAR,
            "integer",
            required=True,
            constraint=". >= 1900 and . <= int(format-date(today(), '%Y'))",
        ),
        _Question(ind.GENDER, required=True),
        # Asked before the age, whose check against the birth year depends on it.
        _Question(ind.AGE_ESTIMATED),
        _Question(ind.AGE_YEARS, "integer", required=True, constraint=_AGE_CONSTRAINT),
        _Question(ind.COUNTRY_ORIGIN, required=True, appearance=_AUTOCOMPLETE),
    ]
    if form.ethnicities:
        person.append(_Question(ind.ETHNICITY))
    if form.disability:
        wg: list[_Question | _Group] = [_Question(name) for name in ind.WG_FIELDS]
        person.append(_Group(ind.GROUP_WG, wg, relevant=f"${{{ind.AGE_YEARS}}} >= 5"))
    person.append(_Question(ind.REPORTED_ELSEWHERE))
    return [
        _Group(ind.GROUP_INTRO, _intro_questions()),
        _Group(ind.GROUP_EVENT, _event_questions(settings)),
        _Group(ind.GROUP_PERSON, person, relevant=f"${{{ind.CONSENT}}} = '{_YES}'"),
        _Group(
            ind.GROUP_REFERRAL,
            _referral_questions(settings),
            relevant=f"selected(${{{ind.ACTION}}}, '{_REFERRED}')",
        ),
    ]


def _intro_questions() -> list[_Question | _Group]:
    """The consent statement, whether the person is in immediate danger (asked first: the
    emergency procedure does not wait for consent; the form goes on), then consent and who gave it."""
    consented = f"${{{ind.CONSENT}}} = '{_YES}'"
    return [
        _Question(ind.CONSENT_STATEMENT, _NOTE),
        _Question(ind.IMMEDIATE_DANGER, required=True),
        _Question(ind.EMERGENCY_REFERRAL, _NOTE, relevant=f"${{{ind.IMMEDIATE_DANGER}}} = '{_YES}'"),
        _Question(ind.CONSENT, required=True),
        _Question(ind.CONSENT_BY, required=True, relevant=consented),
    ]


def _referral_questions(settings: Settings) -> list[_Question | _Group]:
    """Services and outcome, the receiving organisation (only with a referral directory), the
    referral date, consent to share the person's information with it, and a follow-up date."""
    event_date = f"${{{ind.EVENT_DATE}}}"
    questions: list[_Question | _Group] = [
        _Question(ind.SERVICES, required=True),
        _Question(ind.REFERRAL_OUTCOME),
    ]
    if settings.form.referral_directory:
        questions.append(_Question(ind.REFERRAL_ORG))
    questions += [
        _Question(ind.REFERRAL_DATE, _DATE, constraint=f". >= {event_date} and . <= today()"),
        _Question(ind.CONSENT_TO_SHARE, required=True),
        _Question(ind.FOLLOW_UP_DATE, _DATE, constraint=f". >= {event_date}"),
    ]
    return questions


def _event_questions(settings: Settings) -> list[_Question | _Group]:
    admin1 = [loc for loc in settings.form.locations if loc.level == 1]
    admin2 = [loc for loc in settings.form.locations if loc.level == 2]
    questions: list[_Question | _Group] = [
        _Question(
            ind.EVENT_DATE,
            _DATE,
            required=True,
            constraint=f". <= today() and . >= date('{settings.project.start_date.isoformat()}')",
        ),
        _Question(ind.ACTION, required=True, constraint="count-selected(.) >= 1"),
        _Question(ind.STAKEHOLDER_TYPE, required=True),
        _Question(
            ind.STAKEHOLDER_ID,
            required=True,
            choice_filter=f"type=${{{ind.STAKEHOLDER_TYPE}}} or name='{ind.NOT_LISTED}'",
        ),
        _Question(
            ind.STAKEHOLDER_OTHER_ORG,
            "text",
            required=True,
            constraint=f"string-length(.) <= {_OTHER_ORG_MAX}",
            relevant=f"${{{ind.STAKEHOLDER_ID}}} = '{ind.NOT_LISTED}'",
        ),
        _Question(
            ind.IDENTIFICATION_COUNTRY,
            required=True,
            appearance=_AUTOCOMPLETE,
            default=settings.project.country,
            choice_filter=" and ".join(f"name != '{extra}'" for extra in ind.COUNTRY_EXTRAS),
        ),
    ]
    if admin1:
        questions.append(
            _Question(
                ind.LOCATION_ADMIN1,
                required=True,
                choice_filter=f"country=${{{ind.IDENTIFICATION_COUNTRY}}}",
                relevant=_one_of(ind.IDENTIFICATION_COUNTRY, (loc.parent for loc in admin1)),
                appearance=_search_if_long(loc.parent for loc in admin1),
            )
        )
    if admin2:
        questions.append(
            _Question(
                ind.LOCATION_ADMIN2,
                choice_filter=f"parent=${{{ind.LOCATION_ADMIN1}}}",
                relevant=_one_of(ind.LOCATION_ADMIN1, (loc.parent for loc in admin2)),
                appearance=_search_if_long(loc.parent for loc in admin2),
            )
        )
    exploitation = " or ".join(
        f"selected(${{{ind.PERSON_CATEGORY}}}, '{name}')" for name in _EXPLOITATION_CATEGORIES
    )
    questions += [
        _Question(ind.CASE_REF, "text"),
        _Question(ind.PERSON_CATEGORY, required=True, constraint=_CATEGORY_CONSTRAINT),
        _Question(ind.EXPLOITATION_TYPE, relevant=exploitation),
        _Question(ind.GBV_TYPE, relevant=f"selected(${{{ind.PERSON_CATEGORY}}}, '{_GBV}')"),
    ]
    return questions


def _search_if_long(parents: Iterable[str]) -> str:
    """``autocomplete`` (a text box that narrows the list as one types, in ODK Collect,
    KoboCollect and Web Forms) when the longest list a choice filter leaves (the choices of one
    parent) is too long to scroll; otherwise the plain list."""
    return _AUTOCOMPLETE if max(Counter(parents).values(), default=0) > LONG_LIST else ""


def _one_of(field_name: str, values: Iterable[str]) -> str:
    """``${field} = 'a' or ${field} = 'b'`` over the distinct values, in first-seen order."""
    return " or ".join(f"${{{field_name}}} = '{value}'" for value in dict.fromkeys(values))


def _group_rows(group: _Group, labels: Sequence[Labels]) -> list[dict[str, str]]:
    rows = [
        {
            "type": "begin_group",
            "name": group.name,
            "appearance": _FIELD_LIST,
            "relevant": group.relevant,
            **{_col("label", lab): lab.group(group.name) for lab in labels},
        }
    ]
    for child in group.children:
        rows.extend(
            _group_rows(child, labels) if isinstance(child, _Group) else [_question_row(child, labels)]
        )
    rows.append({"type": "end_group", "name": group.name})
    return rows


def _question_row(question: _Question, labels: Sequence[Labels]) -> dict[str, str]:
    row = {
        "type": question.type or _select_type(question.name),
        "name": question.name,
        "relevant": question.relevant,
        "choice_filter": question.choice_filter,
        "appearance": question.appearance,
        "default": question.default,
    }
    kinds = ["label", "hint"]
    if question.required:
        row["required"] = "yes"  # XLSForm's keyword, not the yes_no choice
        kinds.append("required_message")
    if question.constraint:
        row["constraint"] = question.constraint
        kinds.append("constraint_message")
    examples = name_examples(lab.language.code for lab in labels)
    for lab in labels:
        row.update(
            {_col(kind, lab): lab.field(question.name, kind).replace(PLACEHOLDER, examples) for kind in kinds}
        )
    return row


def _select_type(name: str) -> str:
    kind = "select_multiple" if name in ind.SELECT_MULTIPLE_FIELDS else "select_one"
    return f"{kind} {ind.FIELD_LIST[name]}"


# --- choices --------------------------------------------------------------------------------


def _choice_rows(settings: Settings, labels: Sequence[Labels]) -> list[dict[str, str]]:
    form = settings.form
    rows: list[dict[str, str]] = []
    for list_name, names in ind.CHOICES.items():
        rows.extend(_translated_row(labels, list_name, name) for name in names)
    rows.extend(_copied_row(labels, "stakeholder", s.id, s.name, type=s.type) for s in form.roster)
    rows.append(_translated_row(labels, "stakeholder", ind.NOT_LISTED))
    rows.extend(_copied_row(labels, "referral_org", org.id, org.name) for org in form.referral_directory)
    if form.referral_directory:
        rows.append(_translated_row(labels, "referral_org", ind.NOT_LISTED))
    rows.extend(_translated_row(labels, "country", code) for code in (*country_codes(), *ind.COUNTRY_EXTRAS))
    rows.extend(_location_rows(form.locations, labels))
    rows.extend(_copied_row(labels, "ethnicity", name, name) for name in form.ethnicities)
    return rows


def _location_rows(locations: Sequence[Location], labels: Sequence[Labels]) -> list[dict[str, str]]:
    """Admin1 then admin2 choices, each labelled with its name in every form language, in the
    order of the names in the form's default (first) language: one choices list has one order
    for all its languages, and the default language is the one most enumerators read."""
    order = name_order(labels[0].language.code)
    default = labels[0].language.code
    rows = []
    for loc in sorted(locations, key=lambda loc: (loc.level, order(loc.name_in(default)))):
        filters = {"country": loc.parent} if loc.level == 1 else {"parent": loc.parent}
        rows.append(
            {
                "list_name": f"admin{loc.level}",
                "name": loc.code,
                **{_col("label", lab): loc.name_in(lab.language.code) for lab in labels},
                **filters,
            }
        )
    return rows


def _translated_row(labels: Sequence[Labels], list_name: str, name: str) -> dict[str, str]:
    return {
        "list_name": list_name,
        "name": name,
        **{_col("label", lab): lab.choice(list_name, name) for lab in labels},
    }


def _copied_row(
    labels: Sequence[Labels], list_name: str, name: str, label: str, **filters: str
) -> dict[str, str]:
    # Roster and ethnicity names have no translation: the same text in every language.
    return {"list_name": list_name, "name": name, **{_col("label", lab): label for lab in labels}, **filters}


def _filter_columns(rows: list[dict[str, str]]) -> tuple[str, ...]:
    fixed = {"list_name", "name"}
    return tuple(
        key for key in dict.fromkeys(k for row in rows for k in row) if key not in fixed and "::" not in key
    )


# --- settings -------------------------------------------------------------------------------


def _settings_sheet(
    settings: Settings, version: str, labels: Sequence[Labels], choices: list[dict[str, str]]
) -> Sheet:
    row = {
        "form_title": settings.form.title,
        "form_id": settings.form.form_id,
        # The XForm's root node: without it a converter given only the XLSX (Central's, anyone's)
        # names the root <data>, not the <form_id> kobo-tip validated.
        "name": settings.form.form_id,
        "version": version,
        "default_language": labels[0].language.label,
        "instance_name": f"concat(${{{ind.EVENT_DATE}}}, ' ', ${{{ind.STAKEHOLDER_ID}}})",
    }
    pairs = [(r["list_name"], r["name"]) for r in choices]
    if len(set(pairs)) != len(pairs):
        row["allow_choice_duplicates"] = "yes"
    return Sheet("settings", tuple(row), [row])


def _lang_columns(kind: str, labels: Sequence[Labels]) -> tuple[str, ...]:
    return tuple(_col(kind, lab) for lab in labels)


def _col(kind: str, labels: Labels) -> str:
    return f"{kind}::{labels.language.label}"
