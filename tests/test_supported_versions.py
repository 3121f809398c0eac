"""What the project claims to support is what tools/matrix.toml tests, everywhere it is said."""

from __future__ import annotations

import configparser
import itertools
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from prodserver_djangoq2.compatibility import TESTED, TESTED_REQUIREMENT
from tests.harness import REPO, Project

LINES: dict[str, dict[str, Any]] = tomllib.loads((REPO / "tools" / "matrix.toml").read_text())[
    "lines"
]
PROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def versions(key: str) -> list[str]:
    """Return the tested values of ``key`` (python, django...), oldest first."""
    return sorted({line[key] for line in LINES.values()}, key=version_key)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}\n")
    return text[start : text.index("\n## ", start)]


def readme_bullet(section: str, prefix: str) -> str:
    """Return the bullet that starts with ``prefix``, without its parenthesis."""
    (bullet,) = [row for row in section.splitlines() if row.startswith(f"- {prefix} ")]
    return bullet.split("(")[0]


def expand_braces(pattern: str) -> set[str]:
    """Expand tox's ``a{1,2}-b{3,4}`` into every name it stands for."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
    return {"".join(combination) for combination in itertools.product(*choices)}


def pinned(line: str, package: str) -> str:
    match = re.search(
        rf"^{re.escape(package)}==(\S+)$",
        (REPO / "constraints" / f"{line}.txt").read_text(),
        re.MULTILINE,
    )
    assert match, f"constraints/{line}.txt does not pin {package}"
    return match.group(1)


def test_classifiers_name_the_tested_python_and_django_versions() -> None:
    classifiers = PROJECT["classifiers"]
    pythons = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".*Python :: 3\.\d+", c)
    ]
    djangos = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django ::")
    ]
    assert pythons == versions("python")
    assert djangos == versions("django")


def test_requires_python_starts_at_the_oldest_tested_python_without_an_upper_bound() -> None:
    assert PROJECT["requires-python"] == f">={versions('python')[0]}"


def test_dependencies_start_at_the_oldest_tested_releases() -> None:
    requirements = {
        requirement.name: requirement.specifier
        for requirement in map(Requirement, PROJECT["dependencies"])
    }
    majors = versions("prodserver")
    assert requirements["django"] == SpecifierSet(f">={versions('django')[0]}")
    assert requirements["django-prodserver"] == SpecifierSet(
        f">={majors[0]}.0,<{int(majors[-1]) + 1}"
    )
    # No upper bound on django-q2: a newer release is checked when the worker starts.
    assert requirements["django-q2"] == SpecifierSet(f">={versions('django_q2')[0]}")


def test_the_compatibility_check_knows_the_tested_django_q2_releases() -> None:
    releases = versions("django_q2")
    assert (version_key(releases[0]), version_key(releases[-1])) == TESTED
    low, high = TESTED
    assert SpecifierSet(TESTED_REQUIREMENT.removeprefix("django-q2")) == SpecifierSet(
        f">={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"
    )


def test_the_readme_requirements_list_what_is_tested() -> None:
    section = readme_section("Requirements")
    pythons = re.findall(r"3\.\d+", readme_bullet(section, "Python"))
    djangos = re.findall(r"\d\.\d", readme_bullet(section, "Django"))
    majors = re.findall(r"(\d+)\.x", readme_bullet(section, "django-prodserver"))
    django_q2 = re.findall(r"1\.\d+", readme_bullet(section, "django-q2"))
    assert pythons == versions("python")
    assert djangos == versions("django")
    assert majors == versions("prodserver")
    assert django_q2 == versions("django_q2")
    assert "Python 3.12 is not claimed" in section


def test_tox_runs_every_python_3_11_line() -> None:
    tox = configparser.ConfigParser()
    tox.read(REPO / "tox.ini")
    envs = set().union(*map(expand_braces, tox["tox"]["envlist"].split()))
    assert envs == {name for name, line in LINES.items() if line["python"] == "3.11"}


def test_every_other_line_runs_in_a_debian_chroot_and_one_on_the_host() -> None:
    host = [name for name, line in LINES.items() if line.get("host")]
    makefile = (REPO / "Makefile").read_text()
    assert host == re.findall(r"^HOST_LINE := (\S+)$", makefile, re.MULTILINE)
    for name, line in LINES.items():
        assert name == (
            f"py{line['python'].replace('.', '')}-django{line['django'].replace('.', '')}"
            f"-prodserver{line['prodserver']}"
        )
        assert ("debian" in line) == (line["python"] != "3.11"), name


def test_each_django_prodserver_major_runs_on_the_newest_django() -> None:
    newest = versions("django")[-1]
    assert {line["prodserver"] for line in LINES.values() if line["django"] == newest} == set(
        versions("prodserver")
    )


def test_ci_runs_the_whole_matrix_from_a_fresh_debian() -> None:
    script = (REPO / ".ci" / "run").read_text().replace("\\\n", " ")
    commands = [row.split("#")[0].split() for row in script.splitlines()]
    # Every line: `make test` on the host one, `make matrix` with no selection on the others.
    assert any(command[-2:] == ["make", "test"] for command in commands if command)
    assert any(command[-2:] == ["make", "matrix"] for command in commands if command)
    installs = [command for command in commands if "install" in command]
    packages = {word for command in installs for word in command if not word.startswith("-")}
    assert {"python3-venv", "debootstrap", "make", "redis-server", "postgresql"} <= packages


@pytest.mark.parametrize("name", sorted(LINES))
def test_each_line_is_pinned_within_its_bounds(name: str) -> None:
    line = LINES[name]
    assert pinned(name, "django").startswith(f"{line['django']}.")
    assert pinned(name, "django-prodserver").startswith(f"{line['prodserver']}.")
    assert pinned(name, "django-q2").startswith(f"{line['django_q2']}.")


def test_only_tested_lines_have_pins() -> None:
    assert {path.stem for path in (REPO / "constraints").glob("*.txt")} == set(LINES)


def test_a_deprecation_in_the_package_code_fails_the_test_projects(tmp_path: Path) -> None:
    environment = Project(tmp_path / "project").environment()

    def warn_in(module: str) -> subprocess.CompletedProcess[str]:
        # A warning is attributed to the module whose code runs into the deprecation.
        code = f"""\
import warnings
exec("warnings.warn('old', DeprecationWarning)", {{"__name__": {module!r}, "warnings": warnings}})
"""
        command = [sys.executable, "-c", code]
        return subprocess.run(command, env=environment, capture_output=True, text=True)

    ours = warn_in("prodserver_djangoq2.runner")
    assert ours.returncode == 1
    assert "DeprecationWarning: old" in ours.stderr
    theirs = warn_in("django_q.cluster")
    assert theirs.returncode == 0, theirs.stderr


def test_no_project_url_points_anywhere() -> None:
    assert "urls" not in PROJECT
