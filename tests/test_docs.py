"""Every example in the README and docs/ works: Python, shell, INI, YAML and TOML blocks.

Not here: the quick starts (tests/test_readme.py runs them as written), the quoted outputs of
docs/troubleshooting.md (tests/test_troubleshooting.py) and docs/deployment/, whose unit files
and manifests have their own tests.
"""

from __future__ import annotations

import ast
import configparser
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import doc_output
from tests.harness import PRODSERVER_MAJOR, REPO, Project

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICK_STARTS = {(REPO / "README.md", "Quick start"), (REPO / "docs" / "quickstart.md", None)}
COMPARED_ELSEWHERE = {REPO / "docs" / "troubleshooting.md"}
SETTINGS_APPENDED_TO_A_NEW_PROJECT = "# At the end of mysite/settings.py"
# What the examples read from the environment, as a deployment would provide it.
ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "example-key-id", "AWS_SECRET_ACCESS_KEY": "example-secret"}
# Run every worker the example defines once (start, then stop).
RUN_ONCE = """
for _process in PRODUCTION_PROCESSES.values():
    if isinstance(_process.get("ARGS", {}), dict):
        _process["ARGS"] = {**_process.get("ARGS", {}), "run-once": None}
"""
# Commands that are checked, not run, and why.
NOT_RUN = {
    "pip": "installs from the package index; the package name and extras are checked instead",
    "make": "runs this project's own suites; the target is checked instead",
    "apt-get": "installs system packages",
}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def all_blocks() -> list[doc_output.Block]:
    found = []
    for document in DOCUMENTS:
        for block in doc_output.blocks(document):
            quick_start = (document, None) in QUICK_STARTS or (document, block.section) in (
                QUICK_STARTS
            )
            if not quick_start and document not in COMPARED_ELSEWHERE:
                found.append(block)
    return found


BLOCKS = all_blocks()


def of(*languages: str) -> list[doc_output.Block]:
    return [block for block in BLOCKS if block.language in languages]


def is_settings(code: str) -> bool:
    """Whether a Python block is a settings module (assignments), not code to run."""
    statements = ast.parse(code).body
    allowed = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Import, ast.ImportFrom)
    return all(isinstance(statement, allowed) for statement in statements)


SETTINGS = [b for b in of("python") if is_settings(b.code)]
CODE = [b for b in of("python") if not is_settings(b.code)]
ORM_SETTINGS = [b for b in SETTINGS if '"orm"' in b.code and "PRODUCTION_PROCESSES" in b.code]


def ids(blocks: list[doc_output.Block]) -> list[str]:
    return [block.where for block in blocks]


@pytest.mark.parametrize("block", SETTINGS, ids=ids(SETTINGS))
def test_python_example_passes_the_checks(tmp_path: Path, block: doc_output.Block) -> None:
    project = Project(tmp_path / "project", extra_settings_code=block.code, env=ENVIRONMENT)
    result = project.manage("check")
    assert result.returncode == 0, f"{block.where}:\n{result.stderr}"
    assert "ERROR" not in result.stderr, f"{block.where}:\n{result.stderr}"


@pytest.mark.parametrize("block", ORM_SETTINGS, ids=ids(ORM_SETTINGS))
def test_orm_example_workers_start_and_stop(tmp_path: Path, block: doc_output.Block) -> None:
    project = Project(
        tmp_path / "project", extra_settings_code=block.code + RUN_ONCE, env=ENVIRONMENT
    )
    project.migrate()
    namespace: dict[str, object] = {}
    exec(block.code, namespace)
    processes = namespace["PRODUCTION_PROCESSES"]
    assert isinstance(processes, dict)
    for name in processes:
        result = project.manage("prodserver", name)
        assert result.returncode == 0, f"{block.where} [{name}]:\n{result.stderr}"
        assert "running." in result.stderr, f"{block.where} [{name}]:\n{result.stderr}"


def page_settings(block: doc_output.Block) -> dict[str, Any]:
    """The settings that the page's Python blocks before ``block`` define, safe to run here.

    Only the process entries and an ORM ``Q_CLUSTER`` are taken: the pages' other brokers and
    databases are addresses of the reader's servers, never contacted from a test.
    """
    settings: dict[str, Any] = {}
    for earlier in SETTINGS:
        if earlier.path != block.path or earlier.line > block.line:
            continue
        namespace: dict[str, Any] = {}
        exec(earlier.code, namespace)
        if "PRODUCTION_PROCESSES" in namespace:
            settings["PRODUCTION_PROCESSES"] = namespace["PRODUCTION_PROCESSES"]
        q_cluster = namespace.get("Q_CLUSTER")
        if isinstance(q_cluster, dict) and "orm" in q_cluster:
            settings["Q_CLUSTER"] = {**q_cluster, "poll": 0.1, "guard_cycle": 0.2}
    return settings


@pytest.mark.parametrize("block", CODE, ids=ids(CODE))
def test_python_code_example_runs(tmp_path: Path, block: doc_output.Block) -> None:
    project = Project(tmp_path / "project", settings=page_settings(block), env=ENVIRONMENT)
    project.migrate()
    result = project.manage("shell", "--command", block.code)
    assert result.returncode == 0, f"{block.where}:\n{result.stderr}"


SHELL = of("sh", "console", "bash", "shell")


def shell_commands(block: doc_output.Block) -> list[str]:
    if block.language == "console":
        return [command for command, _ in doc_output.console(block.code)]
    return doc_output.commands(block.code)


def check_not_run(command: list[str], environment: dict[str, str], where: str) -> None:
    if command[0] == "pip":
        for requirement in command[2:]:
            match = re.fullmatch(r"([\w-]+)(?:\[([\w,-]+)\])?", requirement)
            assert match, f"{where}: unexpected requirement {requirement!r}"
            assert match.group(1) in (PYPROJECT["project"]["name"], "django-q2"), where
            extras = PYPROJECT["project"]["optional-dependencies"]
            for extra in filter(None, (match.group(2) or "").split(",")):
                assert extra in extras, f"{where}: no extra {extra!r} in pyproject.toml"
    elif command[0] == "make":
        makefile = (REPO / "Makefile").read_text()
        for target in [word for word in command[1:] if "=" not in word]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), (
                f"{where}: no target {target!r} in the Makefile"
            )
        # The variables that an example sets for the suites must be ones they read.
        read = "".join(path.read_text() for path in (REPO / "benchmarks").glob("*.py"))
        for name in environment:
            assert f'"{name}"' in read or f"$({name})" in makefile, f"{where}: nothing reads {name}"


@pytest.mark.parametrize("block", SHELL, ids=ids(SHELL))
def test_shell_example_runs(tmp_path: Path, block: doc_output.Block) -> None:
    if block.not_run is not None:
        assert block.not_run.strip(), f"{block.where}: say why the block is not run"
        return
    settings = page_settings(block)
    project = Project(tmp_path / "project", settings=settings, extra_settings_code=RUN_ONCE)
    project.migrate()
    for line in shell_commands(block):
        words = shlex.split(line)
        environment = {}
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            key, _, value = words.pop(0).partition("=")
            environment[key] = value
        if words[0] in NOT_RUN:
            check_not_run(words, environment, block.where)
            continue
        assert words[:2] == ["python", "manage.py"], (
            f"{block.where}: `{line}` is neither run here nor marked "
            "'<!-- not run: <reason> -->' on the line before the block"
        )
        arguments = words[2:]
        if arguments[0] == "worker" and PRODSERVER_MAJOR < 3:
            arguments[0] = "prodserver"
        result = project.manage(*arguments, env=environment)
        assert result.returncode == 0, f"{block.where}: `{line}`:\n{result.stderr}"
        if arguments[0] in ("worker", "prodserver"):
            assert "running." in result.stderr, f"{block.where}: `{line}`:\n{result.stderr}"


INI = of("ini")


@pytest.mark.parametrize("block", INI, ids=ids(INI))
def test_ini_example_parses(block: doc_output.Block) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(block.code, source=block.where)
    assert parser.sections(), block.where
    for section in parser.sections():
        for key, value in parser.items(section):
            assert value.strip(), f"{block.where}: [{section}] {key} has no value"


YAML = of("yaml", "yml")


@pytest.mark.parametrize("block", YAML, ids=ids(YAML))
def test_yaml_example_parses(block: doc_output.Block) -> None:
    document = yaml.safe_load(block.code)
    assert isinstance(document, dict) and document, block.where


DOCKER = of("docker", "dockerfile")


@pytest.mark.parametrize("block", DOCKER, ids=ids(DOCKER))
def test_dockerfile_example_parses(block: doc_output.Block, tmp_path: Path) -> None:
    # tests/test_health.py runs the commands of docs/health.md's block against a worker.
    from dockerfile_parse import DockerfileParser

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3-slim\n" + block.code)
    instructions = [i["instruction"] for i in DockerfileParser(str(dockerfile)).structure]
    assert instructions[0] == "FROM"
    assert len(instructions) > 1


TOML = of("toml")


@pytest.mark.parametrize("block", TOML, ids=ids(TOML))
def test_toml_example_parses(block: doc_output.Block) -> None:
    example = tomllib.loads(block.code)
    declared = PYPROJECT["project"]["entry-points"]
    group = example.get("project", {}).get("entry-points", {})
    for name, points in group.items():
        for point, value in points.items():
            # This package's own declaration must be the one in pyproject.toml.
            if value.startswith("prodserver_djangoq2"):
                assert declared.get(name, {}).get(point) == value, block.where


def test_every_block_is_checked() -> None:
    checked = {*SETTINGS, *CODE, *SHELL, *INI, *YAML, *TOML, *DOCKER}
    # Directives of the site (toctree, autodoc) are Sphinx's to check (make docs).
    unchecked = [b.where for b in BLOCKS if b not in checked and b.language]
    assert unchecked == [], "no test for these blocks"
