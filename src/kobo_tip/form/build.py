"""``kobo-tip form build``: config -> forms/<form_id>.xlsx -> forms/<form_id>.xml, validated."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path

from openpyxl.utils.exceptions import InvalidFileException

from kobo_tip.config import Settings
from kobo_tip.errors import FormError
from kobo_tip.form.builder import build_sheets
from kobo_tip.form.convert import JAVA_MISSING, convert_xlsform
from kobo_tip.form.writer import read_sheet, write_xlsx
from kobo_tip.labels import load_labels
from kobo_tip.sources.base import FormFiles

VERSION_FORMAT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class FormBuild:
    """The files of a build, the warnings to show, and whether ODK Validate checked the form."""

    files: FormFiles
    warnings: list[str]
    validated: bool

    @property
    def xlsx_path(self) -> Path:
        return self.files.xlsx_path

    @property
    def xml_path(self) -> Path:
        return self.files.xml_path

    @property
    def version(self) -> str:
        return self.files.version


def build_form(
    settings: Settings, *, ignore_warnings: bool = False, out_dir: Path | None = None
) -> FormBuild:
    """Write and convert the form. Raises FormError on an invalid form, and on a pyxform
    warning unless ``ignore_warnings`` (the xlsx is written either way)."""
    form = settings.form
    folder = Path(out_dir) if out_dir is not None else settings.path.parent / "forms"
    xlsx_path, xml_path = folder / f"{form.form_id}.xlsx", folder / f"{form.form_id}.xml"
    labels = [load_labels(language) for language in settings.project.languages]
    warnings = [warning for lab in labels for warning in lab.warnings]
    version = _new_version(xlsx_path)
    write_xlsx(build_sheets(settings, version, labels), xlsx_path)
    # An XForm from an earlier build must not sit beside an xlsx it no longer matches.
    xml_path.unlink(missing_ok=True)
    conversion = convert_xlsform(xlsx_path, form.form_id)
    if conversion.warnings and not ignore_warnings:
        raise FormError(
            f"pyxform warned about {xlsx_path}: {' | '.join(conversion.warnings)} "
            "(fix the config, or pass --ignore-warnings to keep the form anyway)."
        )
    try:
        xml_path.write_text(conversion.xform, encoding="utf-8")
    except OSError as exc:
        raise FormError(f"Cannot write {xml_path}: {exc.strerror}; check the folder's permissions.") from None
    warnings += conversion.warnings
    if not conversion.validated:
        warnings.append(JAVA_MISSING)
    files = FormFiles(form.form_id, form.title, version, xlsx_path, xml_path)
    return FormBuild(files=files, warnings=warnings, validated=conversion.validated)


def _new_version(xlsx_path: Path) -> str:
    """The UTC build time; one second past the previous build's version if that is not older."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    previous = _previous_version(xlsx_path)
    if previous is not None and previous >= now:
        now = previous + dt.timedelta(seconds=1)
    return now.strftime(VERSION_FORMAT)


def _previous_version(xlsx_path: Path) -> dt.datetime | None:
    if not xlsx_path.is_file():
        return None
    try:
        rows = read_sheet(xlsx_path, "settings")
        return dt.datetime.strptime(rows[0]["version"], VERSION_FORMAT)
    except (
        OSError,
        KeyError,
        IndexError,
        StopIteration,
        ValueError,
        zipfile.BadZipFile,
        InvalidFileException,
    ):
        return None  # not a form this tool wrote: nothing to stay ahead of
