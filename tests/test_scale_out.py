"""Scale-out: three worker processes, started as three hosts would, share one broker.

Each process is its own cluster (same settings, same ``PRODUCTION_PROCESSES``); results go to
one PostgreSQL database, as they would from many machines. Every task must run and be stored;
the tasks that ran more than once are counted from an execution log (``tests/brokers``).
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import project_base
from tests.brokers import executions
from tests.harness import WORKER_COMMAND, Project, Worker, q_cluster_for
from tests.services import Postgres, Server

HOSTS = 3
TASKS = 2000


def q_cluster(**broker: Any) -> dict[str, Any]:
    # retry far beyond the test's length: a slow task must never be handed out again.
    return q_cluster_for(timeout=300, retry=600, guard_cycle=0.5, **broker)


def stored_tasks(database: dict[str, Any]) -> int:
    """Count stored results straight from PostgreSQL (cheaper than a ``manage.py`` per poll)."""
    import psycopg

    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=database["NAME"]
    ) as connection:
        row = connection.execute("SELECT count(*) FROM django_q_task").fetchone()
    assert row is not None
    return int(row[0])


def wait_for_count(database: dict[str, Any], hosts: list[Worker], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (done := stored_tasks(database)) < TASKS:
        for host in hosts:
            assert host.process.poll() is None, f"a worker exited early:\n{host.output()}"
        assert time.monotonic() < deadline, f"{TASKS - done} of {TASKS} tasks not done"
        time.sleep(1)


def sentinels(host: Worker) -> set[int]:
    return {child.pid for child in psutil.Process(host.pid).children()}


def run_scale_out(
    project: Project, database: dict[str, Any], workers: list[Worker]
) -> dict[str, int]:
    """Start the hosts, enqueue, check every task ran once or more; return the repeated ones."""
    log = project.root.parent / "executions.log"
    project.env[executions.EXECUTION_LOG] = str(log)
    hosts = [project.start(WORKER_COMMAND, "worker") for _ in range(HOSTS)]
    workers.extend(hosts)
    for host in hosts:
        host.wait_for_output("running.")
    owner = {pid: f"host{n}" for n, host in enumerate(hosts, 1) for pid in sentinels(host)}

    ids = project.enqueue("noop", count=TASKS)
    assert len(set(ids)) == TASKS
    wait_for_count(database, hosts)

    report = project.report()
    stored = {task["id"]: task for task in report["tasks"]}
    assert set(stored) == set(ids), "every enqueued task has a stored result"
    assert all(task["success"] for task in stored.values())
    records = executions.read(log)
    assert {task_id for task_id, _ in records} == set(ids)
    repeated = executions.repeated(records)
    per_host = Counter(owner.get(sentinel, "unknown") for _, sentinel in records)
    print(
        f"\n{TASKS} tasks on {HOSTS} hosts: per host {dict(sorted(per_host.items()))}, "
        f"ran more than once: {len(repeated)}, attempt_count > 1: "
        f"{sum(task['attempt_count'] > 1 for task in stored.values())}"
    )
    assert set(per_host) == {f"host{n}" for n in range(1, HOSTS + 1)}, "every host took tasks"

    assert [host.stop(signal.SIGTERM) for host in hosts] == [0] * HOSTS
    assert not [host.output() for host in hosts if "Traceback" in host.output()]
    return repeated


@pytest.fixture
def database(postgres_server: Postgres) -> dict[str, Any]:
    entry = postgres_server.create_database(f"scale_{uuid.uuid4().hex}")
    # Django-Q2 closes expired connections before each ORM poll and each stored result: with
    # the default CONN_MAX_AGE of 0 every poll opens a new PostgreSQL connection (docs/scaling.md).
    entry["CONN_MAX_AGE"] = 60
    return entry


def test_three_hosts_on_one_orm_broker(
    tmp_path: Path, database: dict[str, Any], workers: list[Worker]
) -> None:
    project = Project(
        tmp_path / "p",
        settings={"DATABASES": {"default": database}, "Q_CLUSTER": q_cluster(orm="default")},
    )
    add_execution_log_app(project)
    project.migrate()
    repeated = run_scale_out(project, database, workers)
    assert project.report()["queued"] == 0
    # A claim is a conditional UPDATE on the row's lock: one cluster wins, and the lock
    # outlives the test, so no task is handed out twice.
    assert repeated == {}


def test_three_hosts_on_one_redis_broker(
    tmp_path: Path,
    database: dict[str, Any],
    redis_server: Server,
    redis_db: int,
    workers: list[Worker],
) -> None:
    redis = {"host": redis_server.host, "port": redis_server.port, "db": redis_db}
    project = Project(
        tmp_path / "p",
        settings={"DATABASES": {"default": database}, "Q_CLUSTER": q_cluster(redis=redis)},
    )
    add_execution_log_app(project)
    project.migrate()
    repeated = run_scale_out(project, database, workers)
    import redis as redis_client

    client = redis_client.Redis(host=redis_server.host, port=redis_server.port, db=redis_db)
    assert client.llen("django_q:tests:q") == 0
    # BLPOP removes a message atomically for one client: nobody else can receive it again.
    assert repeated == {}


def add_execution_log_app(project: Project) -> None:
    project.settings["INSTALLED_APPS"] = [*project_base.INSTALLED_APPS, "tests.brokers"]
    project.write()
