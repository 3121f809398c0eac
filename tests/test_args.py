"""qcluster's own options in ARGS do in the worker what they do for ``manage.py qcluster``."""

from __future__ import annotations

import signal

from prodserver_djangoq2.backend import without_settings_option
from prodserver_djangoq2.process import find_process_name
from tests.harness import Project, Worker

SWITCHED_SETTINGS = """\
from project_settings import *  # noqa: F403

Q_CLUSTER = {**Q_CLUSTER, "name": "switched"}  # noqa: F405
"""


def run_once(project: Project, **args: object) -> None:
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "djangoq2", "ARGS": {**args, "run-once": None}}
    }
    project.write()


def test_settings_option_runs_the_worker_under_that_module(project: Project) -> None:
    (project.root / "other_settings.py").write_text(SWITCHED_SETTINGS)
    run_once(project, settings="other_settings")
    result = project.manage("prodserver", "worker", "--settings=project_settings")
    assert result.returncode == 0, result.stderr
    assert "[switched]" in result.stderr


def test_settings_option_switches_only_once(project: Project) -> None:
    (project.root / "other_settings.py").write_text(
        SWITCHED_SETTINGS + "PRODUCTION_PROCESSES = {'worker': {'BACKEND': 'djangoq2', "
        "'ARGS': {'settings': 'third_settings'}}}\n"
    )
    run_once(project, settings="other_settings")
    result = project.manage("prodserver", "worker")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "already switched settings once" in result.stderr.strip().splitlines()[-1]


def test_pythonpath_option_makes_modules_importable(
    project: Project, workers: list[Worker]
) -> None:
    extra = project.root.parent / "extra"
    extra.mkdir()
    (extra / "local_broker.py").write_text("from django_q.brokers.orm import ORM as Broker\n")
    # An ORM broker subclass still reads Q_CLUSTER["orm"] for its database alias.
    project.settings["Q_CLUSTER"] = {
        **project.settings["Q_CLUSTER"],
        "broker_class": "local_broker.Broker",
    }
    project.settings["SILENCED_SYSTEM_CHECKS"] = ["prodserver_djangoq2.E002"]
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "djangoq2", "ARGS": {"pythonpath": str(extra)}}
    }
    project.write()
    # Enqueueing needs the broker class too; only the worker relies on ARGS for it.
    enqueue = project.manage("enqueue", "add", "1", "2", env={"PYTHONPATH": str(extra)})
    assert enqueue.returncode == 0, enqueue.stderr
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    [task] = project.wait_for_results(enqueue.stdout.split(), worker=worker).values()
    assert task["result"] == 3
    assert worker.stop(signal.SIGTERM) == 0


def test_traceback_option_shows_the_start_up_error_in_full(tmp_path: object) -> None:
    from pathlib import Path

    unmigrated = Project(Path(str(tmp_path)) / "project")
    run_once(unmigrated, traceback=None)
    result = unmigrated.manage("prodserver", "worker")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "RuntimeError: prodserver_djangoq2.E022" in result.stderr


def test_settings_option_is_removed_in_both_spellings() -> None:
    argv = ["manage.py", "worker", "--settings", "a", "w", "--settings=b", "--verbosity=2"]
    assert without_settings_option(argv) == ["manage.py", "worker", "w", "--verbosity=2"]


def test_process_name_of_an_entry_not_in_the_settings_is_unknown() -> None:
    assert find_process_name({"BACKEND": "djangoq2"}) == "worker"
    assert find_process_name({"BACKEND": "elsewhere"}) == "?"
