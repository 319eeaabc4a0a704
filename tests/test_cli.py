"""The command line: exit codes and one-sentence errors for bad usage and bad configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kobo_tip.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2
    assert "sync" in out and "report" in out


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sync", "--fulll")
    assert code == 2
    assert err.startswith("error: unrecognized arguments: --fulll")
    assert "Traceback" not in err


def test_bad_as_of_date_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "--as-of", "2026-13-45")
    assert code == 2
    assert "--as-of" in err and "YYYY-MM-DD" in err


def test_missing_config_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err = run(capsys, "report", "-c", str(missing))
    assert code == 2
    assert str(missing) in err and "kobo-tip init" in err


def _edit(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert old in text, old
    config.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'form_id = "tip_victims"',
            'form_idd = "tip_victims"',
            "Unknown key 'form_idd' in [form] (did you mean 'form_id'?)",
        ),
        (
            "fiscal_year_start_month = 10",
            'fiscal_year_start_month = "10"',
            "[project] fiscal_year_start_month must be",
        ),
        (
            "start_date = 2025-10-01",
            'start_date = "2025-13-01"',
            "[project] start_date must be a date written YYYY-MM-DD",
        ),
        ('"French (fr)"', '"Klingon (xx)"', "'xx' in 'Klingon (xx)' is not an ISO 639 language code"),
        ('roster = "forms/stakeholders.csv"', 'roster = "forms/missing.csv"', "roster file"),
        ('locations = "forms/locations.csv"', 'locations = "forms/nowhere.csv"', "locations file"),
        ("disability = true", 'disability = "yes"', "[form] disability must be true or false"),
    ],
)
def test_bad_config_exits_2_naming_the_problem(
    capsys: pytest.CaptureFixture[str],
    make_project: Callable[..., Path],
    old: str,
    new: str,
    expected: str,
) -> None:
    config = make_project()
    _edit(config, old, new)
    code, _, err = run(capsys, "form", "build", "-c", str(config))
    assert code == 2
    assert expected in err
    assert err.count("\n") == 1  # one sentence, no traceback


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("xx_1,Someone,customs,2025-10-01", "type 'customs' is not a stakeholder type"),
        ("bc_maesot,Duplicate,border_control,2025-10-01", "duplicate id 'bc_maesot'"),
        ("bad id,Spaces,border_control,", "id 'bad id' must be"),
        ("ok_1,Date,border_control,2025-31-12", "trained_on '2025-31-12' is not a date"),
    ],
)
def test_bad_roster_exits_2_naming_the_line(
    capsys: pytest.CaptureFixture[str], make_project: Callable[..., Path], row: str, expected: str
) -> None:
    config = make_project()
    roster = config.parent / "forms" / "stakeholders.csv"
    lines = roster.read_text(encoding="utf-8").splitlines()
    roster.write_text("\n".join([*lines, row]) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "form", "build", "-c", str(config))
    assert code == 2
    assert expected in err
    assert f"line {len(lines) + 1}" in err


def test_status_without_store_says_to_sync(
    capsys: pytest.CaptureFixture[str], make_project: Callable[..., Path]
) -> None:
    config = make_project()
    code, out, _ = run(capsys, "status", "-c", str(config))
    assert code == 0
    assert "run 'kobo-tip sync'" in out


@pytest.mark.parametrize(
    ("source", "unset", "expected"),
    [
        ('kind = "kobo"\nurl = "http://127.0.0.1:9"\nasset_uid = ""', "KOBO_TOKEN", "KOBO_TOKEN is not set"),
        (
            'kind = "odk_central"\nurl = "http://127.0.0.1:9"\nproject_id = 1',
            "ODK_CENTRAL_PASSWORD",
            "ODK_CENTRAL_PASSWORD is not set",
        ),
        ('kind = "file"\npath = "data/export.json"', "", "A file source cannot deploy a form"),
    ],
    ids=["kobo without token", "central without password", "file source"],
)
def test_form_deploy_checks_what_it_needs_before_building(
    capsys: pytest.CaptureFixture[str],
    make_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    unset: str,
    expected: str,
) -> None:
    config = make_project(source=source)
    monkeypatch.setenv("ODK_CENTRAL_USERNAME", "me@example.org")
    if unset:
        monkeypatch.delenv(unset, raising=False)
    code, out, err = run(capsys, "form", "deploy", "-c", str(config))
    assert code == 2, err
    assert expected in err
    assert "wrote" not in out and not (config.parent / "forms" / "tip_victims.xlsx").exists(), "nothing built"


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["form", "build"],
        ["form", "deploy"],
        ["sync"],
        ["report"],
        ["status"],
        ["store", "migrate"],
        ["demo"],
    ],
)
def test_every_command_has_a_description(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: kobo-tip {' '.join(command)}")
    assert len(description.split()) >= 8 and description.rstrip().endswith(".")


def test_report_help_says_what_each_audience_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for meaning in ("internal (the M&E team: every number", "donor (small numbers hidden", "public (hidden"):
        assert meaning in text


def test_a_missing_export_file_is_bad_configuration_like_a_missing_roster(
    capsys: pytest.CaptureFixture[str], make_project: Callable[..., Path], secret: str
) -> None:
    config = make_project(source='kind = "file"\npath = "data/nowhere.json"')
    code, _, err = run(capsys, "sync", "-c", str(config))
    assert code == 2
    assert "nowhere.json does not exist; check [source] path" in err
    (config.parent / "forms" / "stakeholders.csv").unlink()
    code, _, err = run(capsys, "sync", "-c", str(config))
    assert code == 2 and "roster" in err
