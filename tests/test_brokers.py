"""End to end on every Django-Q2 broker: a real worker runs tasks, stores results, stops on SIGTERM.

ORM, Redis and SQS run against real servers (SQLite, PostgreSQL, ``redis-server``, moto's SQS
server); MongoDB runs against mongomock (see ``tests/brokers/mongomock_shim.py``).
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from tests import project_base
from tests.brokers import executions, mongomock_shim
from tests.harness import WORKER_COMMAND, Project, Worker, q_cluster_for
from tests.services import Postgres, Server, require_module

TASKS = 5


def q_cluster(**broker: Any) -> dict[str, Any]:
    """Return a small ``Q_CLUSTER`` for the broker given by ``broker``'s keys."""
    return q_cluster_for(**broker)


def broker_sizes(project: Project) -> list[int | None]:
    """Return Django-Q2's own count of queued and in-flight messages on the project's broker."""
    code = (
        "import json; from django_q.brokers import get_broker; b = get_broker(); "
        "print(json.dumps([b.queue_size(), b.lock_size()]))"
    )
    result = project.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    sizes: list[int | None] = json.loads(result.stdout.splitlines()[-1])
    return sizes


def run_tasks_and_stop(project: Project, workers: list[Worker], cluster: str = "tests") -> None:
    """Enqueue tasks, run the worker until they are stored, stop it with SIGTERM."""
    ids = project.enqueue("add", 2, 3, count=TASKS)
    assert broker_sizes(project)[0] == TASKS, "the tasks wait in the broker"
    worker = project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    check_results_and_stop(project, worker, ids, cluster)
    assert broker_sizes(project) in ([0, 0], [0, None])  # Redis does not track in-flight tasks


def check_results_and_stop(project: Project, worker: Worker, ids: list[str], cluster: str) -> None:
    assert len(ids) == TASKS
    results = project.wait_for_results(ids, worker=worker)
    assert [task["result"] for task in results.values()] == [5] * TASKS
    assert all(task["success"] and task["cluster"] == cluster for task in results.values())
    assert worker.stop(signal.SIGTERM) == 0, worker.output()
    assert "Traceback" not in worker.output()


def test_orm_broker_on_sqlite(project: Project, workers: list[Worker]) -> None:
    run_tasks_and_stop(project, workers)
    assert project.report()["queued"] == 0


def test_orm_broker_on_postgresql(
    tmp_path: Path, postgres_server: Postgres, workers: list[Worker]
) -> None:
    database = postgres_server.create_database(f"orm_{uuid.uuid4().hex}")
    project = Project(
        tmp_path / "p",
        settings={"DATABASES": {"default": database}, "Q_CLUSTER": q_cluster(orm="default")},
    )
    project.migrate()
    run_tasks_and_stop(project, workers)
    assert project.report()["queued"] == 0


def test_redis_broker(
    tmp_path: Path, redis_server: Server, redis_db: int, workers: list[Worker]
) -> None:
    redis = {"host": redis_server.host, "port": redis_server.port, "db": redis_db}
    project = Project(tmp_path / "p", settings={"Q_CLUSTER": q_cluster(redis=redis)})
    project.migrate()
    run_tasks_and_stop(project, workers)


def test_django_redis_broker(
    tmp_path: Path, redis_server: Server, redis_db: int, workers: list[Worker]
) -> None:
    caches = {
        **project_base.CACHES,
        "redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{redis_server.host}:{redis_server.port}/1",
        },
    }
    project = Project(
        tmp_path / "p", settings={"CACHES": caches, "Q_CLUSTER": q_cluster(django_redis="redis")}
    )
    project.migrate()
    run_tasks_and_stop(project, workers)
    # The cluster used the django_redis connection (database 1), not Redis' default database.
    import redis

    assert redis.Redis(host=redis_server.host, port=redis_server.port, db=0).dbsize() == 0


def test_sqs_broker(tmp_path: Path, moto_server: Server, workers: list[Worker]) -> None:
    # moto's server lives for the whole session: a queue of its own keeps this test independent.
    name = f"sqs-{uuid.uuid4().hex[:12]}"
    sqs = {
        "aws_region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        # Long polling of one second: an idle pusher neither spins nor delays the stop much.
        "receive_message_wait_time_seconds": 1,
    }
    project = Project(
        tmp_path / "p",
        settings={"Q_CLUSTER": q_cluster(name=name, sqs=sqs)},
        env={"AWS_ENDPOINT_URL": f"http://{moto_server.host}:{moto_server.port}"},
    )
    project.migrate()
    run_tasks_and_stop(project, workers, cluster=name)


def test_mongo_broker_on_mongomock(tmp_path: Path, workers: list[Worker]) -> None:
    require_module("mongomock", "pip install mongomock")
    ids_file = tmp_path / "mongo-ids.txt"
    project = Project(
        tmp_path / "p",
        settings={
            "INSTALLED_APPS": [*project_base.INSTALLED_APPS, "tests.brokers"],
            "Q_CLUSTER": q_cluster(mongo={"host": "127.0.0.1", "port": 27017}),
        },
        env={mongomock_shim.MONGOMOCK: "1"},
    )
    project.migrate()
    worker = project.start(
        WORKER_COMMAND,
        "worker",
        env={mongomock_shim.ENQUEUE: str(TASKS), mongomock_shim.IDS: str(ids_file)},
    )
    workers.append(worker)
    worker.wait_for_output("running.")
    check_results_and_stop(project, worker, ids_file.read_text().split(), "tests")


def test_orm_broker_runs_a_failed_task_again_after_retry(
    tmp_path: Path, workers: list[Worker]
) -> None:
    # At-least-once: a task that was not acknowledged (here: it failed) is handed out again
    # `retry` seconds after its claim, until `max_attempts`.
    log = tmp_path / "executions.log"
    project = Project(
        tmp_path / "p",
        settings={
            "INSTALLED_APPS": [*project_base.INSTALLED_APPS, "tests.brokers"],
            "Q_CLUSTER": q_cluster(orm="default", retry=2, timeout=1, max_attempts=2),
        },
        env={executions.EXECUTION_LOG: str(log)},
    )
    project.migrate()
    [task_id] = project.enqueue("add", 1)  # add() misses an argument: the task fails
    worker = project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    deadline = time.monotonic() + 60
    while project.report()["queued"]:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.5)
    [task] = project.report()["tasks"]
    assert not task["success"]
    assert task["attempt_count"] == 2
    assert executions.repeated(executions.read(log)) == {task_id: 2}
    assert worker.stop(signal.SIGTERM) == 0, worker.output()
