"""Development autoreload (``"RELOAD": True``): a change restarts the worker with the new code."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.harness import (
    WORKER_COMMAND,
    Project,
    Worker,
    children_but_trackers,
    is_resource_tracker,
    q_cluster_for,
)
from tests.project_base import INSTALLED_APPS

TASK = "def version():\n    return {version}\n"
RESTARTED = "Code changed: restarting the worker."


@pytest.fixture
def dev_project(project: Project) -> Project:
    app = project.root / "devtasks"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text("")
    (app / "tasks.py").write_text(TASK.format(version=1))
    project.settings["INSTALLED_APPS"] = [*INSTALLED_APPS, "devtasks"]
    project.settings["DEBUG"] = True
    project.settings["PRODUCTION_PROCESSES"] = {"worker": {"BACKEND": "djangoq2", "RELOAD": True}}
    project.write()
    return project


def enqueue_version(project: Project) -> str:
    result = project.manage(
        "shell",
        "-c",
        "from django_q.tasks import async_task as a; print(a('devtasks.tasks.version'))",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def run_version(project: Project, worker: Worker) -> object:
    task_id = enqueue_version(project)
    [task] = project.wait_for_results([task_id], worker=worker, timeout=30).values()
    return task["result"] if task["success"] else "failed"


def edit(path: Path, text: str) -> None:
    path.write_text(text)
    # A new modification time even on file systems with coarse timestamps.
    later = time.time() + 1
    os.utime(path, (later, later))


def wait_for_restarts(worker: Worker, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while worker.output().count("running.") < count + 1:
        assert time.monotonic() < deadline, worker.output()
        assert worker.process.poll() is None, worker.output()
        time.sleep(0.1)


def ctrl_c(worker: Worker) -> int:
    """Send SIGINT to the foreground process group, as a terminal does."""
    os.killpg(worker.pid, signal.SIGINT)
    return worker.process.wait(timeout=60)


def cluster_processes(worker: Worker) -> list[psutil.Process]:
    """The watcher's descendants but resource trackers (which end once their holders have)."""
    return [
        p
        for p in worker.descendants()
        if p.status() != psutil.STATUS_ZOMBIE and not is_resource_tracker(p)
    ]


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_an_edited_task_module_runs_its_new_code(
    dev_project: Project, workers: list[Worker], broker: str, request: pytest.FixtureRequest
) -> None:
    if broker == "redis":
        server = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_db")
        url = f"redis://{server.host}:{server.port}/0"
        dev_project.settings["Q_CLUSTER"] = q_cluster_for(redis=url)
        dev_project.write()
    worker = dev_project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    assert run_version(dev_project, worker) == 1
    edited = time.monotonic()
    edit(dev_project.root / "devtasks" / "tasks.py", TASK.format(version=2))
    wait_for_restarts(worker, 1)
    assert run_version(dev_project, worker) == 2
    print(f"edit to new code's result: {time.monotonic() - edited:.1f} s")
    assert RESTARTED in worker.output()
    assert ctrl_c(worker) == 0
    assert "Traceback" not in worker.output()


@pytest.mark.parametrize("edits", [3, pytest.param(10, marks=pytest.mark.soak)])
def test_edits_leave_one_worker_and_no_orphans(
    dev_project: Project, workers: list[Worker], edits: int
) -> None:
    worker = dev_project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    first = cluster_processes(worker)
    for version in range(2, edits + 2):
        edit(dev_project.root / "devtasks" / "tasks.py", TASK.format(version=version))
        wait_for_restarts(worker, version - 1)
    assert run_version(dev_project, worker) == edits + 1
    now = cluster_processes(worker)
    assert len(children_but_trackers(worker.pid)) == 1  # one worker under the watcher
    assert len(now) == len(first)
    assert not [p for p in first if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert ctrl_c(worker) == 0
    assert not [p for p in now if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_syntax_error_keeps_the_watcher_and_a_fix_recovers(
    dev_project: Project, workers: list[Worker]
) -> None:
    models = dev_project.root / "devtasks" / "models.py"  # imported while Django starts
    worker = dev_project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    edit(models, "def broken(:\n")
    worker.wait_for_output("it starts again when a file changes")
    assert worker.process.poll() is None
    assert len(children_but_trackers(worker.pid)) == 0
    edit(models, "")
    edit(dev_project.root / "devtasks" / "tasks.py", TASK.format(version=3))
    wait_for_restarts(worker, 1)
    assert run_version(dev_project, worker) == 3
    assert ctrl_c(worker) == 0


def test_sigterm_to_the_watcher_stops_the_worker(
    dev_project: Project, workers: list[Worker]
) -> None:
    worker = dev_project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    children = cluster_processes(worker)
    assert worker.stop(signal.SIGTERM) == 0
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_reload_with_debug_off_is_a_warning(dev_project: Project) -> None:
    dev_project.settings["DEBUG"] = False
    dev_project.write()
    result = dev_project.manage("check")
    assert result.returncode == 0, result.stderr
    assert "prodserver_djangoq2.W007" in result.stderr
