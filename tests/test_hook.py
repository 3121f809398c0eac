"""The discovery hook as users meet it: attached by the app, through ``manage.py``."""

from __future__ import annotations

import importlib
import shutil
import site
import subprocess
import sys
from pathlib import Path

import django_prodserver
import pytest

from prodserver_djangoq2 import hook
from prodserver_djangoq2.backend import DjangoQ2Worker
from prodserver_djangoq2.discovery import resolve_backend
from tests.distributions import write_distribution, write_plugins
from tests.harness import PRODSERVER_MAJOR, REPO, WORKER_COMMAND, Project

RESOLVER_MODULE = importlib.import_module(hook.RESOLVER_MODULES[PRODSERVER_MAJOR])


def test_app_attaches_the_resolver() -> None:
    assert RESOLVER_MODULE.import_string is resolve_backend


LATE_IMPORT = """
import sys
from importlib import import_module
from prodserver_djangoq2 import hook
from prodserver_djangoq2.discovery import resolve_backend
name = hook.RESOLVER_MODULES[int(hook.prodserver_version().split(".")[0])]
print(name in sys.modules, "django_prodserver.management.base" in sys.modules)
print(import_module(name).import_string is resolve_backend)
"""


def test_the_hook_waits_for_the_command_module_and_attaches_when_it_loads(
    project: Project,
) -> None:
    # A process that runs no django-prodserver command (here `shell`, as a web process would)
    # imports none of its command modules; one that imports them later finds the hook there.
    result = project.manage("shell", "-c", LATE_IMPORT)
    assert result.returncode == 0, result.stderr
    # (Django 5.2's shell first says which models it imported.)
    assert " ".join(result.stdout.splitlines()[-2:]).split() == ["False", "False", "True"]


@pytest.mark.parametrize("unknown", ["9.0.0", "1.2", "main", ""])
def test_versions_the_hook_does_not_know_have_no_resolver(unknown: str) -> None:
    assert hook.resolver_module(unknown) is None


def test_attaching_twice_does_not_stack() -> None:
    assert hook.attach() and hook.attach()
    assert RESOLVER_MODULE.import_string is resolve_backend


def test_another_plugins_copy_of_the_hook_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def other_plugins_resolver(path: str) -> object:
        return path

    other_plugins_resolver.resolves_backend_names = True  # type: ignore[attr-defined]
    monkeypatch.setattr(RESOLVER_MODULE, "import_string", other_plugins_resolver)
    assert hook.attach()
    assert RESOLVER_MODULE.import_string is other_plugins_resolver


def test_the_hook_reaches_the_function_that_resolves_backend_names() -> None:
    # The name django-prodserver's command calls, looked up where the command looks it up.
    owner, _, function = hook.RESOLVING_FUNCTIONS[PRODSERVER_MAJOR].partition(".")
    resolving = getattr(getattr(RESOLVER_MODULE, owner), function)
    assert resolving.__globals__["import_string"]("djangoq2") is DjangoQ2Worker


def test_prodserver_alias_lets_only_this_worker_through() -> None:
    from django_prodserver.management.commands.prodserver import Command

    if PRODSERVER_MAJOR < 3:
        assert not hasattr(Command, "backend_base_class")
        return
    # 3.x made `prodserver` an alias of `server`, which refuses worker backends.
    from django_prodserver.backends.base import BaseServerBackend, BaseWorkerBackend

    class ProjectWorker(DjangoQ2Worker):
        pass

    class OtherPackagesWorker(BaseWorkerBackend):
        pass

    allowed = Command.backend_base_class
    assert issubclass(DjangoQ2Worker, allowed)
    assert issubclass(ProjectWorker, allowed)
    assert issubclass(BaseServerBackend, allowed)
    assert not issubclass(OtherPackagesWorker, allowed)


# django-prodserver 2 has no worker command: the case exists on 3 only.
if PRODSERVER_MAJOR >= 3:

    def test_prodserver_alias_still_refuses_other_workers(project: Project) -> None:
        project.settings["PRODUCTION_PROCESSES"] = {
            "tasks": {"BACKEND": "django_prodserver.backends.workers.django_q2.DjangoQ2Worker"}
        }
        project.write()
        result = project.manage("prodserver", "tasks")
        assert result.returncode == 1
        assert "is not a valid server backend" in result.stderr


def test_unknown_backend_name_is_one_line_with_a_suggestion(project: Project) -> None:
    project.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": "djangoq"}}
    project.write()
    result = project.manage("prodserver", "worker")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("CommandError: No backend named 'djangoq'")
    assert line.endswith("did you mean 'djangoq2'?")


def test_broken_plugin_through_manage_py(project: Project, tmp_path: Path) -> None:
    write_plugins(tmp_path / "plugins")
    project.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": "broken"}}
    project.write()
    env = {"PYTHONPATH": f"{tmp_path / 'plugins'}"}
    result = project.manage("prodserver", "worker", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "'broken' from distribution 'broken-plugin'" in result.stderr
    traced = project.manage("prodserver", "worker", "--traceback", env=env)
    assert "ModuleNotFoundError: No module named 'module_that_does_not_exist'" in traced.stderr
    assert "direct cause" in traced.stderr


def test_unrecognised_prodserver_version_says_so_once(project: Project, tmp_path: Path) -> None:
    # A newer django-prodserver ahead of the installed one on sys.path: its metadata, and a
    # copy of the installed package that says 9.0.0.
    write_distribution(tmp_path / "future", "django-prodserver", "9.0.0", {}, {})
    package = tmp_path / "future" / "django_prodserver"
    shutil.copytree(Path(django_prodserver.__file__).parent, package)
    (package / "__init__.py").write_text('__version__ = "9.0.0"\n')
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "prodserver_djangoq2.DjangoQ2Worker", "ARGS": {"run-once": None}}
    }
    project.write()
    env = {"PYTHONPATH": str(tmp_path / "future")}
    result = project.manage(WORKER_COMMAND, "worker", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("django-prodserver 9.0.0 is not supported") == 1
    assert "'BACKEND': 'prodserver_djangoq2.DjangoQ2Worker'" in result.stderr
    # Other processes (web, migrate, shell) are not told: they do not use the hook.
    for command in (["check"], ["migrate", "--verbosity=0"]):
        other = project.manage(*command, env=env)
        assert other.returncode == 0, other.stderr
        assert "not supported" not in other.stderr


@pytest.mark.parametrize(
    ("missing", "backend", "expected"),
    [
        ("django_q", "djangoq2", "Add 'django_q' to INSTALLED_APPS"),
        ("prodserver_djangoq2", "prodserver_djangoq2.DjangoQ2Worker", "Add 'prodserver_djangoq2'"),
    ],
)
def test_missing_app_is_one_actionable_line(
    project: Project, missing: str, backend: str, expected: str
) -> None:
    project.settings["INSTALLED_APPS"] = [
        app
        for app in [
            "django.contrib.contenttypes",
            "django_prodserver",
            "prodserver_djangoq2",
            "django_q",
        ]
        if app != missing
    ]
    project.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": backend}}
    project.write()
    result = project.manage(WORKER_COMMAND, "worker")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"CommandError: {expected}")


def test_missing_django_q2_is_one_actionable_line(tmp_path: Path) -> None:
    # An environment where django-q2 is really not installed: every installed package but it.
    packages = tmp_path / "site"
    packages.mkdir()
    for source in Path(site.getsitepackages()[0]).iterdir():
        if not source.name.startswith(("django_q", "_virtualenv", "__editable__")):
            (packages / source.name).symlink_to(source)
    project = Project(tmp_path / "project")
    project.settings["INSTALLED_APPS"] = [
        "django.contrib.contenttypes",
        "django_prodserver",
        "prodserver_djangoq2",
    ]
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "prodserver_djangoq2.DjangoQ2Worker"}
    }
    project.write()
    paths = [project.root, packages, REPO / "src", REPO]
    env = {**project.environment(), "PYTHONPATH": ":".join(map(str, paths))}
    result = subprocess.run(
        [sys.executable, "-S", "manage.py", WORKER_COMMAND, "worker"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "django-q2 is not installed" in result.stderr.strip().splitlines()[-1]
