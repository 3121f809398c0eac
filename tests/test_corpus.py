"""Public projects' ``Q_CLUSTER`` settings (tests/corpus), unchanged: migrate, check, a worker.

Installing the plugin must not stop a project's other commands: with each entry ``migrate`` and
``check`` succeed without an error of this package, and a worker starts, runs a real task and
stops on SIGTERM with exit 0. A worker-only concern that the start refuses is silenced the
documented way, in the process's ``SILENCED_CHECKS``, and nowhere else.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests import project_base
from tests.corpus import CORPUS, SEVERAL_BROKERS, Entry, located
from tests.harness import WORKER_COMMAND, Project, Worker, sqlite_databases
from tests.services import Postgres, Server

DATABASE_CACHE = "django.core.cache.backends.db.DatabaseCache"
# The monitor logs one of these once a task's result is stored.
RESULT_LOGGED = ("Processed '", "Failed '")
RESULT_TIMEOUT = 90


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def wait_for_a_result(worker: Worker) -> None:
    """Wait until the worker's cluster has stored the result of a task."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while not any(line in worker.output() for line in RESULT_LOGGED):
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited before a result:\n{worker.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no result within {RESULT_TIMEOUT}s:\n{worker.output()}")
        time.sleep(0.1)


def template_caches() -> dict[str, Any]:
    """The tests' cache and every database cache of the corpus, so templates have their tables."""
    tables = {
        cache["LOCATION"]
        for entry in CORPUS
        for cache in entry.caches.values()
        if cache["BACKEND"] == DATABASE_CACHE
    }
    return {
        **project_base.CACHES,
        **{table: {"BACKEND": DATABASE_CACHE, "LOCATION": table} for table in sorted(tables)},
    }


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every migration applied, copied into each SQLite entry's project."""
    template = Project(
        tmp_path_factory.mktemp("corpus") / "template", settings={"CACHES": template_caches()}
    )
    template.migrate()
    return template.root / "db.sqlite3"


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of a PostgreSQL database with every migration applied, to clone per entry."""
    name = f"corpus_template_{uuid.uuid4().hex[:8]}"
    database = postgres_server.create_database(name)
    root = tmp_path_factory.mktemp("corpus") / "postgres-template"
    Project(
        root, settings={"DATABASES": {"default": database}, "CACHES": template_caches()}
    ).migrate()
    return name


def cloned_postgres(server: Postgres, template: str) -> dict[str, Any]:
    """Create a database from ``template`` and return its ``DATABASES`` entry."""
    import psycopg

    name = f"corpus_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname="postgres", autocommit=True
    ) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": server.user,
        "HOST": server.host,
        "PORT": str(server.port),
    }


def processes(entry: Entry) -> dict[str, dict[str, Any]]:
    """The worker process, and one for the entry's named cluster if it has one."""
    worker: dict[str, Any] = {"BACKEND": "djangoq2"}
    if entry.silenced_at_start:
        worker["SILENCED_CHECKS"] = list(entry.silenced_at_start)
    found = {"worker": worker}
    if entry.alt_cluster:
        found[f"worker-{entry.alt_cluster}"] = {**worker, "ARGS": {"name": entry.alt_cluster}}
    return found


def entry_project(entry: Entry, request: pytest.FixtureRequest, root: Path) -> Project:
    """A throwaway project with the entry's settings, on the tests' own servers."""
    redis_host, redis_port = "", 0
    if entry.uses_redis:
        redis: Server = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_db")  # flushed before and after the test
        redis_host, redis_port = redis.host, redis.port
    root.mkdir(parents=True)
    if entry.database == "postgres":
        server: Postgres = request.getfixturevalue("postgres_server")
        database = cloned_postgres(server, request.getfixturevalue("migrated_postgres"))
        databases = {"default": database}
    else:
        shutil.copy(request.getfixturevalue("migrated_sqlite"), root / "db.sqlite3")
        databases = sqlite_databases(root)
    settings = {
        "DATABASES": databases,
        "CACHES": located(entry.caches, redis_host, redis_port, root),
        "Q_CLUSTER": located(entry.q_cluster, redis_host, redis_port, root),
        "PRODUCTION_PROCESSES": processes(entry),
        **entry.django_settings,
    }
    return Project(root, settings=settings)


def alt_timeout(entry: Entry) -> object:
    """The ``timeout`` that the named cluster runs with: its own, else ``Q_CLUSTER``'s."""
    assert entry.alt_cluster
    own = entry.q_cluster["ALT_CLUSTERS"][entry.alt_cluster]
    return own.get("timeout", entry.q_cluster.get("timeout"))


def enqueue_then_start(
    project: Project,
    workers: list[Worker],
    process: str,
    func: str,
    *args: float,
    cluster: str | None = None,
) -> tuple[list[str], Worker]:
    """Enqueue a task for the process's cluster, then start the process."""
    ids = project.enqueue(func, *args, cluster=cluster)
    worker = project.start(WORKER_COMMAND, process)
    workers.append(worker)  # killed at the end of the test if still running
    return ids, worker


@pytest.mark.parametrize("entry", CORPUS, ids=[entry.name for entry in CORPUS])
def test_migrate_check_and_worker_accept_the_settings(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path, workers: list[Worker]
) -> None:
    project = entry_project(entry, request, tmp_path / "project")
    # The database is migrated already (from a template), so these steps are independent:
    # side by side, they keep the corpus fast.
    with ThreadPoolExecutor() as pool:
        migrate = pool.submit(project.manage, "migrate")
        check = pool.submit(project.manage, "check")
        runs = [pool.submit(enqueue_then_start, project, workers, "worker", "add", 2, 3)]
        if entry.alt_cluster:
            process = f"worker-{entry.alt_cluster}"
            runs.append(
                pool.submit(
                    enqueue_then_start,
                    project,
                    workers,
                    process,
                    "cluster_settings",
                    cluster=entry.alt_cluster,
                )
            )
    [(task_ids, worker), *alt_runs] = [run.result() for run in runs]
    started = [worker, *(alt_worker for _, alt_worker in alt_runs)]

    # Django's check framework makes both commands exit non-zero on any Error.
    assert migrate.result().returncode == 0, output(migrate.result())
    assert check.result().returncode == 0, output(check.result())
    for check_id in entry.silenced_at_start:
        # The worker's SILENCED_CHECKS answers a warning that `check` reports.
        assert check_id in output(check.result())

    for each in started:
        wait_for_a_result(each)
    with ThreadPoolExecutor() as pool:
        report = pool.submit(project.report)
        stops = [pool.submit(each.stop, signal.SIGTERM) for each in started]
    results = {task["id"]: task for task in report.result()["tasks"]}

    [task_id] = task_ids
    assert results[task_id]["success"], results[task_id]
    assert results[task_id]["result"] == 5
    assert results[task_id]["cluster"] == entry.cluster_name
    for alt_id in (task for ids, _ in alt_runs for task in ids):
        assert results[alt_id]["success"], results[alt_id]
        assert results[alt_id]["cluster"] == entry.alt_cluster
        assert results[alt_id]["result"]["cluster_name"] == entry.alt_cluster
        assert results[alt_id]["result"]["timeout"] == alt_timeout(entry)
    for each, stop in zip(started, stops, strict=True):
        assert stop.result() == 0, each.output()
        assert "Traceback" not in each.output()


def test_redis_and_django_redis_on_one_server_are_one_broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Django-Q2's own test settings: the django-redis connection when the package is
    # installed, `redis` otherwise, and both name the same server.
    [entry] = [entry for entry in CORPUS if entry.name == "django-q2-tests"]
    assert entry.brokers == ["django_redis", "redis"]
    project = entry_project(entry, request, tmp_path / "project")
    assert (
        project.settings["Q_CLUSTER"]["redis"] == project.settings["CACHES"]["default"]["LOCATION"]
    )

    check = project.manage("check")
    assert check.returncode == 0, output(check)
    assert SEVERAL_BROKERS not in output(check)
