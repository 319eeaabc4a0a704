"""The documentation lives in the repository and keeps in step with the code.

A fresh clone has nothing beside it, so every document a reader is sent to must be in `docs/`;
every "contract section N" the code cites must exist there; every command and option of the
command line must be named in the README, the page a new user reads first.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from kobo_tip.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract.md"
# Text a reader of the repository reads: the code (templates included), its tests and benchmarks, the docs.
READ_FILES = [
    path
    for folder in ("src", "tests", "benchmarks", "docs")
    for path in (ROOT / folder).rglob("*")
    if path.suffix in {".py", ".md", ".j2", ".toml", ".mjs", ".java"} and "node_modules" not in path.parts
] + [ROOT / "README.md", ROOT / "Makefile"]
CITATION = re.compile(r"contract\s+sections?\s+(\d+)((?:\s*(?:,|and)\s*\d+)*)")


def test_the_contract_has_every_section_the_code_cites() -> None:
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", CONTRACT.read_text(encoding="utf-8"), re.M)}
    assert sections == set(range(1, 8))
    cited: dict[int, list[str]] = {}
    for path in READ_FILES:
        for found in CITATION.finditer(path.read_text(encoding="utf-8")):
            for number in (found.group(1), *re.findall(r"\d+", found.group(2))):
                cited.setdefault(int(number), []).append(path.name)
    assert cited, "the code cites the contract by section"
    assert set(cited) <= sections, {n: files for n, files in cited.items() if n not in sections}


def test_no_document_sends_the_reader_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|shared/design|indicator-spec\.md|spec section \d")
    this_file = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in READ_FILES
        if path.resolve() != this_file
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line) and "conftest" not in path.name
    ]
    assert offenders == []


def _commands(parser: argparse.ArgumentParser, prefix: str = "kobo-tip") -> dict[str, set[str]]:
    """Every command the parser knows (leaves only), with its long options."""
    found: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix} {name}"))
    if not found:
        found[prefix] = {
            option
            for action in parser._actions
            for option in action.option_strings
            if option.startswith("--") and option not in ("--help", "--debug", "--config")
        }
    return found


def test_the_readme_lists_every_command_with_its_options() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Every command") :].split("\n\n")[2]
    listed = {
        re.sub(r" \[\w+\]", "", row.split("`")[1]): set(re.findall(r"`(--[\w-]+)`", row.split("|")[3]))
        for row in table.splitlines()[2:]
    }
    assert listed == _commands(build_parser())
