"""XLSForm -> XForm with pyxform's Python API, checked by ODK Validate when Java is present."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pyxform.errors import PyXFormError
from pyxform.validators.odk_validate import ODKValidateError
from pyxform.xls2xform import convert

from kobo_tip.errors import FormError

JAVA_MISSING = (
    "Java could not be run, so ODK Validate did not check the form: install a Java runtime "
    "(for example 'apt-get install default-jre-headless') and build again."
)


@dataclass(frozen=True)
class Conversion:
    xform: str
    warnings: list[str]  # pyxform's and ODK Validate's
    validated: bool  # False when Java is missing


def convert_xlsform(xlsx_path: Path, form_name: str) -> Conversion:
    """Convert ``xlsx_path``; raises FormError with pyxform's or ODK Validate's message."""
    if shutil.which("java") is not None:
        try:
            return _convert(xlsx_path, form_name, validate=True)
        except OSError:
            pass  # java is on PATH but does not start: convert unvalidated, and say so
    try:
        return _convert(xlsx_path, form_name, validate=False)
    except OSError as exc:
        raise FormError(f"Cannot read {xlsx_path}: {exc.strerror or exc}.") from None


def _convert(xlsx_path: Path, form_name: str, *, validate: bool) -> Conversion:
    warnings: list[str] = []
    try:
        result = convert(
            xlsform=str(xlsx_path),
            warnings=warnings,
            validate=validate,
            pretty_print=True,
            form_name=form_name,
        )
    except PyXFormError as exc:
        raise FormError(f"pyxform rejected {xlsx_path.name}: {exc}") from None
    except ODKValidateError as exc:
        raise FormError(f"ODK Validate rejected {xlsx_path.name}: {str(exc).strip()}") from None
    return Conversion(xform=result.xform, warnings=list(dict.fromkeys(result.warnings)), validated=validate)
