"""Fixtures for the benchmarks: throwaway projects, their processes and the broker servers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import workers  # noqa: F401
from tests.harness import Project
from tests.services import redis_db, redis_server  # noqa: F401

# SQLite commits wait for the disk, and on a shared machine the disk's speed depends on what
# else runs (ORM throughput swung eightfold between runs on disk); in memory, the benchmarks
# compare the commands rather than the disk.
MEMORY_FILESYSTEM = Path("/dev/shm")


@pytest.fixture
def project_root(tmp_path: Path) -> Iterator[Path]:
    """Yield a directory for projects, in memory if the machine has a tmpfs at /dev/shm."""
    if not MEMORY_FILESYSTEM.is_dir():
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="prodserver-djangoq2-bench-", dir=MEMORY_FILESYSTEM))
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
