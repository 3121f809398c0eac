"""Django-Q2's missing migrations, read from its files and ``django_migrations`` alone.

Every answer is compared with the one Django's ``MigrationExecutor`` gives from the whole
migration graph, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import compileall
import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import override_settings

from prodserver_djangoq2.migration_state import APP_LABEL, missing_django_q_migrations
from tests.services import Postgres

ALIAS = "migration_state"
# A chain whose first two migrations are also squashed into one, and the same chain once the
# replaced files are deleted, as ``squashmigrations`` leaves them.
SQUASHED = {
    "0001_initial": ([], []),
    "0002_second": ([(APP_LABEL, "0001_initial")], []),
    "0001_squashed_0002_second": ([], [(APP_LABEL, "0001_initial"), (APP_LABEL, "0002_second")]),
    "0003_third": ([(APP_LABEL, "0002_second")], []),
}
SQUASHED_ONLY = {
    "0001_squashed_0002_second": ([], [(APP_LABEL, "0001_initial"), (APP_LABEL, "0002_second")]),
    "0003_third": ([(APP_LABEL, "0001_squashed_0002_second")], []),
}
MIGRATION_SOURCE = """\
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = {dependencies!r}
    operations = []
"""
# Only migrations that replace others say so, as makemigrations and squashmigrations write them.
REPLACES = "    replaces = {replaces!r}\n"


def write_migrations(root: Path, migrations: dict[str, Any]) -> str:
    """Write a migrations package under ``root``; return its name, new to ``sys.modules``."""
    package = f"q_migrations_{uuid.uuid4().hex}"
    directory = root / package
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    for name, (dependencies, replaces) in migrations.items():
        source = MIGRATION_SOURCE.format(dependencies=dependencies)
        if replaces:
            source += REPLACES.format(replaces=replaces)
        (directory / f"{name}.py").write_text(source)
    return package


@pytest.fixture(scope="module")
def migration_packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on ``sys.path`` for migration packages that stand in for Django-Q2's."""
    root = tmp_path_factory.mktemp("migration_packages")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [name for name in sys.modules if name.startswith("q_")]:
        del sys.modules[name]


@contextlib.contextmanager
def registered(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]
) -> Iterator[BaseDatabaseWrapper]:
    """Make ``config`` the database alias ``ALIAS`` for the duration; yield its connection."""
    # Django reads DATABASES into its connection handler once: the alias goes there.
    configured = connections.configure_settings({"default": {}, ALIAS: config})[ALIAS]
    monkeypatch.setitem(connections.settings, ALIAS, configured)
    try:
        yield connections[ALIAS]
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_db_blocker: Any,
) -> Iterator[BaseDatabaseWrapper]:
    """An empty database outside pytest-django's test databases, on each backend."""
    config: dict[str, Any]
    if request.param == "sqlite":
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        config = server.create_database(f"migration_state_{uuid.uuid4().hex[:12]}")
    with django_db_blocker.unblock(), registered(monkeypatch, config) as connection:
        yield connection


def django_answer(connection: BaseDatabaseWrapper) -> list[str]:
    """Return what Django's whole migration graph says Django-Q2 lacks on ``connection``."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes(APP_LABEL))
    return sorted(migration.name for migration, _ in plan)


def django_q_migrations_on_disk() -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sorted(name for app, name in loader.graph.nodes if app == APP_LABEL)


def record(connection: BaseDatabaseWrapper, names: list[str]) -> None:
    """Make ``names`` Django-Q2's only migrations recorded as applied."""
    recorder = MigrationRecorder(connection)
    recorder.ensure_schema()
    recorder.migration_qs.filter(app=APP_LABEL).delete()
    for name in names:
        recorder.record_applied(APP_LABEL, name)


# Django-Q2's own migrations


def test_migrated_database_lacks_none(database: BaseDatabaseWrapper) -> None:
    call_command("migrate", database=ALIAS, verbosity=0)
    assert missing_django_q_migrations(database) == []
    assert django_answer(database) == []


def test_database_migrated_to_an_older_release_lacks_the_later_ones(
    database: BaseDatabaseWrapper,
) -> None:
    call_command("migrate", APP_LABEL, "0016", database=ALIAS, verbosity=0)
    missing = missing_django_q_migrations(database)
    on_disk = django_q_migrations_on_disk()
    assert missing == on_disk[on_disk.index("0016_schedule_intended_date_kwarg") + 1 :]
    assert missing[0] == "0017_task_cluster_alter"
    assert missing == django_answer(database)


def test_database_without_the_migrations_table_lacks_every_one(
    database: BaseDatabaseWrapper,
) -> None:
    missing = missing_django_q_migrations(database)
    assert missing == django_q_migrations_on_disk()
    assert "0001_initial" in missing
    assert missing == django_answer(database)


def test_other_apps_migrations_are_not_imported(
    database: BaseDatabaseWrapper, migration_packages: Path
) -> None:
    call_command("migrate", database=ALIAS, verbosity=0)
    package = write_migrations(migration_packages, {"0001_initial": ([], [])})
    (migration_packages / package / "0001_initial.py").write_text("raise ImportError('read')\n")
    with override_settings(MIGRATION_MODULES={"contenttypes": package}):
        assert missing_django_q_migrations(database) == []
        with pytest.raises(ImportError, match="read"):
            django_answer(database)


def test_a_fully_migrated_chain_is_read_without_importing_it(
    database: BaseDatabaseWrapper, migration_packages: Path
) -> None:
    chain = {
        "0001_initial": ([], []),
        "0002_second": ([(APP_LABEL, "0001_initial")], []),
    }
    package = write_migrations(migration_packages, chain)
    record(database, list(chain))
    with override_settings(MIGRATION_MODULES={APP_LABEL: package}):
        assert missing_django_q_migrations(database) == []
        assert not [name for name in sys.modules if name.startswith(f"{package}.")]
        record(database, ["0001_initial"])
        assert missing_django_q_migrations(database) == ["0002_second"]
        assert django_answer(database) == ["0002_second"]


@pytest.mark.parametrize(
    ("recorded", "missing"),
    [
        ([], ["0001_squashed_0002_second", "0003_third"]),
        (["0001_initial", "0002_second"], ["0003_third"]),
    ],
)
def test_migrations_without_source_files(
    database: BaseDatabaseWrapper, migration_packages: Path, recorded: list[str], missing: list[str]
) -> None:
    # A sourceless install: whether they replace others is known only by importing them.
    package = write_migrations(migration_packages, SQUASHED)
    compileall.compile_dir(migration_packages / package, legacy=True, quiet=1)
    for source in (migration_packages / package).glob("0*.py"):
        source.unlink()
    record(database, recorded)
    with override_settings(MIGRATION_MODULES={APP_LABEL: package}):
        assert missing_django_q_migrations(database) == missing
        assert django_answer(database) == missing


# Squashed migrations, resolved as Django's loader resolves them


@pytest.mark.parametrize(
    ("recorded", "missing"),
    [
        ([], ["0001_squashed_0002_second", "0003_third"]),
        (["0001_initial", "0002_second"], ["0003_third"]),
        (["0001_initial", "0002_second", "0001_squashed_0002_second", "0003_third"], []),
        # Partly applied: the replaced migrations run, not the squashed one.
        (["0001_initial"], ["0002_second", "0003_third"]),
        # Recorded under its own name only: not applied, as Django sees it.
        (["0001_squashed_0002_second"], ["0001_squashed_0002_second", "0003_third"]),
    ],
)
def test_squashed_migrations(
    database: BaseDatabaseWrapper,
    migration_packages: Path,
    recorded: list[str],
    missing: list[str],
) -> None:
    package = write_migrations(migration_packages, SQUASHED)
    record(database, recorded)
    with override_settings(MIGRATION_MODULES={APP_LABEL: package}):
        assert missing_django_q_migrations(database) == missing
        assert django_answer(database) == missing


@pytest.mark.parametrize(
    ("recorded", "missing"),
    [
        ([], ["0001_squashed_0002_second", "0003_third"]),
        (["0001_initial", "0002_second"], ["0003_third"]),
        (["0001_initial", "0002_second", "0003_third"], []),
    ],
)
def test_squashed_migrations_whose_replaced_files_are_deleted(
    database: BaseDatabaseWrapper,
    migration_packages: Path,
    recorded: list[str],
    missing: list[str],
) -> None:
    package = write_migrations(migration_packages, SQUASHED_ONLY)
    record(database, recorded)
    with override_settings(MIGRATION_MODULES={APP_LABEL: package}):
        assert missing_django_q_migrations(database) == missing
        assert django_answer(database) == missing


@pytest.mark.parametrize("kind", ["disabled", "a module", "an empty directory"])
def test_migration_modules_without_migrations(
    database: BaseDatabaseWrapper, migration_packages: Path, kind: str
) -> None:
    module: str | None = None
    if kind == "a module":
        module = f"q_module_{uuid.uuid4().hex}"
        (migration_packages / f"{module}.py").write_text("")
    elif kind == "an empty directory":
        module = f"q_namespace_{uuid.uuid4().hex}"
        (migration_packages / module).mkdir()
    with override_settings(MIGRATION_MODULES={APP_LABEL: module}):
        assert missing_django_q_migrations(database) == []
        assert django_answer(database) == []


def test_migration_module_that_does_not_exist_is_an_error(
    database: BaseDatabaseWrapper,
) -> None:
    with override_settings(MIGRATION_MODULES={APP_LABEL: "q_no_such_migrations"}):
        with pytest.raises(ModuleNotFoundError):
            missing_django_q_migrations(database)
        with pytest.raises(ModuleNotFoundError):
            django_answer(database)


# Databases that cannot be read


@pytest.mark.parametrize(
    "config",
    [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "/nonexistent/directory/db.sqlite3"},
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "q",
            "HOST": "127.0.0.1",
            "PORT": "1",
            "USER": "u",
        },
    ],
    ids=["sqlite", "postgresql"],
)
def test_unreadable_database_raises_database_error(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any
) -> None:
    with (
        django_db_blocker.unblock(),
        registered(monkeypatch, config) as connection,
        pytest.raises(DatabaseError),
    ):
        missing_django_q_migrations(connection)
