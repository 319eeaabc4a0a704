"""``make test`` checks the system tools it needs first, each missing one said in one sentence."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from pg_cluster import find_bin

TOOLS = {
    "java": "java",
    "javac": "javac",
    "node": "node",
    "chromium": next(
        (name for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), "chromium"
    ),
    "initdb": "initdb",
}
SENTENCES = {
    "java": "make test needs Java for ODK Validate: apt-get install default-jdk-headless",
    "javac": (
        "make test needs a JDK (javac) to drive the form in JavaRosa, ODK Collect's engine: "
        "apt-get install default-jdk-headless"
    ),
    "node": "make test needs Node.js 20.19.3 or later for the ODK Web Forms check",
    "chromium": (
        "make test needs headless Chromium to lay out the reports (phone, desktop, A4): "
        "apt-get install chromium"
    ),
    "initdb": (
        "make test needs PostgreSQL (the store tests start a throwaway server): apt-get install postgresql"
    ),
}


def make_system(tmp_path: Path, missing: str = "") -> subprocess.CompletedProcess[str]:
    """``make system`` with a PATH that holds the tools the tests drive, but ``missing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, name in TOOLS.items():
        found = str(find_bin(name)) if tool == "initdb" else shutil.which(name)
        assert found, f"{name} is needed by the tests themselves"
        if tool != missing:
            (bin_dir / name).symlink_to(found)
    make = shutil.which("make")
    assert make
    return subprocess.run(
        # PostgreSQL's own folders are not looked in: only PATH says whether it is there.
        [make, "-s", "-C", str(REPO), "system", "PG_BINDIRS=/nonexistent"],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", list(TOOLS))
def test_a_missing_tool_is_named_with_how_to_install_it(tmp_path: Path, missing: str) -> None:
    done = make_system(tmp_path, missing)
    assert done.returncode != 0
    assert done.stdout.startswith(SENTENCES[missing]), done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_with_every_tool_the_check_passes(tmp_path: Path) -> None:
    done = make_system(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
