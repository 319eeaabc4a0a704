"""Convert an XLSForm with whatever pyxform is installed; exit 1 on any warning or error.

CI runs it inside a throwaway venv holding pyxform==3.0.0 (what KoboToolbox runs):

    python tests/pyxform3_check.py forms/tip_victims.xlsx

It imports nothing from kobo_tip, so that venv needs pyxform only.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

from pyxform.errors import PyXFormError
from pyxform.xls2xform import convert


def check(xlsx_path: Path) -> list[str]:
    """Problems found converting ``xlsx_path``: pyxform's error or its warnings."""
    warnings: list[str] = []
    try:
        convert(xlsform=str(xlsx_path), warnings=warnings, form_name=xlsx_path.stem)
    except PyXFormError as exc:
        return [f"error: {exc}"]
    return [f"warning: {warning}" for warning in warnings]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python tests/pyxform3_check.py FORM.xlsx", file=sys.stderr)
        return 2
    xlsx_path = Path(argv[0])
    problems = check(xlsx_path)
    for problem in problems:
        print(f"{xlsx_path}: {problem}", file=sys.stderr)
    outcome = "FAILED" if problems else "converts cleanly"
    print(f"{xlsx_path} {outcome} with pyxform {version('pyxform')}.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
