"""The sdist holds what its Makefile and tox.ini need: a user of the sdist can run the tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.harness import REPO
from tests.services import require_binary

LINES = tomllib.loads((REPO / "tools" / "matrix.toml").read_text())["lines"]
HOST_LINE = next(name for name, line in LINES.items() if line.get("host"))
TOX_ENVS = [name for name, line in LINES.items() if line["python"] == "3.11"]
# What the commands write, never part of the source.
OUTPUTS = {".venv", ".tox", ".matrix", "build", "dist", ".mypy_cache", ".ruff_cache"}
LEFTOVERS = re.compile(r"(__pycache__|\.pyc$|\.sqlite3$|\.log$|^\.coverage)")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist of the working tree, built offline and unpacked."""
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), REPO],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = out.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    (root,) = (path for path in out.iterdir() if path.is_dir())
    return root


def named_paths(text: str) -> set[str]:
    """Return the paths of the working tree that ``text`` names (files or folders)."""
    found = set()
    for token in re.findall(r"[\w./${}()-]+", text):
        token = token.replace("$(HOST_LINE)", HOST_LINE)
        for path in (token.replace("{env_name}", env) for env in TOX_ENVS):
            top = path.split("/")[0]
            written = top in OUTPUTS or LEFTOVERS.search(path)
            if path.strip("./") and not written and (REPO / path).exists():
                found.add(path.rstrip("/"))
    return found


def source_files(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not LEFTOVERS.search(str(path.relative_to(folder)))
    }


def test_every_path_the_makefile_and_tox_name_is_in_the_sdist(unpacked: Path) -> None:
    named = named_paths((REPO / "Makefile").read_text() + (REPO / "tox.ini").read_text())
    # The lines' pins, the matrix, the suites and the demo at least.
    assert {f"constraints/{HOST_LINE}.txt", "tools/matrix.py", "requirements-test.txt"} <= named
    assert {"src", "tests", "example", "benchmarks"} <= named
    for path in sorted(named):
        if (REPO / path).is_dir():
            assert source_files(REPO / path) <= source_files(unpacked / path), path
        else:
            assert (unpacked / path).is_file(), path


def test_the_sdist_has_the_docs_pins_matrix_and_ci(unpacked: Path) -> None:
    for folder in ("docs", "constraints", "tools", ".ci"):
        assert source_files(REPO / folder) <= source_files(unpacked / folder), folder
    assert {f"{name}.txt" for name in LINES} <= source_files(unpacked / "constraints")


def test_make_finds_every_prerequisite_in_the_sdist(unpacked: Path) -> None:
    make = require_binary("make", "apt-get install make")
    result = subprocess.run(
        [make, "--dry-run", "test", "soak", "bench", "matrix", "pins", "demo"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_sdist_test_suite_collects(unpacked: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    collected = re.search(r"^\d+(/\d+)? tests collected", result.stdout, re.MULTILINE)
    assert collected, result.stdout[-500:]
