"""Fixtures for the benchmarks: throwaway projects, their processes and the broker servers."""

from __future__ import annotations

import compileall
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.big_project import installed_apps, write_apps
from tests.conftest import workers  # noqa: F401
from tests.harness import REPO, Project
from tests.services import redis_db, redis_server  # noqa: F401

# SQLite commits wait for the disk, and on a shared machine the disk's speed depends on what
# else runs (ORM throughput swung eightfold between runs on disk); in memory, the benchmarks
# compare the commands rather than the disk.
MEMORY_FILESYSTEM = Path("/dev/shm")


def memory_directory(prefix: str) -> Path | None:
    """Return a new directory in memory, or ``None`` without a tmpfs at /dev/shm."""
    if not MEMORY_FILESYSTEM.is_dir():
        return None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=MEMORY_FILESYSTEM))


@pytest.fixture(scope="session", autouse=True)
def bytecode() -> None:
    """Compile this repository's modules, as installing a package does.

    Where the environment sets PYTHONDONTWRITEBYTECODE, every start would otherwise compile
    the plugin's modules again, a cost no installed copy pays.
    """
    for directory in ("src", "tests", "benchmarks"):
        compileall.compile_dir(REPO / directory, quiet=1)


@pytest.fixture
def project_root(tmp_path: Path) -> Iterator[Path]:
    """Yield a directory for projects, in memory if the machine has a tmpfs at /dev/shm."""
    root = memory_directory("prodserver-djangoq2-bench-")
    if root is None:
        yield tmp_path
        return
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_project(project_root: Path) -> Callable[..., Project]:
    """Return a factory of migrated SQLite projects with the given Django settings."""

    def create(name: str, **settings: Any) -> Project:
        project = Project(project_root / name, settings=settings)
        project.migrate()
        return project

    return create


@pytest.fixture(scope="session")
def big_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Yield a migrated project with many apps and migrations, generated once per session.

    Tests set its ``Q_CLUSTER`` and processes (``project.settings``, ``project.write()``).
    """
    root = memory_directory("prodserver-djangoq2-big-") or tmp_path_factory.mktemp("big")
    write_apps(root)
    compileall.compile_dir(root, quiet=1)
    apps = installed_apps()
    project = Project(root, extra_settings_code=f"INSTALLED_APPS = [*INSTALLED_APPS, *{apps!r}]")
    project.migrate()
    yield project
    shutil.rmtree(root, ignore_errors=True)
