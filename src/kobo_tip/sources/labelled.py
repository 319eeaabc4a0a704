"""Kobo exports made with labels, read back as names: kobo-tip built the form, so it knows what
every question and every choice is called in every form language.

Kobo exports "XML values and headers" (names, what kobo-tip reads), or labels in one of the form's
languages: label values (``Yes``, ``Female``, select_multiple labels joined by spaces, or 0/1
columns per choice), label headers (the question's label, after its groups' labels or names,
joined by ``/`` or another separator). ``ExportReader.row`` turns such a row into the names export
of the same submission. What it cannot map to one name (a label two choices share, a column that
is no question of the form in a labelled export) is refused in one sentence saying how to export.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kobo_tip import indicator as ind
from kobo_tip.answers import field_name, fold
from kobo_tip.config import Settings
from kobo_tip.errors import SourceError
from kobo_tip.form.builder import build_sheets
from kobo_tip.labels import load_labels

log = logging.getLogger("kobo_tip")
HOW_TO_EXPORT = (
    "export the data again with 'XML values and headers' (Kobo: Downloads, Value and header format)"
)
# What Kobo (or a spreadsheet) puts between a group and a question, and a question and a choice.
_SEPARATORS = ("/", "-", ".", ":", ";", "\\", "|", " / ", " - ", " > ")
# Columns that are no question of the form: Kobo's and Central's metadata, by folded field name.
_METADATA = frozenset(
    fold(name)
    for name in (
        "start",
        "end",
        "today",
        "deviceid",
        "username",
        "instanceID",
        "instanceName",
        "rootUuid",
        "deprecatedID",
        "uuid",
        ind.FORM_VERSION,
        "SubmissionDate",
        "SubmitterID",
        "SubmitterName",
        "AttachmentsPresent",
        "AttachmentsExpected",
        "Status",
        "ReviewState",
        "DeviceID",
        "Edits",
        "FormVersion",
        "KEY",
    )
)
# A 0/1 column of one choice of a select_multiple question (Kobo's "separate columns").
_SELECTED = frozenset({"1", "1.0", "true", "yes", "x"})
_NOT_SELECTED = frozenset({"0", "0.0", "false", "no", ""})
_AMBIGUOUS = ""  # the target of a label that names two things
_CACHE_MAX = 10_000  # distinct answers remembered per question


@dataclass(frozen=True)
class _Choices:
    """The choices of one question: names, and each folded label (or name) -> name."""

    names: frozenset[str]
    by_label: Mapping[str, str]  # folded text -> choice name; _AMBIGUOUS where two share it
    order: tuple[str, ...]  # the list's order, in which a rebuilt select_multiple answer is written
    multiple: bool
    longest: int  # the most words a label has


@dataclass(frozen=True)
class ExportVocabulary:
    """Every name and label of the form, in every form language, as an export may spell them."""

    paths: Mapping[str, str]  # field -> its key in a names export (``event/event_date``)
    headers: Mapping[str, str]  # folded header -> field; _AMBIGUOUS where two fields share it
    choice_columns: Mapping[str, tuple[str, str]]  # folded header -> (field, choice name)
    choices: Mapping[str, _Choices]  # select field -> its choices

    @classmethod
    def of(cls, settings: Settings) -> ExportVocabulary:
        return _vocabulary(settings)


def _vocabulary(settings: Settings) -> ExportVocabulary:
    labels = [load_labels(language) for language in settings.project.languages]
    sheets = build_sheets(settings, "", labels)
    label_columns = [column for column in sheets.survey.columns if column.startswith("label::")]
    group_names: list[str] = []
    group_labels: list[list[str]] = []
    paths: dict[str, str] = {}
    spellings: dict[str, set[str]] = {}  # field -> every header a Kobo export may give it
    for row in sheets.survey.rows:
        kind, name = row["type"], row["name"]
        texts = [row.get(column, "") for column in label_columns]
        if kind == "begin_group":
            group_names.append(name)
            group_labels.append(texts)
            continue
        if kind == "end_group":
            group_names.pop()
            group_labels.pop()
            continue
        if not any(texts):
            continue  # metadata and calculations: exported under their names
        paths[name] = "/".join((*group_names, name))
        spellings[name] = set(_header_spellings(name, group_names, group_labels, texts))
    headers = _unique((spelling, name) for name, found in spellings.items() for spelling in found)
    choices = _choices(sheets.choices.rows, [c for c in sheets.choices.columns if c.startswith("label::")])
    choice_columns: dict[str, tuple[str, str] | None] = {}
    for name in ind.SELECT_MULTIPLE_FIELDS & paths.keys():
        own = choices[name]
        for header in spellings[name] | {fold(paths[name])}:
            for text, choice in own.by_label.items():
                for separator in _SEPARATORS:
                    spelled = f"{header}{separator}{fold(text)}"  # the header is folded already
                    before = choice_columns.setdefault(spelled, (name, choice))
                    if before is not None and before != (name, choice):
                        choice_columns[spelled] = None
    return ExportVocabulary(
        paths=paths,
        headers=headers,
        choice_columns={key: value for key, value in choice_columns.items() if value is not None},
        choices=choices,
    )


def _header_spellings(
    name: str, group_names: Sequence[str], group_labels: Sequence[Sequence[str]], texts: Sequence[str]
) -> Iterable[str]:
    """A question's label in each language, alone or after its groups' labels (same language) or
    names, joined by any separator Kobo's 'group separator' may be set to."""
    # Each part is folded once: folded parts joined by a separator are the folded whole.
    names = [fold(group) for group in group_names]
    for index, text in enumerate(texts):
        if not text:
            continue
        label = fold(text)
        yield label
        if not group_names:
            continue
        by_label = [fold(labels[index]) or name for labels, name in zip(group_labels, names, strict=True)]
        for path in (names, by_label):
            for separator in _SEPARATORS:
                yield separator.join((*path, label))


def _unique(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``text -> target``, with _AMBIGUOUS where a text has two targets."""
    found: dict[str, str] = {}
    for text, target in pairs:
        if found.setdefault(text, target) != target:
            found[text] = _AMBIGUOUS
    return found


def _choices(rows: Sequence[Mapping[str, str]], label_columns: Sequence[str]) -> dict[str, _Choices]:
    lists: dict[str, list[Mapping[str, str]]] = {}
    for row in rows:
        lists.setdefault(row["list_name"], []).append(row)
    made: dict[str, _Choices] = {}
    for name, list_name in ind.FIELD_LIST.items():
        entries = lists.get(list_name, [])
        order = tuple(entry["name"] for entry in entries)
        # A choice's own name counts as one of its labels: an answer mixing both is still read.
        texts = [(_value(entry["name"]), entry["name"]) for entry in entries]
        texts += [
            (_value(entry[c]), entry["name"]) for entry in entries for c in label_columns if entry.get(c)
        ]
        by_label = _unique(texts)
        made[name] = _Choices(
            names=frozenset(order),
            by_label=by_label,
            order=order,
            multiple=name in ind.SELECT_MULTIPLE_FIELDS,
            longest=max((len(text.split()) for text in by_label), default=1),
        )
    return made


@dataclass
class _Column:
    """What one key of a row is: kept as it is, renamed to a field's names-export key, or one
    choice's 0/1 column of a select_multiple question."""

    key: str | None = None  # the names-export key; None: the key as it is
    field: str | None = None  # the form field it holds, if any
    choice: str | None = None  # for a 0/1 column, the choice it stands for
    by_label: bool = False  # the key is a label, not a name


class ExportReader:
    """Reads the rows of one export: label headers and label values turned into names."""

    def __init__(self, vocabulary: ExportVocabulary, where: str) -> None:
        self.vocabulary = vocabulary
        self.where = where  # the file, named in a refusal
        self._columns: dict[str, _Column] = {}
        self._unknown: list[str] = []  # keys that are no question, metadata or choice column
        self._labelled_headers = False
        self._told_headers = self._told_values = False  # said once an export, on the terminal
        # Per select field, the answers read so far -> their names (None, unanswered, -> None).
        self._answers: dict[str, dict[Any, Any]] = {name: {None: None} for name in vocabulary.choices}
        # Keys kept as they are (a names export's), and those of them that hold a select answer,
        # each with its field and the answers of that field already read (answer -> names).
        self._plain: set[str] = set()
        self._select_keys: list[str] = []
        self._select_fields: list[str] = []
        self._select_answers: list[dict[Any, Any]] = []

    def row(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` as a names export gives it: the same dict when nothing needs a change."""
        if not self._plain.issuperset(data):
            return self._translate(data)
        # The common case, a names export's row: its select answers, each read before, are their
        # own names (None, unanswered, is its own too). Looked up in C: a few calls a row.
        values = list(map(data.get, self._select_keys))
        try:
            if list(map(dict.get, self._select_answers, values)) == values:
                return data
        except TypeError:
            pass  # an answer that is a list or an object: read one by one
        changed: dict[str, Any] = {}
        for key, name, value in zip(self._select_keys, self._select_fields, values, strict=True):
            if type(value) is str:
                found = self._answer(name, key, value)
                if found != value:
                    changed[key] = found
        return {**data, **changed} if changed else data

    def _translate(self, data: dict[str, Any]) -> dict[str, Any]:
        columns = [(key, self._column(key)) for key in data]
        self._refuse_unknown()
        out: dict[str, Any] = {}
        ticked: dict[str, list[str]] = {}  # field -> choices of its 0/1 columns, for a field without summary
        summaries = {column.field for _, column in columns if column.field and column.choice is None}
        for key, column in columns:
            value = data[key]
            if column.choice is not None:
                assert column.field is not None
                if column.field not in summaries:
                    ticked.setdefault(column.field, [])
                    if self._selected(key, value, column):
                        ticked[column.field].append(column.choice)
                continue  # the summary column says the same
            target = column.key or key
            if column.field is not None and type(value) is str:
                value = self._answer(column.field, key, value)
            out.setdefault(target, value)
        for name, chosen in ticked.items():
            if chosen:
                order = self.vocabulary.choices[name].order
                out[self.vocabulary.paths[name]] = " ".join(sorted(chosen, key=order.index))
        return out

    def _column(self, key: str) -> _Column:
        found = self._columns.get(key)
        if found is not None:
            return found
        vocabulary = self.vocabulary
        folded = fold(key)
        name = field_name(key)
        target = vocabulary.headers.get(folded)
        if name in vocabulary.paths:
            column = _Column(field=name)
        elif target == _AMBIGUOUS:
            raise SourceError(
                f"{self.where}: the column {key!r} is the label of more than one question of the form, so "
                f"kobo-tip cannot tell which one it holds; nothing was stored: {HOW_TO_EXPORT}."
            )
        elif target is not None:
            column = _Column(key=vocabulary.paths[target], field=target, by_label=True)
            self._labelled_headers = True
            self._tell_headers(key)
        elif folded in vocabulary.choice_columns:
            owner, choice = vocabulary.choice_columns[folded]
            column = _Column(
                field=owner, choice=choice, by_label=not folded.startswith(fold(vocabulary.paths[owner]))
            )
            if column.by_label:
                self._labelled_headers = True
                self._tell_headers(key)
        else:
            column = _Column()
            if not (key.startswith("_") or name in _METADATA or _is_name_path(folded, vocabulary)):
                self._unknown.append(key)
        if len(self._columns) < _CACHE_MAX:
            self._columns[key] = column
            if column.key is None and column.choice is None:
                self._plain.add(key)
                if column.field is not None and column.field in self.vocabulary.choices:
                    self._select_keys.append(key)
                    self._select_fields.append(column.field)
                    self._select_answers.append(self._answers[column.field])
        return column

    def _tell_headers(self, key: str) -> None:
        if not self._told_headers:
            self._told_headers = True
            log.info("%s names its columns by label (%r): read as the form's field names", self.where, key)

    def _refuse_unknown(self) -> None:
        """A labelled export's column that is no question of the form may be one whose label changed
        on the server, name codes included: kobo-tip cannot tell what it holds, so nothing is read."""
        if self._labelled_headers and self._unknown:
            raise SourceError(
                f"{self.where} names its columns by label, and the column {self._unknown[0]!r} is no "
                f"question of the form in any of its languages; nothing was stored: {HOW_TO_EXPORT}."
            )

    def _answer(self, name: str, key: str, value: str) -> str:
        """The choice names of ``value``, an answer of ``name`` given as names or as labels."""
        choices = self.vocabulary.choices.get(name)
        if choices is None:
            return value
        known = self._answers[name]
        found = known.get(value)
        if found is not None:
            return found
        found = _names_of(choices, value)
        if found is None:
            raise SourceError(
                f"{self.where}: the answer {value!r} of {key!r} is the label of more than one choice, so "
                f"kobo-tip cannot tell which one was chosen; nothing was stored: {HOW_TO_EXPORT}."
            )
        if len(known) < _CACHE_MAX:
            known[value] = found
        if found != value and not self._told_values:
            self._told_values = True
            log.info(
                "%s gives answers as labels (%r of %s): read as the form's choice names",
                self.where,
                value,
                key,
            )
        return found

    def _selected(self, key: str, value: Any, column: _Column) -> bool:
        text = fold(str(value)) if value is not None else ""
        if text in _SELECTED:
            return True
        if text in _NOT_SELECTED:
            return False
        assert column.field is not None and column.choice is not None
        if self.vocabulary.choices[column.field].by_label.get(_value(str(value))) == column.choice:
            return True  # the choice's label, as some exports write a ticked column
        raise SourceError(
            f"{self.where}: the column {key!r} holds {value!r} where 1 or 0 (chosen or not) was expected; "
            f"nothing was stored: {HOW_TO_EXPORT}."
        )


def _value(text: str) -> str:
    """An answer as it is compared with the choices' labels: like ``fold``, but its case kept. Kobo
    writes a label exactly as the form has it, and ``femme`` in a names export is a mistake to show
    in the data-quality list, not the label ``Femme``."""
    return fold(text, case=False)


def _is_name_path(folded: str, vocabulary: ExportVocabulary) -> bool:
    """A names export's 0/1 column (``event/action/identified``): kept, and left alone."""
    head, _, choice = folded.rpartition("/")
    owner = field_name(head) if head else ""
    return owner in vocabulary.choices and choice in vocabulary.choices[owner].names


# One return per way an answer can be written (names, a label, labels joined), each an early answer.
def _names_of(choices: _Choices, value: str) -> str | None:  # noqa: PLR0911
    """The answer in choice names: ``value`` itself when it is names already, the name of its label,
    or (select_multiple) the names of the labels it joins with spaces. An answer that is neither is
    kept as it is (counting lists it as malformed); None when a label names two choices."""
    if value in choices.names:
        return value
    folded = _value(value)
    found = choices.by_label.get(folded)
    if found is not None:
        return found or None  # _AMBIGUOUS -> None
    if not choices.multiple:
        return value
    words = value.split()
    if all(word in choices.names for word in words):
        return value
    readings = _readings(folded.split(), choices)
    if not readings:
        return value
    if len(readings) > 1:
        return None
    (chosen,) = readings
    return " ".join(name for name in choices.order if name in chosen)


def _readings(words: list[str], choices: _Choices) -> set[frozenset[str]]:
    """Every set of choices whose labels, joined by spaces, give ``words``; at most two are sought."""
    # ways[i]: the readings of words[i:]
    ways: list[set[frozenset[str]]] = [set() for _ in range(len(words))] + [{frozenset()}]
    for start in range(len(words) - 1, -1, -1):
        for end in range(start + 1, min(len(words), start + choices.longest) + 1):
            name = choices.by_label.get(" ".join(words[start:end]))
            if name is None or not ways[end]:
                continue
            if name == _AMBIGUOUS:
                return {frozenset({"a"}), frozenset({"b"})}  # two readings: refused
            ways[start] |= {rest | {name} for rest in ways[end]}
            if len(ways[start]) > 2:
                break
    return ways[0]
