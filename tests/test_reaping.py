"""End to end: the worker's main process reaps the orphans it adopts while its cluster runs.

A task that starts a process and returns without waiting for it leaves that process behind
once its task worker exits (here after every task, with ``recycle: 1``). The worker's main
process is a child subreaper, so such orphans become its children; when they exit they must
not pile up as zombies for the worker's whole life.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

from tests.harness import ORM_Q_CLUSTER, Project, Worker

TASKS = 50
ORPHAN_SECONDS = 1
RECYCLE_EVERY_TASK = {**ORM_Q_CLUSTER, "recycle": 1}


def zombie_children(pid: int) -> list[int]:
    zombies = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return zombies


def test_orphans_of_tasks_are_reaped_while_the_cluster_runs(
    tmp_path: Path, workers: list[Worker]
) -> None:
    project = Project(tmp_path / "project", settings={"Q_CLUSTER": RECYCLE_EVERY_TASK})
    project.migrate()
    ids = project.enqueue("start_orphan", ORPHAN_SECONDS, count=TASKS)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    results = project.wait_for_results(ids, timeout=180, worker=worker)
    assert all(task["success"] for task in results.values())
    # The task workers that started the orphans are gone: the orphans came to the main process.
    assert worker.output().count("recycled worker") >= TASKS - RECYCLE_EVERY_TASK["workers"]
    orphans = [task["result"] for task in results.values()]
    deadline = time.monotonic() + ORPHAN_SECONDS + 30
    while time.monotonic() < deadline:
        left = [pid for pid in orphans if psutil.pid_exists(pid)]
        zombies = zombie_children(worker.pid)
        if not left and not zombies:
            break
        time.sleep(0.2)
    assert not zombies, f"{len(zombies)} zombie children of the main process"
    assert not left, f"{len(left)} orphans neither reaped nor ended"
    assert worker.process.poll() is None
    assert worker.stop(signal.SIGTERM) == 0
