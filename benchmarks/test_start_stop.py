"""Start-up, idle stop and idle memory of the plugin's worker against plain ``qcluster``.

Both commands run on a small project and on a generated big one (``big_project``: dozens of
apps, over a thousand migrations), alternately, several times; the table gives the medians
and their ratios, and whether each ratio meets the goal of issue 12. Only wrong results fail
the benchmark, never a timing. See docs/benchmarks.md.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.big_project import APPS, migration_count
from benchmarks.measure import (
    COMMANDS,
    ORM,
    Measure,
    Results,
    Row,
    command,
    interleave,
    print_table,
    runs,
    runs_as,
    timed_stop,
    tree_memory,
)
from tests.harness import Project, Worker
from tests.services import require_binary

# Generating and migrating the big project alone takes minutes on a busy machine.
pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(3600)]

RUNS = runs(default=12)
# Idle time after the first task, for start-up work (first Stat saves) to settle before the
# memory is read and the stop signal sent.
SETTLE = 2.0
NAMED = "high"
SETTINGS: dict[str, Any] = {
    "Q_CLUSTER": {**ORM, "ALT_CLUSTERS": {NAMED: {"workers": 2}}},
    "PRODUCTION_PROCESSES": {
        "worker": {"BACKEND": "djangoq2"},
        NAMED: {"BACKEND": "djangoq2", "ARGS": {"name": NAMED}},
        "once": {"BACKEND": "djangoq2", "ARGS": {"run-once": True}},
        f"{NAMED}-once": {"BACKEND": "djangoq2", "ARGS": {"name": NAMED, "run-once": True}},
    },
}
# The same hash seed for both commands: sets and dicts iterate in the same order in each.
HASH_SEED = "0"


def start_to_first_task(
    project: Project, workers: list[Worker], kind: str, cluster: str | None = None
) -> tuple[Worker, float, float]:
    """Start ``kind`` with one task queued; return it, its start-up time and CPU seconds.

    The time runs from just before the process is created to the end of the task as the worker's
    clock stamped it in ``django_q_task.stopped``. The CPU seconds are the main process's by
    then: it does the start-up work (Django, checks) before the cluster forks and idles
    afterwards, so they measure that work, which other processes disturb less than time.
    """
    results = Results(project)
    results.clear()
    project.enqueue("noop", cluster=cluster)
    # qcluster serves a named cluster from the environment, the plugin from ARGS.
    environment = {"Q_CLUSTER_NAME": cluster} if cluster and kind == "qcluster" else {}
    started = time.time()
    worker = project.start(*command(kind, cluster or "worker"), env=environment)
    workers.append(worker)
    results.wait_for(1, worker)
    cpu = process_cpu(worker.pid)
    assert results.successes() == 1, worker.output()
    assert results.clusters() == [cluster or ORM["name"]], worker.output()
    return worker, results.first_stopped() - started, cpu


def process_cpu(pid: int) -> float:
    """Return the CPU seconds process ``pid`` has used, to the nanosecond where Linux tells."""
    try:
        # The scheduler's own count; /proc/PID/stat counts in ticks of 10 ms.
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def start_idle_stop(project: Project, workers: list[Worker]) -> Measure:
    def measure(kind: str) -> dict[str, float]:
        worker, start, cpu = start_to_first_task(project, workers, kind)
        time.sleep(SETTLE)
        # Sentinel, monitor, pusher and two workers.
        assert len(worker.descendants()) >= 5, worker.output()
        resident, _ = tree_memory(worker.pid)
        # Only the main process gets the signal, as a process manager sends it.
        stop = timed_stop(worker, signal.SIGTERM)
        return {"start": start, "start CPU": cpu, "RSS": resident, "stop": stop}

    return measure


def named_start(project: Project, workers: list[Worker]) -> Measure:
    def measure(kind: str) -> dict[str, float]:
        worker, start, cpu = start_to_first_task(project, workers, kind, cluster=NAMED)
        assert worker.stop(signal.SIGTERM) == 0, worker.output()
        return {"start": start, "start CPU": cpu}

    return measure


def test_start_stop_and_memory(
    make_project: Callable[..., Project], big_project: Project, workers: list[Worker]
) -> None:
    small = make_project("small", **SETTINGS)
    big_project.settings.update(SETTINGS)
    big_project.write()
    projects = {"small": small, "big": big_project}

    measures: dict[str, Measure] = {}
    for size, project in projects.items():
        measures[f"cycle {size}"] = start_idle_stop(project, workers)
        measures[f"named {size}"] = named_start(project, workers)
    samples = interleave(RUNS, measures)
    cycles = {size: samples[f"cycle {size}"] for size in projects}
    named = {size: samples[f"named {size}"] for size in projects}

    print_table(
        f"Start-up, idle stop and idle memory; small project, and big project of {APPS} apps "
        f"and {migration_count()} migrations",
        [
            Row("start to first task, small (s)", cycles["small"]["start"], limit=1.05),
            Row("start to first task, big (s)", cycles["big"]["start"], limit=1.05),
            Row("named cluster start, small (s)", named["small"]["start"], limit=1.10),
            Row("named cluster start, big (s)", named["big"]["start"], limit=1.10),
            Row("main process CPU to first task, small (s)", cycles["small"]["start CPU"]),
            Row("main process CPU to first task, big (s)", cycles["big"]["start CPU"]),
            Row("named cluster main process CPU, small (s)", named["small"]["start CPU"]),
            Row("named cluster main process CPU, big (s)", named["big"]["start CPU"]),
            Row("SIGTERM to exit, idle, small (s)", cycles["small"]["stop"], limit=1.00),
            Row("SIGTERM to exit, idle, big (s)", cycles["big"]["stop"], limit=1.00),
            Row("idle RSS of the tree, small (MiB)", cycles["small"]["RSS"], limit=1.05),
            Row("idle RSS of the tree, big (MiB)", cycles["big"]["RSS"], limit=1.05),
        ],
    )


def instructions_before_fork(
    project: Project, kind: str, valgrind: str, output: Path, cluster: str | None = None
) -> float:
    """Return the millions of instructions ``kind``'s main process runs before it forks.

    That is the whole start-up (Django, the checks, the preflight, creating the cluster) up to
    the fork of the sentinel, whose code is the same in both commands; run-once then stops the
    cluster. Under Valgrind every process runs on a simulated CPU: the count does not depend on
    what else the machine runs, which the times above do.
    """
    if kind == "plugin":
        arguments = command(kind, f"{cluster}-once" if cluster else "once")
        environment = {}
    else:
        arguments = ("qcluster", "--run-once")
        environment = {"Q_CLUSTER_NAME": cluster} if cluster else {}
    name = f"{kind}-{cluster or 'default'}"
    process = subprocess.Popen(
        [
            valgrind,
            "--tool=callgrind",
            # Counts up to the first fork go to a file of their own, ``<name>.<pid>.1``.
            "--dump-before=PyOS_BeforeFork",
            f"--callgrind-out-file={output}/{name}.%p",
            sys.executable,
            "manage.py",
            *arguments,
        ],
        cwd=project.root,
        env=project.environment({**environment, "PYTHONHASHSEED": HASH_SEED}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    log, _ = process.communicate(timeout=900)
    assert process.returncode == 0, log
    counts = (output / f"{name}.{process.pid}.1").read_text()
    assert "--dump-before=PyOS_BeforeFork" in counts, "the main process never forked"
    (summary,) = re.findall(r"^summary: (\d+)$", counts, re.MULTILINE)
    return int(summary) / 1e6


def test_start_up_instructions(
    make_project: Callable[..., Project], big_project: Project, tmp_path: Path
) -> None:
    valgrind = require_binary("valgrind", "apt-get install valgrind")
    small = make_project("small", **SETTINGS)
    big_project.settings.update(SETTINGS)
    big_project.write()
    rows = []
    for size, project in {"small": small, "big": big_project}.items():
        for cluster, limit in ((None, 1.05), (NAMED, 1.10)):
            samples = {
                kind: [
                    instructions_before_fork(project, runs_as(kind), valgrind, tmp_path, cluster)
                ]
                for kind in COMMANDS
            }
            what = "named cluster" if cluster else "default cluster"
            metric = f"start-up instructions, {what}, {size} (millions)"
            rows.append(Row(metric, samples, limit=limit))
    print_table(
        "Start-up work: instructions of the main process up to the fork of the sentinel, "
        "counted by Valgrind (the same in every run)",
        rows,
    )
