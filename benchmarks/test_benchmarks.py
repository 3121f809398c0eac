"""Ratios of the plugin's worker to plain ``manage.py qcluster`` on the same project.

Each benchmark alternates the two commands, repeats them, prints the medians and their ratio
and asserts only that every task was processed: timings vary too much on a shared machine to
fail on. See docs/benchmarks.md.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.measure import (
    ORM,
    Measure,
    Results,
    Row,
    alternate,
    children_cpu,
    command,
    interleave,
    print_table,
    runs,
)
from tests.harness import Project, Worker
from tests.services import Server

# A thousand tasks ten times over take more than the tests' default timeout on a busy machine.
pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(3600)]

TASKS = 1000
# Each run takes a few seconds: the ratio of medians of 12 runs moves far less with the
# machine's slow spells than that of 5.
THROUGHPUT_RUNS = runs(default=12)
STOP_RUNS = 5
# Tasks stored before the stop signal, so that the cluster is busy when it arrives.
STOP_AFTER = 100


def redis_q_cluster(server: Server, db: int) -> dict[str, Any]:
    settings = {key: value for key, value in ORM.items() if key not in ("orm", "poll")}
    return {**settings, "redis": {"host": server.host, "port": server.port, "db": db}}


def drain(project: Project, workers: list[Worker], queue_left: Callable[[], int]) -> Measure:
    """Return a measurement of a run that starts with 1,000 queued tasks and ends once done.

    It gives tasks per second from process start to the last result stored, and the CPU
    seconds the whole process tree used from start to exit, which other processes on the
    machine disturb less than elapsed time.
    """
    results = Results(project)

    def measure(kind: str) -> dict[str, float]:
        results.clear()
        project.enqueue("noop", count=TASKS)
        cpu_before = children_cpu()
        started = time.monotonic()
        worker = project.start(*command(kind))
        workers.append(worker)
        done = results.wait_for(TASKS, worker)
        assert worker.stop(signal.SIGTERM) == 0, worker.output()
        cpu = children_cpu() - cpu_before
        assert results.successes() == TASKS, worker.output()
        assert queue_left() == 0
        return {"tasks/s": TASKS / (done - started), "CPU s": cpu}

    return measure


def test_throughput_orm_and_redis(
    make_project: Callable[..., Project],
    workers: list[Worker],
    redis_server: Server,
    redis_db: int,
) -> None:
    import redis

    orm = make_project("orm", Q_CLUSTER=ORM)
    on_redis = make_project("redis", Q_CLUSTER=redis_q_cluster(redis_server, redis_db))
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=redis_db)
    redis_queued = lambda: int(client.llen("django_q:bench:q"))  # noqa: E731
    # Both brokers in every round, so that a slow spell of the machine falls on both alike.
    samples = interleave(
        THROUGHPUT_RUNS,
        {
            "orm": drain(orm, workers, Results(orm).queued_in_orm),
            "redis": drain(on_redis, workers, redis_queued),
        },
    )
    orm_samples, redis_samples = samples["orm"], samples["redis"]

    print_table(
        f"Throughput of {TASKS} no-op tasks, 2 workers",
        [
            Row("ORM/SQLite tasks/s", orm_samples["tasks/s"], floor=0.98),
            Row("Redis tasks/s", redis_samples["tasks/s"], floor=0.98),
            Row("ORM/SQLite CPU s, whole tree", orm_samples["CPU s"]),
            Row("Redis CPU s, whole tree", redis_samples["CPU s"]),
        ],
    )


def test_stop_under_load(make_project: Callable[..., Project], workers: list[Worker]) -> None:
    project = make_project("stop", Q_CLUSTER=ORM)
    results = Results(project)

    def measure(kind: str) -> dict[str, float]:
        results.clear()
        project.enqueue("noop", count=TASKS)
        worker = project.start(*command(kind))
        workers.append(worker)
        results.wait_for(STOP_AFTER, worker)
        # Only the main process gets the signal, as a process manager sends it.
        signalled = time.monotonic()
        assert worker.stop(signal.SIGTERM, timeout=120) == 0, worker.output()
        elapsed = time.monotonic() - signalled
        stored = results.stored()
        assert stored >= STOP_AFTER
        assert results.successes() == stored, worker.output()
        assert stored + results.queued_in_orm() == TASKS, "a task was lost or run twice"
        return {"seconds": elapsed}

    samples = alternate(STOP_RUNS, measure)
    print_table(
        f"SIGTERM to exit with tasks still queued ({TASKS} no-op tasks, ORM/SQLite)",
        [Row("seconds to exit", samples["seconds"])],
    )
