"""A named cluster runs with its own settings everywhere: Conf, Django-Q2's copies of it, tasks.

Django-Q2 copies several settings into default arguments when its modules are imported; a
worker that serves a named cluster must not keep the default cluster's copies.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.harness import WORKER_COMMAND, Project, Worker

# Every key differs from both Django-Q2's default and the default cluster's value.
ALT_SETTINGS: dict[str, Any] = {
    "compress": True,
    "cached": 120,
    "ack_failures": True,
    "bulk": 3,
    "label": "Long tasks",
    "catch_up": False,
    "max_attempts": 7,
    "save_limit": 17,
    "poll": 0.15,
    "guard_cycle": 0.3,
    "recycle": 11,
    "timeout": 45,
    "retry": 95,
    "workers": 3,
    "queue_limit": 5,
    "log_level": "WARNING",
    "scheduler": False,
}
COPIED_DEFAULTS = {
    "signing.dumps.compressed": "compress",
    "tasks.result.cached": "cached",
    "tasks.fetch.cached": "cached",
    "tasks.async_chain.cached": "cached",
}


# The short name is selected before Django-Q2 loads; a project's subclass re-executes.
BACKENDS = ["djangoq2", "tests.testapp.backends.ProjectWorker"]


@pytest.fixture(params=BACKENDS)
def long_cluster(project: Project, request: pytest.FixtureRequest) -> Project:
    project.settings["Q_CLUSTER"] = {
        **project.settings["Q_CLUSTER"],
        "ALT_CLUSTERS": {"long": ALT_SETTINGS},
    }
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": request.param},
        "worker-long": {"BACKEND": request.param, "ARGS": {"name": "long"}},
    }
    project.write()
    return project


def run_report(project: Project, workers: list[Worker], process: str, cluster: str | None) -> Any:
    ids = project.enqueue("cluster_report", cluster=cluster)
    worker = project.start(WORKER_COMMAND, process)
    workers.append(worker)
    [task] = project.wait_for_results(ids, worker=worker, timeout=90).values()
    assert worker.stop(signal.SIGTERM) == 0
    assert task["success"], task
    return task["result"]


def test_every_alt_clusters_setting_is_in_effect_inside_its_tasks(
    long_cluster: Project, workers: list[Worker]
) -> None:
    seen = run_report(long_cluster, workers, "worker-long", "long")
    assert seen["conf"] == ALT_SETTINGS
    for copy, key in COPIED_DEFAULTS.items():
        assert seen["defaults"][copy] == ALT_SETTINGS[key], copy
    assert seen["child_payload_compressed"] is True


def test_the_default_cluster_keeps_its_own_settings(
    long_cluster: Project, workers: list[Worker]
) -> None:
    seen = run_report(long_cluster, workers, "worker", None)
    assert seen["conf"]["compress"] is False
    assert seen["conf"]["workers"] == 2
    assert seen["defaults"]["signing.dumps.compressed"] is False
    assert seen["child_payload_compressed"] is False


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["manage.py", "worker", "worker-long"], "long"),
        (["manage.py", "prodserver", "--settings", "s", "worker-long", "-v", "2"], "long"),
        (["manage.py", "worker", "worker-string"], "short"),
        (["manage.py", "worker"], None),  # the first entry: the default cluster
        (["manage.py", "worker", "worker"], None),
        (["manage.py", "server", "worker-long"], None),
        (["manage.py", "migrate"], None),
        (["gunicorn", "site.wsgi"], None),
    ],
)
def test_the_cluster_is_known_from_the_command_line(argv: list[str], expected: str | None) -> None:
    from django.test import override_settings

    from prodserver_djangoq2.process import cluster_named_in, started_entry

    processes = {
        "worker": {"BACKEND": "djangoq2"},
        "worker-long": {"BACKEND": "djangoq2", "ARGS": {"name": "long"}},
        "worker-string": {"BACKEND": "djangoq2", "ARGS": "--run-once -n short"},
    }
    with override_settings(PRODUCTION_PROCESSES=processes):
        entry = started_entry(argv)
        assert (entry and cluster_named_in(entry)) == expected


def test_a_named_cluster_starts_once_with_the_short_name(long_cluster: Project) -> None:
    long_cluster.settings["PRODUCTION_PROCESSES"]["worker-long"]["ARGS"]["run-once"] = None
    long_cluster.write()
    result = long_cluster.manage(WORKER_COMMAND, "worker-long")
    assert result.returncode == 0, result.stderr
    short_name = long_cluster.settings["PRODUCTION_PROCESSES"]["worker"]["BACKEND"] == "djangoq2"
    assert result.stdout.count("Starting") == (1 if short_name else 2), result.stdout
