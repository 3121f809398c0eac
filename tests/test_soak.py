"""Soak: stop a loaded worker at random moments, many times, in both delivery modes.

Every stop must end with status 0 within a bound and leave no process behind; afterwards a
final run drains the ORM queue and every task enqueued along the way has a successful result.
``SOAK_RUNS`` (runs per signal and delivery mode, default 50) and ``SOAK_SEED``
reproduce or shorten a run.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from django_q.humanhash import humanize

from tests.harness import ORM_Q_CLUSTER, Worker
from tests.test_stopping import alive, cluster_of, make_project

RUNS = int(os.environ.get("SOAK_RUNS", "50"))
SEED = int(os.environ.get("SOAK_SEED", str(time.time_ns() % 2**32)))
STOP_BOUND = 30.0
MAX_DELAY = 2.0
# Tasks handed back by an interrupted run are delivered again 4 s later; every result is kept.
SOAK_Q_CLUSTER = {**ORM_Q_CLUSTER, "workers": 2, "timeout": 3, "retry": 4, "save_limit": 0}
BACKLOG_LOW = 40
BATCH = 60


@dataclass
class Stop:
    """What one interrupted run did."""

    mode: str
    delay: float
    seconds: float
    status: int | None
    orphans: list[psutil.Process]
    traceback: bool

    @property
    def clean(self) -> bool:
        return self.status == 0 and not self.orphans and not self.traceback


def queued(project_root: Path) -> int:
    with sqlite3.connect(project_root / "db.sqlite3", timeout=30) as connection:
        [(count,)] = connection.execute("SELECT COUNT(*) FROM django_q_ormq").fetchall()
    return int(count)


def interrupt(worker: Worker, signum: int, whole_group: bool, mode: str, delay: float) -> Stop:
    """Send the stop signal like a process manager would and watch the worker exit."""
    cluster = cluster_of(worker)
    every_process = [psutil.Process(worker.pid), *worker.descendants()]
    for process in every_process if whole_group else every_process[:1]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)
    started = time.monotonic()
    try:
        status: int | None = worker.process.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        status = None
        worker.kill()
    seconds = time.monotonic() - started
    return Stop(mode, delay, seconds, status, alive(cluster), "Traceback" in worker.output())


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_random_stops_never_hang_and_lose_no_task(
    tmp_path: Path, workers: list[Worker], capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    project = make_project(tmp_path / "project", SOAK_Q_CLUSTER)
    cases = [(signal.SIGTERM, False)] * RUNS + [(signal.SIGTERM, True)] * RUNS
    cases += [(signal.SIGINT, False)] * RUNS + [(signal.SIGINT, True)] * RUNS
    rng.shuffle(cases)
    ids: list[str] = []
    stops: list[Stop] = []
    began = time.monotonic()
    for signum, whole_group in cases:
        if queued(project.root) < BACKLOG_LOW:
            ids += project.enqueue("sleep", 0.1, count=BATCH)
            ids += project.enqueue("noop", count=BATCH // 2)
        worker = project.start("prodserver", "worker")
        workers.append(worker)
        # Most stops land while tasks run; a quarter while the cluster starts (the worker
        # handles stop signals from before "starting." on).
        worker.wait_for_output("starting." if rng.random() < 0.25 else "running.")
        delay = rng.uniform(0, MAX_DELAY)
        time.sleep(delay)
        mode = f"{signal.Signals(signum).name} {'every process' if whole_group else 'main only'}"
        stops.append(interrupt(worker, signum, whole_group, mode, delay))

    unclean = [stop for stop in stops if not stop.clean]
    summary = [f"\nsoak (seed {SEED}): {len(stops)} stops in {time.monotonic() - began:.0f}s"]
    for mode in sorted({stop.mode for stop in stops}):
        of_mode = [stop for stop in stops if stop.mode == mode]
        summary.append(
            f"  {mode:<22} runs {len(of_mode):>3}  hangs "
            f"{sum(stop.status is None for stop in of_mode)}  unclean "
            f"{sum(not stop.clean for stop in of_mode)}  max stop "
            f"{max(stop.seconds for stop in of_mode):.1f}s  mean stop "
            f"{sum(stop.seconds for stop in of_mode) / len(of_mode):.1f}s"
        )
    with capsys.disabled():
        print("\n".join(summary))
    assert not unclean, "\n".join(map(str, unclean))

    final = project.start("prodserver", "worker")
    workers.append(final)
    results = project.wait_for_results(ids, timeout=600, worker=final)
    assert final.stop(signal.SIGTERM, timeout=STOP_BOUND) == 0
    logs = "".join(worker.output() for worker in workers)
    names = {humanize(task_id) for task_id in ids}
    saved = Counter(n for n in re.findall(r"Processed '[^']*' \((\S+)\)", logs) if n in names)
    executed = Counter(n for n in re.findall(r" processing (\S+) '", logs) if n in names)
    failed = [task_id for task_id, task in results.items() if not task["success"]]
    with capsys.disabled():
        print(
            f"  tasks {len(ids)}  successful {len(ids) - len(failed)}  executed more than "
            f"once {sum(count > 1 for count in executed.values())}  results saved more than "
            f"once {sum(count > 1 for count in saved.values())}"
        )
    assert not failed
    assert project.report()["queued"] == 0
