"""Which of Django-Q2's migrations a database lacks, read without the project's migration graph.

Django's ``MigrationExecutor`` imports the migrations of every installed app and builds their
whole graph: on a project with a thousand migrations that costs more than the rest of the
worker's start. Django-Q2's tables are made by Django-Q2's migrations alone, and Django
records a migration as applied only after the migrations it depends on (it refuses an
inconsistent history), so Django-Q2's files and the rows recorded for them give the same
answer. Replacements (squashed migrations) are resolved the way Django's loader does; when
every file is recorded and no file's source mentions ``replaces``, nothing needs importing.
"""

from __future__ import annotations

import os
import pkgutil
from collections.abc import Iterable
from importlib import import_module

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

# django_q's AppConfig keeps the default label, its package name.
APP_LABEL = "django_q"

Key = tuple[str, str]


def missing_django_q_migrations(connection: BaseDatabaseWrapper) -> list[str]:
    """Return the names of Django-Q2's migrations not recorded as applied on ``connection``.

    Raises ``DatabaseError`` if the database cannot be read; a database without Django's
    ``django_migrations`` table lacks every migration.
    """
    found = _migration_files(APP_LABEL)
    if found is None:
        return []
    module_name, files = found
    # Usually every file is recorded and none replaces others: nothing to import to know.
    if not _may_replace(files.values()):
        recorded = _recorded(connection, {APP_LABEL})
        if all((APP_LABEL, name) in recorded for name in files):
            return []
    on_disk = {
        name: import_module(f"{module_name}.{name}").Migration(name, APP_LABEL) for name in files
    }
    replacing = {app for migration in on_disk.values() for app, _ in migration.replaces}
    recorded = _recorded(connection, {APP_LABEL} | replacing)
    nodes = set(on_disk)
    applied = {name for app, name in recorded if app == APP_LABEL}
    for name, migration in on_disk.items():
        if not migration.replaces:
            continue
        targets = [(str(app), str(target)) for app, target in migration.replaces]
        statuses = [key in recorded for key in targets]
        # As Django's loader: a replacement is applied only when everything it replaces is,
        # whatever is recorded under its own name.
        if all(statuses):
            applied.add(name)
        else:
            applied.discard(name)
        own = {target for app, target in targets if app == APP_LABEL}
        if all(statuses) or not any(statuses):
            nodes -= own
        else:
            # Partly applied: the replaced migrations are the ones that still have to run.
            nodes.discard(name)
            nodes |= own
    return sorted(nodes - applied)


def _migration_files(app_label: str) -> tuple[str, dict[str, str | None]] | None:
    """Return ``app_label``'s migrations module and its migrations, found as Django's loader does.

    Each migration's name maps to its source file, or ``None`` for a module without one
    (bytecode only). ``None`` when the app has no migrations module.
    """
    module_name, _ = MigrationLoader.migrations_module(app_label)
    if module_name is None:  # MIGRATION_MODULES disables the app's migrations
        return None
    # Django-Q2 ships its migrations package, so only a MIGRATION_MODULES entry can name a
    # module that does not exist: Django's loader raises then, and so does this.
    module = import_module(module_name)
    # A migrations.py module or an empty directory (a namespace package): no migrations.
    path = getattr(module, "__path__", None)
    if path is None or (getattr(module, "__file__", None) is None and not isinstance(path, list)):
        return None
    files: dict[str, str | None] = {}
    for finder, name, is_package in pkgutil.iter_modules(path):
        if is_package or name[0] in "_~":
            continue
        source = os.path.join(getattr(finder, "path", ""), f"{name}.py")
        files[name] = source if os.path.isfile(source) else None
    return module_name, files


def _may_replace(sources: Iterable[str | None]) -> bool:
    """Whether any of these migrations may replace others (only its source can say no)."""
    return any(source is None or b"replaces" in _read(source) for source in sources)


def _read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


def _recorded(connection: BaseDatabaseWrapper, app_labels: set[str]) -> set[Key]:
    """Return the (app, name) rows of ``app_labels`` in the ``django_migrations`` table."""
    table = MigrationRecorder.Migration._meta.db_table
    placeholders = ", ".join(["%s"] * len(app_labels))
    query = (
        f"SELECT app, name FROM {connection.ops.quote_name(table)} WHERE app IN ({placeholders})"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, sorted(app_labels))
            return {(str(app), str(name)) for app, name in cursor.fetchall()}
    except DatabaseError:
        # Listing every table costs more than the query on a project of hundreds: only now.
        with connection.cursor() as cursor:
            if table not in connection.introspection.table_names(cursor):
                return set()
        raise
