"""The file source: Kobo JSON (list, envelope, page folder), Central OData JSON, Kobo and Central CSV."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from kobo_tip import indicator as ind
from kobo_tip.answers import find_answers
from kobo_tip.config import load_settings
from kobo_tip.errors import ConfigError, SourceError
from kobo_tip.person_key import person_key
from kobo_tip.sources import KnownSubmission, RawSubmission
from kobo_tip.sources.files import FileSource, to_raw_submission, utc_naive

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


def test_central_edited_review_state_keeps_the_stored_status() -> None:
    edited = to_raw_submission({"__id": "uuid:a", "__system": {"reviewState": "edited"}, "meta": {}})
    received = to_raw_submission({"__id": "uuid:b", "__system": {"reviewState": None}})
    csv_edited = to_raw_submission({"KEY": "uuid:c", "ReviewState": "edited"})
    projected = to_raw_submission({"_id": 7, "_uuid": "u7"})  # a page without _validation_status
    assert edited.review_status is None and csv_edited.review_status is None
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
        ("scalars.json", "[1, 2]", "submission 1 is a int"),
        ("notes.txt", "hello world, this is not an export\nsecond line", "not a Kobo or ODK Central CSV"),
        ("plain.txt", "just words", "neither JSON nor a CSV"),
        ("empty.csv", "", "is empty"),
        ("cut.csv", "KEY,event-event_date\nuuid:1,2026-01-02\nuuid:2", "line 3 has 1 cells"),
        ("cut_quoted.csv", '"_id";"event/event_date"\n"1";"2026-01-02"\n"2";"2026-0', "unexpected end"),
        ("binary.csv", b"PK\x03\x04\xff\xfe\x00\x81", "not UTF-8"),
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


def test_a_missing_path_or_empty_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_all(tmp_path / "nope.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"holds no \.json or \.csv"):
        read_all(tmp_path / "empty")


def test_a_file_source_cannot_deploy_or_list_assets(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "x.json")
    with pytest.raises(SourceError, match="cannot deploy"):
        source.deploy(None)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="no server assets"):
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
