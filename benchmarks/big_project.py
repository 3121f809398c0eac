"""A generated Django project of the size of real ones: many apps, long migration chains.

Every app has three models and a chain of migrations that create them, add fields, add
indexes and, from the second app on, a foreign key to the previous app, so that the
migration graph has cross-app dependencies as real projects do. ``models.py`` matches the
state the last migration leaves, so ``makemigrations --check`` finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APPS = 60
MIGRATIONS_PER_APP = 20
MODELS = ("Account", "Order", "Event")
# One migration in this many adds an index instead of a field.
INDEX_EVERY = 5


@dataclass(frozen=True)
class Change:
    """What one migration after the initial one does to one model."""

    number: int
    model: str
    field: str | None  # an added field, or None for an added index


def app_name(index: int) -> str:
    return f"bench_app_{index:02d}"


def installed_apps() -> list[str]:
    return [app_name(index) for index in range(APPS)]


def migration_count() -> int:
    return APPS * MIGRATIONS_PER_APP


def changes() -> list[Change]:
    """Return the changes of migrations 0002 onwards, the same in every app."""
    result = []
    for number in range(2, MIGRATIONS_PER_APP + 1):
        model = MODELS[number % len(MODELS)]
        field = None if number % INDEX_EVERY == 0 else f"value_{number:02d}"
        result.append(Change(number, model, field))
    return result


def migration_name(number: int) -> str:
    return "0001_initial" if number == 1 else f"{number:04d}_change_{number:02d}"


def write_apps(root: Path) -> None:
    """Write every app's package under ``root`` (which must be on ``sys.path``)."""
    for index in range(APPS):
        package = root / app_name(index)
        (package / "migrations").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "migrations" / "__init__.py").write_text("")
        (package / "models.py").write_text(_models(index))
        (package / "migrations" / "0001_initial.py").write_text(_initial(index))
        previous = migration_name(1)
        for change in changes():
            name = migration_name(change.number)
            text = _migration(index, change, previous)
            (package / "migrations" / f"{name}.py").write_text(text)
            previous = name


def _models(index: int) -> str:
    lines = ["from django.db import models", ""]
    for model in MODELS:
        lines += ["", f"class {model}(models.Model):"]
        lines.append("    name = models.CharField(max_length=100)")
        lines.append("    created = models.DateTimeField(auto_now_add=True)")
        if model == MODELS[0] and index > 0:
            lines.append(
                f"    parent = models.ForeignKey('{app_name(index - 1)}.{MODELS[0]}', "
                "null=True, on_delete=models.SET_NULL)"
            )
        for change in changes():
            if change.model == model and change.field:
                lines.append(f"    {change.field} = models.IntegerField(null=True)")
        indexed = [change for change in changes() if change.model == model and not change.field]
        if indexed:
            lines += ["", "    class Meta:", "        indexes = ["]
            lines += [
                f"            models.Index(fields=['name'], name='{_index_name(index, change)}'),"
                for change in indexed
            ]
            lines.append("        ]")
        lines.append("")
    return "\n".join(lines)


def _index_name(index: int, change: Change) -> str:
    return f"b{index:02d}_{change.model.lower()}_{change.number:02d}"


def _initial(index: int) -> str:
    operations = []
    for model in MODELS:
        operations.append(
            f"""        migrations.CreateModel(
            name="{model}",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),"""
        )
    return _module([], operations)


def _migration(index: int, change: Change, previous: str) -> str:
    dependencies = [f'("{app_name(index)}", "{previous}")']
    operations = []
    if change.number == 2 and index > 0:
        # The foreign key to the previous app: a cross-app edge of the migration graph.
        dependencies.append(f'("{app_name(index - 1)}", "0001_initial")')
        operations.append(
            f"""        migrations.AddField(
            model_name="{MODELS[0].lower()}",
            name="parent",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                to="{app_name(index - 1)}.{MODELS[0].lower()}",
            ),
        ),"""
        )
    if change.field:
        operations.append(
            f"""        migrations.AddField(
            model_name="{change.model.lower()}",
            name="{change.field}",
            field=models.IntegerField(null=True),
        ),"""
        )
    else:
        operations.append(
            f"""        migrations.AddIndex(
            model_name="{change.model.lower()}",
            index=models.Index(fields=["name"], name="{_index_name(index, change)}"),
        ),"""
        )
    return _module(dependencies, operations)


def _module(dependencies: list[str], operations: list[str]) -> str:
    return "\n".join(
        [
            "import django.db.models.deletion",
            "from django.db import migrations, models",
            "",
            "",
            "class Migration(migrations.Migration):",
            f"    dependencies = [{', '.join(dependencies)}]",
            "",
            "    operations = [",
            *operations,
            "    ]",
            "",
        ]
    )
