"""Every Python example in the README and docs/ is a working settings module."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.harness import REPO, Project

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Run every worker the example defines once (start, then stop) where its broker is the ORM.
# What the examples read from the environment, as a deployment would provide it.
ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "example-key-id", "AWS_SECRET_ACCESS_KEY": "example-secret"}
RUN_ONCE = """
for _process in PRODUCTION_PROCESSES.values():
    if isinstance(_process.get("ARGS", {}), dict):
        _process["ARGS"] = {**_process.get("ARGS", {}), "run-once": None}
"""


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[: match.start()].count("\n") + 1
                found.append((f"{document.relative_to(REPO)}:{line}", match.group(2)))
    return found


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_example_passes_the_checks(tmp_path: Path, where: str, code: str) -> None:
    project = Project(tmp_path / "project", extra_settings_code=code, env=ENVIRONMENT)
    result = project.manage("check")
    assert result.returncode == 0, f"{where}:\n{result.stderr}"
    assert "ERROR" not in result.stderr, f"{where}:\n{result.stderr}"


ORM_EXAMPLES = [
    (where, code)
    for where, code in blocks("python")
    if '"orm"' in code and "PRODUCTION_PROCESSES" in code
]


@pytest.mark.parametrize(("where", "code"), ORM_EXAMPLES, ids=[w for w, _ in ORM_EXAMPLES])
def test_orm_example_workers_start_and_stop(tmp_path: Path, where: str, code: str) -> None:
    project = Project(tmp_path / "project", extra_settings_code=code + RUN_ONCE, env=ENVIRONMENT)
    project.migrate()
    namespace: dict[str, object] = {}
    exec(code, namespace)
    processes = namespace["PRODUCTION_PROCESSES"]
    assert isinstance(processes, dict)
    for name in processes:
        result = project.manage("prodserver", name)
        assert result.returncode == 0, f"{where} [{name}]:\n{result.stderr}"
        assert "running." in result.stderr, f"{where} [{name}]:\n{result.stderr}"


def test_entry_point_example_matches_pyproject() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    for where, code in blocks("toml"):
        example = tomllib.loads(code)
        if "project" in example:
            assert example["project"]["entry-points"] == declared, where
