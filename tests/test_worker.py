"""End to end: the worker started through django-prodserver runs tasks and stops cleanly."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.harness import PRODSERVER_MAJOR, Project, Worker
from tests.test_stopping import alive, cluster_of

COMMANDS = [("prodserver", "worker")] + ([("worker", "worker")] if PRODSERVER_MAJOR >= 3 else [])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_worker_processes_tasks_and_stops_on_sigterm(
    project: Project, workers: list[Worker], command: tuple[str, str]
) -> None:
    ids = project.enqueue("add", 2, 3, count=5)
    worker = project.start(*command)
    workers.append(worker)
    results = project.wait_for_results(ids, worker=worker)
    assert [task["result"] for task in results.values()] == [5] * 5
    assert all(task["success"] and task["cluster"] == "tests" for task in results.values())
    assert worker.stop(signal.SIGTERM) == 0
    assert project.report()["queued"] == 0
    assert "Traceback" not in worker.output()


def test_sigint_stops_the_worker_with_status_zero(project: Project, workers: list[Worker]) -> None:
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    cluster = cluster_of(worker)
    trackers = [child for child in worker.descendants() if child not in cluster]
    assert cluster, "the cluster has processes"
    assert worker.stop(signal.SIGINT) == 0
    assert not alive(cluster)
    # multiprocessing's resource tracker (Python 3.14) ends by itself once the worker is gone.
    _, still_running = psutil.wait_procs(trackers, timeout=10)
    assert not still_running


def test_run_once_starts_and_stops(project: Project) -> None:
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "djangoq2", "ARGS": {"run-once": None}}
    }
    project.write()
    result = project.manage("prodserver", "worker", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stderr.lower()
