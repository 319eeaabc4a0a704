"""The file source: Kobo JSON (list, envelope, page folder), Central OData JSON, Kobo and Central CSV."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import tempfile
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kobo_tip import indicator as ind
from kobo_tip.answers import find_answers
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError, SourceError
from kobo_tip.person_key import person_key
from kobo_tip.sources import Batch, KnownSubmission, RawSubmission, files
from kobo_tip.sources.files import FileSource, to_raw_submission, utc_naive
from kobo_tip.store import open_store
from kobo_tip.sync import run_sync

# Every answer field of the form, with the group that holds it in Kobo's paths.
GROUPS = {
    ind.CONSENT: "intro",
    ind.EVENT_DATE: "event",
    ind.ACTION: "event",
    ind.STAKEHOLDER_TYPE: "event",
    ind.STAKEHOLDER_ID: "event",
    ind.IDENTIFICATION_COUNTRY: "event",
    ind.LOCATION_ADMIN1: "event",
    ind.CASE_REF: "event",
    ind.PERSON_CATEGORY: "event",
    ind.EXPLOITATION_TYPE: "event",
    ind.UIC_GIVEN: "person",
    ind.UIC_MOTHER: "person",
    ind.BIRTH_YEAR: "person",
    ind.GENDER: "person",
    ind.AGE_YEARS: "person",
    ind.COUNTRY_ORIGIN: "person",
    "wg_seeing": "person/wg",
    ind.SERVICES: "referral",
}
ANSWER_FIELDS = (*GROUPS, ind.FORM_VERSION)
KOBO_STATUS = {
    "approved": ("validation_status_approved", "Approved"),
    "rejected": ("validation_status_not_approved", "Not Approved"),
    "on_hold": ("validation_status_on_hold", "On Hold"),
}
CENTRAL_STATUS = {"approved": "approved", "rejected": "rejected", "on_hold": "hasIssues", "unreviewed": ""}


def answers(sid: int, **changes: str) -> dict[str, str]:
    """Answers of one event, by field name; ``changes`` replace some."""
    base = {
        ind.CONSENT: "yes",
        ind.EVENT_DATE: f"2026-01-{sid % 28 + 1:02d}",
        ind.ACTION: "identified referred" if sid % 2 else "identified",
        ind.STAKEHOLDER_TYPE: "border_control",
        ind.STAKEHOLDER_ID: "bc_maesot",
        ind.IDENTIFICATION_COUNTRY: "th",
        ind.LOCATION_ADMIN1: "TH-10",
        ind.CASE_REF: f"MS-{sid}",
        ind.PERSON_CATEGORY: "trafficking_presumed gbv" if sid % 3 == 0 else "trafficking_presumed",
        ind.EXPLOITATION_TYPE: "forced_labour",
        ind.UIC_GIVEN: "Maria" if sid % 2 else "Somchai",
        ind.UIC_MOTHER: "Ana",
        ind.BIRTH_YEAR: str(1980 + sid % 30),
        ind.GENDER: "female" if sid % 2 else "male",
        ind.AGE_YEARS: str(20 + sid % 30),
        ind.COUNTRY_ORIGIN: "mm",
        "wg_seeing": "no_difficulty",
        ind.SERVICES: "shelter medical",
    }
    base.update(changes)
    return base


def kobo_submission(
    sid: int,
    *,
    version: str = "v1",
    status: str = "unreviewed",
    submitted: str = "2026-01-20T08:30:00",
    **changes: str,
) -> dict[str, Any]:
    """A submission as Kobo's data API sends it (every answer a string, groups as paths)."""
    uuid = f"00000000-0000-4000-8000-{sid:06d}{version:>6}".replace(" ", "0")
    data: dict[str, Any] = {"_id": sid, "formhub/uuid": "f0f0", "start": "2026-01-20T08:00:00.000+07:00"}
    data.update({f"{GROUPS[name]}/{name}": value for name, value in answers(sid, **changes).items()})
    uid, label = KOBO_STATUS.get(status, (None, None))
    data.update(
        {
            ind.FORM_VERSION: "20251001000000",
            "__version__": "vAbC123",
            "meta/instanceID": f"uuid:{uuid}",
            "meta/rootUuid": f"uuid:root-{sid}",
            "_uuid": uuid,
            "_submission_time": submitted,
            "_validation_status": {"uid": uid, "label": label, "timestamp": 1768000000} if uid else {},
            "_attachments": [],
            "_geolocation": [None, None],
        }
    )
    return data


def kobo_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A Kobo CSV export: ';', quoted, 'group/field' headers, 0/1 select_multiple split columns."""
    header: list[str] = []
    for name, group in GROUPS.items():
        header.append(f"{group}/{name}")
        if name in ind.SELECT_MULTIPLE_FIELDS:
            header += [f"{group}/{name}/{choice}" for choice in ind.CHOICES[ind.FIELD_LIST[name]][:3]]
    header += [ind.FORM_VERSION, "meta/instanceID", "_id", "_uuid", "_submission_time"]
    header += ["_validation_status", "_notes", "_status", "__version__", "_index"]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        for index, row in enumerate(rows, start=1):
            cells = []
            for column in header:
                if column == "_validation_status":
                    cells.append(row["_validation_status"].get("label") or "")
                elif column in row:
                    cells.append(str(row[column]))
                elif column == "_index":
                    cells.append(str(index))
                elif column.count("/") and column.rsplit("/", 1)[0] in row:
                    cells.append(
                        "1" if column.rsplit("/", 1)[1] in row[column.rsplit("/", 1)[0]].split() else "0"
                    )
                else:
                    cells.append("")
            writer.writerow(cells)
    return path


def central_row(kobo: Mapping[str, Any], status: str) -> dict[str, Any]:
    """The ODK Central OData shape of a Kobo-style submission: nested groups, ``__system``."""
    row: dict[str, Any] = {
        "__id": f"uuid:root-{kobo['_id']}",
        "__system": {
            "submissionDate": kobo["_submission_time"] + ".123Z",
            "updatedAt": None,
            "reviewState": CENTRAL_STATUS[status] or None,
            "formVersion": "20251001000000",
        },
        "meta": {"instanceID": kobo["meta/instanceID"]},
        ind.FORM_VERSION: kobo[ind.FORM_VERSION],
    }
    for key, value in kobo.items():
        parts = key.split("/")
        if parts[0] in ("intro", "event", "person", "referral"):
            node = row
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = int(value) if parts[-1] in (ind.BIRTH_YEAR, ind.AGE_YEARS) else value
    return row


def central_csv(path: Path, rows: list[dict[str, Any]], statuses: list[str]) -> Path:
    """An ODK Central CSV export: ',' and 'group-field' headers, KEY and ReviewState columns."""
    header = ["SubmissionDate"] + [f"{GROUPS[name].replace('/', '-')}-{name}" for name in GROUPS]
    header += [
        ind.FORM_VERSION,
        "meta-instanceID",
        "KEY",
        "SubmitterID",
        "ReviewState",
        "Edits",
        "FormVersion",
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, status in zip(rows, statuses, strict=True):
            by_name = answers(row["_id"])
            writer.writerow(
                [row["_submission_time"] + ".123Z"]
                + [by_name[name] for name in GROUPS]
                + [row[ind.FORM_VERSION], row["meta/instanceID"], f"uuid:root-{row['_id']}", "5"]
                + [CENTRAL_STATUS[status], "0", "20251001000000"]
            )
    return path


class FakeState:
    """A SyncState with a fixed set of known submissions."""

    full = False
    reconcile_due = True

    def __init__(self, known: Mapping[str, KnownSubmission] | None = None) -> None:
        self._known = dict(known or {})

    def watermark(self, name: str) -> str | None:
        return None

    def known(self) -> Mapping[str, KnownSubmission]:
        return self._known


def read_all(path: Path) -> list[RawSubmission]:
    return list(FileSource(path).submissions())


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


STATUSES = ["approved", "rejected", "on_hold", "unreviewed", "approved", "unreviewed"]


@pytest.fixture
def kobo_rows() -> list[dict[str, Any]]:
    return [kobo_submission(sid, status=status) for sid, status in enumerate(STATUSES, start=101)]


def test_kobo_json_list_envelope_and_page_folder_read_alike(tmp_path: Path, kobo_rows: list) -> None:
    as_list = read_all(write_json(tmp_path / "list.json", kobo_rows))
    envelope = {"count": len(kobo_rows), "next": None, "previous": None, "results": kobo_rows}
    as_envelope = read_all(write_json(tmp_path / "envelope.json", envelope))
    pages = tmp_path / "pages"
    pages.mkdir()
    write_json(pages / "page-2.json", {"count": 6, "next": None, "previous": "x", "results": kobo_rows[4:]})
    write_json(pages / "page-1.json", {"count": 6, "next": "y", "previous": None, "results": kobo_rows[:4]})
    (pages / "notes.txt").write_text("not an export", encoding="utf-8")
    as_folder = read_all(pages)
    assert as_list == as_envelope == as_folder
    assert [raw.submission_id for raw in as_folder] == [str(sid) for sid in range(101, 107)]
    first = as_list[0]
    assert first.version_id == kobo_rows[0]["_uuid"]
    assert first.submitted_at == "2026-01-20T08:30:00"
    assert first.form_version == "20251001000000"
    assert [raw.review_status for raw in as_list] == STATUSES
    assert first.data is not None and first.data["person/uic_given"] == "Maria"


def test_kobo_csv_gives_the_same_answers_as_the_json(tmp_path: Path, kobo_rows: list, secret: str) -> None:
    from_json = read_all(write_json(tmp_path / "export.json", kobo_rows))
    from_csv = read_all(kobo_csv(tmp_path / "export.csv", kobo_rows))
    assert len(from_csv) == len(from_json)
    for js, cs in zip(from_json, from_csv, strict=True):
        assert (cs.submission_id, cs.version_id, cs.review_status, cs.submitted_at, cs.form_version) == (
            js.submission_id,
            js.version_id,
            js.review_status,
            js.submitted_at,
            js.form_version,
        )
        assert find_answers(cs.data, ANSWER_FIELDS) == find_answers(js.data, ANSWER_FIELDS)
        # The 0/1 split columns of select_multiple questions are not answers of their own.
        assert not any(key.startswith("event/action/") for key in cs.data)
        secret_bytes = secret.encode()
        assert person_key(cs.data, cs.submission_id, secret_bytes) == person_key(
            js.data, js.submission_id, secret_bytes
        )


def test_central_csv_and_odata_json_give_the_same_answers(tmp_path: Path, kobo_rows: list) -> None:
    from_kobo = read_all(write_json(tmp_path / "export.json", kobo_rows))
    odata = {
        "@odata.context": "x",
        "value": [central_row(r, s) for r, s in zip(kobo_rows, STATUSES, strict=True)],
    }
    from_odata = read_all(write_json(tmp_path / "odata.json", odata))
    from_csv = read_all(central_csv(tmp_path / "central.csv", kobo_rows, STATUSES))
    for kobo, od, cs in zip(from_kobo, from_odata, from_csv, strict=True):
        expected = find_answers(kobo.data, ANSWER_FIELDS)
        for got in (od, cs):
            found = {k: str(v) for k, v in find_answers(got.data, ANSWER_FIELDS).items()}
            assert found == expected
            assert got.submission_id == f"uuid:root-{kobo.submission_id}"
            assert got.version_id == kobo.data["meta/instanceID"]
            assert got.review_status == kobo.review_status
            assert got.submitted_at == kobo.submitted_at  # '.123Z' dropped, already UTC
            assert got.form_version == "20251001000000"


def test_central_edited_review_state_is_unreviewed() -> None:
    edited = to_raw_submission({"__id": "uuid:a", "__system": {"reviewState": "edited"}, "meta": {}})
    received = to_raw_submission({"__id": "uuid:b", "__system": {"reviewState": None}})
    csv_edited = to_raw_submission({"KEY": "uuid:c", "ReviewState": "edited"})
    projected = to_raw_submission({"_id": 7, "_uuid": "u7"})  # a page without _validation_status
    # Spec section 4: Central sets 'edited' on every edit, and the edit has not been reviewed.
    assert edited.review_status == csv_edited.review_status == "unreviewed"
    assert received.review_status == "unreviewed"
    assert projected.review_status is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-20T08:30:00", "2026-01-20T08:30:00"),
        ("2026-01-20T08:30:00.123Z", "2026-01-20T08:30:00"),
        ("2026-01-20T08:30:00.999+07:00", "2026-01-20T01:30:00"),
        ("2026-01-01T02:00:00-05:00", "2026-01-01T07:00:00"),
        ("2026-01-01T01:00:00+03:00", "2025-12-31T22:00:00"),
        ("not a time", ""),
        (None, ""),
    ],
)
def test_submission_times_become_naive_utc(given: str | None, expected: str) -> None:
    assert utc_naive(given) == expected


def test_rows_without_an_id_get_a_stable_one(tmp_path: Path) -> None:
    rows = [
        {"meta/instanceID": "uuid:abc", "event/event_date": "2026-01-02"},
        {"meta/rootUuid": "uuid:root-1", "meta/instanceID": "uuid:v2", "event/event_date": "2026-01-03"},
        {"event/event_date": "2026-01-04"},
        {"_id": None, "_uuid": "u-9", "event/event_date": "2026-01-05"},
    ]
    first = read_all(write_json(tmp_path / "a.json", rows))
    again = read_all(write_json(tmp_path / "b.json", rows))
    assert [raw.submission_id for raw in first] == [raw.submission_id for raw in again]
    ids = [raw.submission_id for raw in first]
    assert ids[0] == "uuid:abc"
    assert ids[1] == "uuid:root-1"  # the root uuid survives edits, so it wins
    assert ids[2].startswith("sha256:") and len(set(ids)) == 4
    assert ids[3] == "uuid:u-9"
    assert first[2].version_id == ids[2]  # no version id either: the content stands for it


def test_batches_of_1000_then_a_reconcile_batch_with_the_missing_ids(tmp_path: Path) -> None:
    rows = [{"_id": sid, "_uuid": f"u{sid}"} for sid in range(1, 2501)]
    known = {str(sid): KnownSubmission("x", "unreviewed") for sid in (5, 2500, 9001, 9002)}
    batches = list(FileSource(write_json(tmp_path / "big.json", rows)).batches(FakeState(known)))
    assert [len(b.submissions) for b in batches] == [1000, 1000, 500, 0]
    assert [b.fetched for b in batches] == [1000, 1000, 500, 0]
    assert not any(b.reconciled for b in batches[:-1])
    assert batches[-1].reconciled and sorted(batches[-1].deleted) == ["9001", "9002"]


def test_an_id_repeated_across_pages_is_read_once(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    write_json(pages / "1.json", [{"_id": 1, "_uuid": "a"}, {"_id": 2, "_uuid": "b"}])
    write_json(pages / "2.json", [{"_id": 2, "_uuid": "b"}, {"_id": 3, "_uuid": "c"}])
    batches = list(FileSource(pages).batches(FakeState()))
    assert [raw.submission_id for raw in batches[0].submissions] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("truncated.json", '{"count": 2, "results": [{"_id": 1}, {"_id"', "not valid JSON"),
        ("wrong.json", '{"detail": "Not found."}', "neither a list"),
        ("scalars.json", "[1, 2]", "submission 1 is a number, not a JSON object"),
        ("notes.txt", "hello world, this is not an export\nsecond line", "not a Kobo or ODK Central CSV"),
        ("plain.txt", "just words", "neither JSON nor a CSV"),
        ("empty.csv", "", "is empty"),
        ("cut.csv", "KEY,event-event_date\nuuid:1,2026-01-02\nuuid:2", "line 3 has 1 cells"),
        ("cut_quoted.csv", '"_id";"event/event_date"\n"1";"2026-01-02"\n"2";"2026-0', "unexpected end"),
        ("binary.csv", b"PK\x03\x04\xff\xfe\x00\x81", "an XLSX workbook or a zip archive"),
    ],
)
def test_malformed_files_give_a_source_error_naming_the_file(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        list(FileSource(path).batches(FakeState()))
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_path_or_empty_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_all(tmp_path / "nope.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no \.json or \.csv"):
        read_all(tmp_path / "empty")


def test_a_file_source_cannot_deploy_or_list_assets(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="cannot deploy"):
        source.deploy(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no server assets"):
        source.list_assets()


def test_from_settings_reads_the_path_and_requires_it(make_project: Callable[..., Path]) -> None:
    settings = load_settings(make_project(source='kind = "file"\npath = "exports/kobo.json"'))
    source = FileSource.from_settings(settings)
    assert source.kind == "file"
    assert source.path == settings.path.parent / "exports" / "kobo.json"
    assert source.describe() == f"file {source.path}"
    with pytest.raises(ConfigError, match=r"\[source\] path"):
        load_settings(make_project("bare", source='kind = "file"'))
    built_in_code = dataclasses.replace(settings, source=dataclasses.replace(settings.source, path=None))
    with pytest.raises(ConfigError, match=r"\[source\] path"):
        FileSource.from_settings(built_in_code)


# --- JSON read as a stream ---------------------------------------------------------------------


def strictly_equal(a: Any, b: Any) -> bool:
    """``a == b`` with types too: 1, 1.0 and True differ, and so do 0.0 and -0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-(10**40), max_value=10**40)  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_rows = st.lists(
    st.dictionaries(st.text(max_size=12), json_values, max_size=6).map(lambda row: {"_id": 1, **row}),
    max_size=6,
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    rows=json_rows,
    shape=st.sampled_from(["list", "kobo", "kobo-results-first", "odata"]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 1]),
    bom=st.booleans(),
    read_size=st.sampled_from([1, 7, 64, 1 << 16]),
)
def test_streamed_rows_are_what_json_loads_gives(
    rows: list[dict[str, Any]], shape: str, ensure_ascii: bool, indent: int | None, bom: bool, read_size: int
) -> None:
    document: Any = {
        "list": rows,
        "kobo": {"count": len(rows), "next": None, "previous": None, "results": rows},
        "kobo-results-first": {"results": rows, "next": None, "count": len(rows)},
        "odata": {"@odata.context": "x", "value": rows, "@odata.nextLink": "y"},
    }[shape]
    text = json.dumps(document, ensure_ascii=ensure_ascii, indent=indent)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        # Reads of a few bytes cut every string, escape and number somewhere.
        with mock.patch.object(files, "_READ_SIZE", read_size):
            got = [raw.data for raw in FileSource(path).submissions()]
    expected = json.loads(text)
    expected_rows = expected if shape == "list" else expected.get("results", expected.get("value"))
    assert len(got) == len(expected_rows)
    for streamed, loaded in zip(got, expected_rows, strict=True):
        assert strictly_equal(streamed, loaded), (streamed, loaded)


@pytest.mark.parametrize("keys", list(itertools.permutations(["count", "next", "previous", "results"])))
def test_envelope_keys_in_any_order(tmp_path: Path, keys: tuple[str, ...], kobo_rows: list) -> None:
    values = {"count": len(kobo_rows), "next": None, "previous": "http://x/?page=1", "results": kobo_rows}
    path = write_json(tmp_path / "page.json", {key: values[key] for key in keys})
    assert [raw.data for raw in read_all(path)] == kobo_rows


def test_rows_after_a_long_first_key_are_found(tmp_path: Path, kobo_rows: list) -> None:
    # The first 64 KiB do not tell where the rows are: the whole document's keys are looked at.
    document = {"note": "x" * 100_000, "nested": {"results": 1}, "results": kobo_rows, "value": []}
    assert [raw.data for raw in read_all(write_json(tmp_path / "a.json", document))] == kobo_rows
    odata = {"@odata.context": "y" * 100_000, "value": kobo_rows}
    assert [raw.data for raw in read_all(write_json(tmp_path / "b.json", odata))] == kobo_rows
    neither = {"note": "z" * 100_000, "count": 3}
    with pytest.raises(SourceError, match="neither a list of submissions"):
        read_all(write_json(tmp_path / "c.json", neither))


def test_numbers_beyond_64_bits_and_doubles_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    text = (
        '[{"_id": 1, "f": 0.1, "e": 1E5, "z": -0.0}, {"_id": 2, "big": 123456789012345678901234567890, '
        '"huge": 1e400, "small": 1e-400, "f": [2.5, -9223372036854775809]}]'
    )
    path = tmp_path / "numbers.json"
    path.write_text(text, encoding="utf-8")
    got = [raw.data for raw in read_all(path)]
    assert all(strictly_equal(a, b) for a, b in zip(got, json.loads(text), strict=True)), got


def test_a_file_is_read_as_a_stream_batch_by_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 3001)]
    json_path = write_json(tmp_path / "big.json", {"count": 3000, "results": rows})
    csv_path = kobo_csv(tmp_path / "big.csv", rows)
    read_so_far = [0]
    real_read, real_readinto = files._HashingFile.read, files._HashingFile.readinto

    def counting_read(self: Any, size: int = -1) -> bytes:
        data = real_read(self, size)
        read_so_far[0] += len(data)
        return data

    def counting_readinto(self: Any, buffer: Any) -> int:
        count = real_readinto(self, buffer)
        read_so_far[0] += count
        return count

    monkeypatch.setattr(files._HashingFile, "read", counting_read)
    monkeypatch.setattr(files._HashingFile, "readinto", counting_readinto)
    for path in (json_path, csv_path):
        read_so_far[0] = 0
        batches = FileSource(path, batch_size=100).batches(FakeState())
        first = next(batches)
        assert len(first.submissions) == first.fetched == 100
        assert read_so_far[0] < path.stat().st_size / 4, "the first batch came after the whole file was read"
        rest = list(batches)
        assert sum(len(batch.submissions) for batch in rest) == 2900 and rest[-1].reconciled
        assert read_so_far[0] == path.stat().st_size


def test_memory_stays_flat_whatever_the_file_size(tmp_path: Path) -> None:
    def peak_reading(rows: int) -> tuple[int, int]:
        document = {"count": rows, "results": [kobo_submission(sid) for sid in range(1, rows + 1)]}
        path = write_json(tmp_path / f"{rows}.json", document)
        del document
        tracemalloc.start()
        try:
            for _batch in FileSource(path, batch_size=100).batches(FakeState()):
                pass
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak, path.stat().st_size

    small, _ = peak_reading(2_000)
    large, size = peak_reading(16_000)
    # Eight times the rows: only the set of ids seen grows (about 100 bytes a row).
    assert large < small + 16_000 * 150 and large < size / 4, (small, large, size)


def _pretty_with_an_error(rows: list[dict[str, Any]]) -> tuple[str, int, int]:
    text = json.dumps(rows, indent=2)
    cut = text.index('"_id": 3,')
    broken = text[:cut] + '"_id": x3,' + text[cut + len('"_id": 3,') :]
    line = broken[:cut].count("\n") + 1
    column = cut - broken.rfind("\n", 0, cut) - 1 + len('"_id": x')
    return broken, line, column


@pytest.mark.parametrize("read_size", [64, 1 << 16])
def test_a_syntax_error_names_its_line_and_column_and_never_the_text(
    tmp_path: Path, read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [kobo_submission(sid, uic_given="Xylophona") for sid in range(1, 6)]
    text, line, column = _pretty_with_an_error(rows)
    path = tmp_path / "edited.json"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(files, "_READ_SIZE", read_size)
    with pytest.raises(SourceError) as caught:
        list(FileSource(path).batches(FakeState()))
    message = str(caught.value)
    assert f"line {line}, column {column}" in message, message
    assert "not valid JSON" in message and "Xylophona" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # truncated after several reads of the parser: rows before it were given already
        (lambda rows: json.dumps({"count": 3, "results": rows})[:-300], "the file is truncated"),
        (
            lambda rows: json.dumps(rows)[:-1] + ', "a string"]',
            "submission 301 is a string, not a JSON object",
        ),
        (lambda rows: json.dumps(rows)[:-1] + ", [1]]", "submission 301 is a list"),
        (lambda rows: json.dumps(rows)[:-1] + ", null]", "submission 301 is null"),
        (lambda rows: json.dumps(rows) + " []", "more text after the end of the JSON document"),
        (lambda rows: json.dumps({"results": 5}), "neither a list of submissions"),
        (lambda rows: '"just a string"', "neither a list of submissions"),
        (lambda rows: '[{"_id": "\\udc00"}]', "half a UTF-16 surrogate pair"),
        (lambda rows: '[{"a": NaN}]', "not valid JSON (line 1, column 8"),
    ],
)
def test_json_errors_are_one_clear_sentence(
    tmp_path: Path, content: Callable[[list[dict[str, Any]]], str], message: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(content([kobo_submission(sid) for sid in range(1, 301)]), encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        list(FileSource(path).batches(FakeState()))
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("login.json", b"\n  <!DOCTYPE html>\n<html><head><title>Log in</title>", "is a web page"),
        ("login.csv", b"<html lang='en'><body>Sign in", "is a web page"),
        ("bom-login.json", b"\xef\xbb\xbf<HTML>", "is a web page"),
        (
            "export.xlsx.json",
            b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100,
            "an XLSX workbook or a zip archive",
        ),
        (
            "utf16.csv",
            "_id,event/event_date\n1,2026-01-02\n".encode("utf-16"),
            "is not UTF-8 (UTF-16 or Latin-1?)",
        ),
        ("utf16-no-bom.csv", "_id,x\n1,2\n".encode("utf-16-le"), "is not UTF-8 (UTF-16 or Latin-1?)"),
        (
            "latin1.csv",
            "_id,event/case_ref\n1,caf\xe9\n".encode("latin-1"),
            "is not UTF-8 (UTF-16 or Latin-1?)",
        ),
        (
            "latin1.json",
            '[{"_id": 1, "x": "caf\xe9"}]'.encode("latin-1"),
            "is not UTF-8 (UTF-16 or Latin-1?)",
        ),
        ("deep.json", b"[" * 600 + b"]" * 600, "more than 512 deep"),
        ("hostile.json", b"[" * 300_000, "more than 512 deep"),  # parsed, it would take gigabytes
        ("deep-in-a-row.json", b'[{"_id": 1, "a": ' + b'{"b": ' * 600 + b"1" + b"}" * 601 + b"]", "512 deep"),
        ("empty.json", b"  \n", "is empty"),
    ],
)
def test_what_is_no_export_is_named_with_how_to_fix_it(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as caught:
        list(FileSource(path).batches(FakeState()))
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_latin1_far_into_a_csv_is_named_when_it_is_reached(tmp_path: Path, kobo_rows: list) -> None:
    path = kobo_csv(tmp_path / "export.csv", kobo_rows * 200)  # more than the first bytes looked at
    path.write_bytes(path.read_bytes() + b'"caf\xe9";"x"\n')
    with pytest.raises(
        SourceError, match=r"is not UTF-8 \(UTF-16 or Latin-1\?\): save or export it as UTF-8"
    ):
        list(FileSource(path).batches(FakeState()))


def test_nesting_within_the_limit_is_read_and_brackets_in_strings_do_not_count(tmp_path: Path) -> None:
    deep: Any = "leaf"
    for level in range(500):
        deep = {"g": deep} if level % 2 else [deep]
    rows = [{"_id": 1, "deep": deep}, {"_id": 2, "text": "[[[[{{{{" * 200, "esc": '\\"[{\\' * 300}]
    path = write_json(tmp_path / "deep.json", {"count": 2, "results": rows})
    for read_size in (3, 1 << 16):
        with mock.patch.object(files, "_READ_SIZE", read_size):
            assert [raw.data for raw in read_all(path)] == rows


def test_a_row_nested_deeper_than_the_form_gets_its_id_and_syncs(
    make_project: Callable[..., Path], secret: str
) -> None:
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"g": deep}
    settings = load_settings(make_project())
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    rows = [kobo_submission(1), {**kobo_submission(2), "deep": deep}]
    write_json(settings.source.path, {"count": 2, "results": rows})
    assert [raw.submission_id for raw in read_all(settings.source.path)] == ["1", "2"]
    summary = run_sync(settings, progress=False)
    assert summary.new == 2


# --- an unchanged file is not read again -------------------------------------------------------


class MemoryState:
    """A SyncState that keeps what the batches it is given would commit."""

    reconcile_due = True

    def __init__(self) -> None:
        self.full = False
        self.marks: dict[str, str] = {}
        self.rows: dict[str, RawSubmission] = {}

    def watermark(self, name: str) -> str | None:
        return self.marks.get(name)

    def known(self) -> Mapping[str, KnownSubmission]:
        return {sid: KnownSubmission(raw.version_id, "unreviewed") for sid, raw in self.rows.items()}

    def sync(self, source: FileSource) -> list[Batch]:
        batches = []
        for batch in source.batches(self):
            batches.append(batch)
            self.rows.update((raw.submission_id, raw) for raw in batch.submissions)
            for sid in batch.deleted:
                del self.rows[sid]
            self.marks.update(batch.watermarks)
        return batches


def _submissions_in(batches: list[Batch]) -> int:
    return sum(len(batch.submissions) for batch in batches)


def test_an_unchanged_file_is_skipped_until_its_content_changes(tmp_path: Path) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 251)]
    path = write_json(tmp_path / "export.json", {"count": 250, "results": rows})
    source, state = FileSource(path, batch_size=100), MemoryState()
    first = state.sync(source)
    assert _submissions_in(first) == 250 and first[-1].reconciled
    mark = json.loads(first[-1].watermarks[files.FINGERPRINT])
    stat = path.stat()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert mark["files"] == [[path.name, stat.st_size, stat.st_mtime_ns, sha]]

    again = state.sync(source)  # nothing read, nothing deleted
    assert [(_submissions_in([b]), b.deleted, b.fetched, b.reconciled) for b in again] == [(0, [], 0, True)]
    assert len(state.rows) == 250

    # Same size and time, another content (a byte changed, the time put back): the hash tells.
    edited = path.read_bytes().replace(b'"MS-7"', b'"MS-8"', 1)
    assert len(edited) == stat.st_size
    path.write_bytes(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = state.sync(source)
    assert _submissions_in(changed) == 250
    assert changed[0].watermarks == {files.FINGERPRINT: ""}  # cleared until the read is complete
    assert state.marks[files.FINGERPRINT] != first[-1].watermarks[files.FINGERPRINT]
    assert _submissions_in(state.sync(source)) == 0

    del rows[0]  # the file is written again: another size and time
    write_json(path, {"count": 249, "results": rows})
    rewritten = state.sync(source)
    assert _submissions_in(rewritten) == 249 and rewritten[-1].deleted == ["1"]

    state.full = True  # sync --full: read whatever the fingerprint says
    assert _submissions_in(state.sync(source)) == 249

    state.full = False
    os.utime(path)  # touched: the time differs, the file is read again
    assert _submissions_in(state.sync(source)) == 249


def test_a_folder_is_skipped_only_when_every_page_is_the_same(tmp_path: Path, kobo_rows: list) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    write_json(pages / "1.json", kobo_rows[:3])
    kobo_csv(pages / "2.csv", kobo_rows[3:])
    source, state = FileSource(pages), MemoryState()
    assert _submissions_in(state.sync(source)) == 6
    assert _submissions_in(state.sync(source)) == 0
    write_json(pages / "3.json", [kobo_submission(200)])  # a new page
    assert _submissions_in(state.sync(source)) == 7
    assert _submissions_in(state.sync(source)) == 0
    (pages / "3.json").unlink()  # a page gone
    batches = state.sync(source)
    assert _submissions_in(batches) == 6 and batches[-1].deleted == ["200"]


def test_a_sync_that_fails_leaves_no_fingerprint_to_skip_by(tmp_path: Path) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 301)]
    path = write_json(tmp_path / "export.json", rows)
    source, state = FileSource(path, batch_size=100), MemoryState()
    state.sync(source)
    saved = path.read_bytes()
    path.write_bytes(saved[:-200])  # a truncated download
    with pytest.raises(SourceError, match="truncated"):
        state.sync(source)
    assert state.marks[files.FINGERPRINT] == ""  # committed with the first batch of the failed sync
    path.write_bytes(saved)
    assert _submissions_in(state.sync(source)) == 300


def test_a_file_changed_while_read_is_read_again_next_time(tmp_path: Path) -> None:
    path = write_json(tmp_path / "export.json", [kobo_submission(1)])
    with files._HashingFile(path) as raw:
        raw.read()
        with path.open("ab") as handle:
            handle.write(b" ")
        assert raw.fingerprint() is None
    assert files._fingerprint_text([None]) == ""


def test_a_second_sync_of_the_unchanged_file_stores_and_deletes_nothing(
    make_project: Callable[..., Path], secret: str
) -> None:
    settings = load_settings(make_project())
    assert settings.source.path is not None
    settings.source.path.parent.mkdir(parents=True, exist_ok=True)
    write_json(settings.source.path, {"count": 40, "results": [kobo_submission(sid) for sid in range(1, 41)]})
    assert run_sync(settings, progress=False).new == 40
    again = run_sync(settings, progress=False)
    assert (again.fetched, again.new, again.unchanged, again.deleted) == (0, 0, 0, 0)
    with open_store(settings) as store:
        assert store.counts().submissions == 40 and store.counts().deleted == 0
    full = run_sync(settings, progress=False, full=True)
    assert (full.fetched, full.unchanged, full.deleted) == (40, 40, 0)


def test_the_first_batch_tells_about_how_many_rows_the_read_brings(tmp_path: Path) -> None:
    rows = [kobo_submission(sid) for sid in range(1, 6001)]
    for path in (
        write_json(tmp_path / "big.json", {"count": 6000, "results": rows}),
        kobo_csv(tmp_path / "big.csv", rows),
    ):
        batches = list(FileSource(path).batches(FakeState()))
        first, *rest = [batch.expected for batch in batches]
        assert first is not None and 0.8 * 6000 <= first <= 1.2 * 6000, first
        assert rest == [None] * len(rest)
    small = list(FileSource(write_json(tmp_path / "small.json", rows[:40])).batches(FakeState()))
    assert [batch.expected for batch in small] == [40, None]


def test_the_store_s_rows_are_asked_for_before_the_first_batch(tmp_path: Path) -> None:
    class Recording(FakeState):
        asked = 0

        def known(self) -> Mapping[str, KnownSubmission]:
            self.asked += 1
            return super().known()

    path = write_json(tmp_path / "export.json", [{"_id": sid, "_uuid": f"u{sid}"} for sid in range(1, 2001)])
    state = Recording({"9001": KnownSubmission("x", "unreviewed")})
    batches = FileSource(path).batches(state)
    next(batches)  # a first sync asks while its store is empty: nothing is held through the read
    assert state.asked == 1
    assert list(batches)[-1].deleted == ["9001"]


def test_a_file_source_is_never_ready_to_deploy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot deploy"):
        FileSource(tmp_path / "x.json").ready_to_deploy()
