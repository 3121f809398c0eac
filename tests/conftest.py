"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Project, Worker, start_children_with_default_hangup

pytest_plugins = ["tests.services"]


def pytest_configure(config: pytest.Config) -> None:
    start_children_with_default_hangup()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A migrated project on SQLite with the ORM broker and a ``worker`` process."""
    created = Project(tmp_path / "project")
    created.migrate()
    return created


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Background processes that are killed at the end of the test if still running."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()
