"""Named clusters switch queues for real, with their ``ALT_CLUSTERS`` overrides."""

from __future__ import annotations

import signal
from typing import Any

import psutil
import pytest

from tests.harness import PRODSERVER_MAJOR, Project, Worker

ALT_CLUSTERS = {
    "high-priority": {"workers": 3, "timeout": 20, "retry": 40},
    "low-priority": {"workers": 1, "timeout": 25, "retry": 50},
}
PROCESSES = {
    "worker": {"BACKEND": "djangoq2"},
    "worker-high": {"BACKEND": "djangoq2", "ARGS": {"cluster-name": "high-priority"}},
    "worker-low": {"BACKEND": "djangoq2", "ARGS": {"name": "low-priority"}},
}
EXPECTED = {
    "worker": ("tests", 2, 30),
    "worker-high": ("high-priority", 3, 20),
    "worker-low": ("low-priority", 1, 25),
}
COMMANDS = ["prodserver"] + (["worker"] if PRODSERVER_MAJOR >= 3 else [])


@pytest.fixture
def multi(project: Project) -> Project:
    project.settings["Q_CLUSTER"] = {**project.settings["Q_CLUSTER"], "ALT_CLUSTERS": ALT_CLUSTERS}
    project.settings["PRODUCTION_PROCESSES"] = PROCESSES
    project.write()
    return project


@pytest.mark.parametrize("command", COMMANDS)
def test_each_worker_runs_only_its_own_queue(
    multi: Project, workers: list[Worker], command: str
) -> None:
    queues = {"worker": None, "worker-high": "high-priority", "worker-low": "low-priority"}
    ids = {
        name: multi.enqueue("cluster_settings", count=4, cluster=queue)
        for name, queue in queues.items()
    }
    started = {name: multi.start(command, name) for name in PROCESSES}
    workers.extend(started.values())
    every_id = [task_id for batch in ids.values() for task_id in batch]
    results = multi.wait_for_results(every_id, timeout=90)

    for name, (cluster, worker_count, timeout) in EXPECTED.items():
        for task_id in ids[name]:
            task = results[task_id]
            assert task["success"], task
            assert task["cluster"] == cluster
            assert task["attempt_count"] == 1
            assert task["result"]["cluster_name"] == cluster
            assert task["result"]["workers"] == worker_count
            assert task["result"]["timeout"] == timeout
        assert f"[{cluster}]" in started[name].output()

    assert multi.report()["queued"] == 0
    trees = {name: worker.descendants() for name, worker in started.items()}
    assert len(trees["worker-high"]) > len(trees["worker-low"])
    for worker in started.values():
        assert worker.stop(signal.SIGTERM) == 0
    # Each main process has exited; what it leaves (a resource tracker on Python 3.14, a process
    # still finishing its exit) must end by itself.
    psutil.wait_procs([p for tree in trees.values() for p in tree], timeout=30)
    leftovers = [p for tree in trees.values() for p in tree if _alive(p)]
    assert not leftovers


def test_the_started_process_stays_the_cluster_parent(
    multi: Project, workers: list[Worker]
) -> None:
    (task_id,) = multi.enqueue("worker_pid", cluster="high-priority")
    worker = multi.start("prodserver", "worker-high")
    workers.append(worker)
    result = multi.wait_for_results([task_id], worker=worker)[task_id]
    assert worker.pid in [parent.pid for parent in psutil.Process(result["result"]).parents()]
    assert worker.stop(signal.SIGTERM) == 0


def test_environment_name_selects_the_cluster(multi: Project, workers: list[Worker]) -> None:
    (task_id,) = multi.enqueue("cluster_settings", cluster="low-priority")
    worker = multi.start("prodserver", "worker", env={"Q_CLUSTER_NAME": "low-priority"})
    workers.append(worker)
    result = multi.wait_for_results([task_id], worker=worker)[task_id]
    assert result["result"]["cluster_name"] == "low-priority"
    assert result["result"]["workers"] == 1
    assert worker.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("env", [{}, {"Q_CLUSTER_NAME": "adhoc"}], ids=["args", "environment"])
def test_name_without_alt_clusters_is_a_plain_queue(
    project: Project, workers: list[Worker], env: dict[str, str]
) -> None:
    # No ALT_CLUSTERS key at all: Django-Q2 1.11 alone raises KeyError here.
    args: dict[str, Any] = {} if env else {"ARGS": {"name": "adhoc"}}
    project.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": "djangoq2", **args}}
    project.write()
    (task_id,) = project.enqueue(
        "cluster_settings",
        cluster="adhoc",
    )
    worker = project.start("prodserver", "worker", env=env)
    workers.append(worker)
    result = project.wait_for_results([task_id], worker=worker)[task_id]
    assert result["cluster"] == "adhoc"
    assert result["result"]["workers"] == 2
    assert worker.stop(signal.SIGTERM) == 0


def test_default_cluster_is_unchanged_without_a_name(
    project: Project, workers: list[Worker]
) -> None:
    (default_id,) = project.enqueue("cluster_settings")
    (other_id,) = project.enqueue("cluster_settings", cluster="elsewhere")
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    result = project.wait_for_results([default_id], worker=worker)[default_id]
    assert result["cluster"] == "tests"
    assert result["result"]["environment"] is None
    assert worker.stop(signal.SIGTERM) == 0
    assert project.report()["queued"] == 1
    assert other_id not in {task["id"] for task in project.report()["tasks"]}


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ({"name": "high-priority"}, {"Q_CLUSTER_NAME": "low-priority"}, "remove one of them"),
        ({"name": ""}, {}, "must be a non-empty string"),
        ({"name": 5}, {}, "must be a non-empty string"),
        ({"cluster-name": ["a"]}, {}, "must be a non-empty string"),
    ],
)
def test_bad_names_are_refused_in_one_line(
    multi: Project, args: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    multi.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": "djangoq2", "ARGS": args}}
    multi.write()
    result = multi.manage("prodserver", "worker", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: ")
    assert expected in last


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
