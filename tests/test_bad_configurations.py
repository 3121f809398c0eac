"""End to end: each bad configuration makes ``manage.py prodserver worker`` refuse in a few lines.

Every case runs a real worker start in its own project; the cases run two at a time in a
module fixture, and each case's assertions are a test of its own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness import DJANGO_Q2_VERSION, ORM_Q_CLUSTER, Project
from tests.project_base import SECRET_KEY
from tests.services import Server, free_port

PASSWORD = "s3cr3t-pw"
# A live Redis server's URL, filled in for the cases that need the broker to answer.
LIVE_REDIS = "<live redis>"
MAX_LINES = 10
ORM = dict(ORM_Q_CLUSTER)
WORKER = {"BACKEND": "djangoq2"}
RUN_ONCE = {**WORKER, "ARGS": {"run-once": None}}
QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django-q": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}


def closed_redis(**extra: Any) -> dict[str, Any]:
    return {"name": "t", "timeout": 30, "retry": 60, **extra}


def postgres_down(name: str = "queue") -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "USER": "worker",
        "PASSWORD": PASSWORD,
    }


def worker(**entry: Any) -> dict[str, Any]:
    return {"worker": {**WORKER, **entry}}


@dataclass(frozen=True)
class Case:
    name: str
    expected: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    status: int = 2  # a configuration error
    absent: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    extra_settings_code: str = ""
    migrate: bool = False
    contains: str = ""


def ids(*codes: str) -> tuple[str, ...]:
    return tuple(f"prodserver_djangoq2.{code}" for code in codes)


CASES = [
    Case("q_cluster_missing", ids("E001"), extra_settings_code="del Q_CLUSTER"),
    Case("q_cluster_not_a_dict", ids("E001"), {"Q_CLUSTER": f"redis://:{PASSWORD}@localhost"}),
    Case(
        "several_brokers",
        ids("E002"),
        {"Q_CLUSTER": {**ORM, "redis": f"redis://:{PASSWORD}@127.0.0.1:6379/0"}},
    ),
    Case(
        "client_missing",
        ids("E003"),
        {"Q_CLUSTER": closed_redis(iron_mq={"token": PASSWORD, "project_id": "p"})},
        contains="pip install prodserver-djangoq2[iron-mq]",
    ),
    Case(
        "broker_class_not_importable",
        ids("E004"),
        {"Q_CLUSTER": closed_redis(broker_class="myproject.brokers.Missing")},
    ),
    Case("broker_wrong_type", ids("E005"), {"Q_CLUSTER": {**ORM, "orm": 1}}),
    Case("orm_alias_missing", ids("E006"), {"Q_CLUSTER": {**ORM, "orm": "queue"}}),
    Case(
        "django_redis_alias_missing",
        ids("E007"),
        {"Q_CLUSTER": closed_redis(django_redis="redis")},
    ),
    Case(
        "django_redis_alias_not_django_redis",
        ids("E007"),
        {"Q_CLUSTER": closed_redis(django_redis="default")},
    ),
    Case("cache_alias_missing", ids("E008"), {"Q_CLUSTER": {**ORM, "cache": "stats"}}),
    Case("retry_not_over_timeout", ids("E009"), {"Q_CLUSTER": {**ORM, "retry": 20}}),
    Case(
        "alt_cluster_retry_not_over_timeout",
        ids("E009"),
        {"Q_CLUSTER": {**ORM, "ALT_CLUSTERS": {"long": {"timeout": 600}}}},
        contains="['ALT_CLUSTERS']['long']",
    ),
    Case("workers_string", ids("E010"), {"Q_CLUSTER": {**ORM, "workers": "4"}}),
    # Django-Q2 crashes on these two while Django loads it, before any check can run.
    Case("workers_word", ids("E010"), {"Q_CLUSTER": {**ORM, "workers": "four"}}),
    Case("timeout_word", ids("E010"), {"Q_CLUSTER": {**ORM, "timeout": "ten"}}),
    Case("log_level_unknown", ids("E024"), {"Q_CLUSTER": {**ORM, "log_level": "LOUD"}}),
    Case("error_reporter_string", ids("E025"), {"Q_CLUSTER": {**ORM, "error_reporter": "sentry"}}),
    Case("recycle_zero", ids("E010"), {"Q_CLUSTER": {**ORM, "recycle": 0}}),
    Case("timeout_negative", ids("E010"), {"Q_CLUSTER": {**ORM, "timeout": -5}}),
    Case("queue_limit_float", ids("E010"), {"Q_CLUSTER": {**ORM, "queue_limit": 2.5}}),
    Case("alt_clusters_list", ids("E011"), {"Q_CLUSTER": {**ORM, "ALT_CLUSTERS": ["long"]}}),
    Case(
        "alt_cluster_not_a_dict",
        ids("E011"),
        {"Q_CLUSTER": {**ORM, "ALT_CLUSTERS": {"long": "redis"}}},
    ),
    *(
        [Case("secret_key_empty", ids("E012"), {"SECRET_KEY": ""})]
        # Before 1.11, Django-Q2 reads SECRET_KEY while Django loads the apps, before any check.
        if DJANGO_Q2_VERSION >= (1, 11)
        else []
    ),
    Case(
        "other_process_without_backend_warns",
        ids("E013"),
        {
            "PRODUCTION_PROCESSES": {"worker": RUN_ONCE, "broken": {"ARGS": {}}},
            "LOGGING": QUIET_LOGGING,
        },
        status=0,
        migrate=True,
    ),
    Case("args_list", ids("E014"), {"PRODUCTION_PROCESSES": worker(ARGS=["--run-once"])}),
    Case(
        "args_unknown_option",
        ids("E015"),
        {"PRODUCTION_PROCESSES": worker(ARGS={"nmae": "high"})},
        contains="Did you mean 'name'?",
    ),
    Case("args_string_rejected", ids("E016"), {"PRODUCTION_PROCESSES": worker(ARGS="--nmae x")}),
    Case("name_empty", ids("E017"), {"PRODUCTION_PROCESSES": worker(ARGS={"name": ""})}),
    Case(
        "name_conflicts_with_environment",
        ids("E018"),
        {"PRODUCTION_PROCESSES": worker(ARGS={"name": "high"})},
        env={"Q_CLUSTER_NAME": "low"},
    ),
    Case("stop_timeout_string", ids("E019"), {"PRODUCTION_PROCESSES": worker(STOP_TIMEOUT="30")}),
    Case("ping_timeout_negative", ids("E020"), {"PRODUCTION_PROCESSES": worker(PING_TIMEOUT=-1)}),
    Case(
        "silenced_checks_string",
        ids("E021"),
        {"PRODUCTION_PROCESSES": worker(SILENCED_CHECKS="prodserver_djangoq2.W001")},
    ),
    Case("migrations_not_applied", ids("E022"), contains="run python manage.py migrate", status=4),
    Case(
        "database_down",
        ids("E022"),
        {
            "Q_CLUSTER": closed_redis(redis=LIVE_REDIS),
            "DATABASES": {"default": postgres_down()},
        },
        contains="cannot read Django-Q2's tables in database 'default'",
        status=4,
    ),
    Case(
        "redis_url_down",
        ids("E023"),
        {
            "Q_CLUSTER": closed_redis(redis=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"),
            "PRODUCTION_PROCESSES": worker(PING_TIMEOUT=1),
        },
        contains="redis broker at redis://127.0.0.1:",
        status=3,
    ),
    Case(
        "redis_dict_down",
        ids("E023"),
        {
            "Q_CLUSTER": closed_redis(
                redis={"host": "127.0.0.1", "port": free_port(), "password": PASSWORD}
            ),
            "PRODUCTION_PROCESSES": worker(PING_TIMEOUT=2),
        },
        status=3,
    ),
    Case(
        "orm_database_down",
        ids("E023"),
        {"DATABASES": {"default": postgres_down()}, "PRODUCTION_PROCESSES": worker(PING_TIMEOUT=2)},
        contains="orm broker (database 'default', postgresql at 127.0.0.1:",
        status=3,
    ),
    Case(
        "no_broker_warns",
        ids("W001", "E010"),
        {"Q_CLUSTER": {"name": "t", "timeout": 30, "workers": "2"}},
    ),
    Case(
        "cluster_not_in_alt_clusters_warns",
        ids("W003", "E009"),
        {
            "Q_CLUSTER": {**ORM, "retry": 10},
            "PRODUCTION_PROCESSES": worker(ARGS={"name": "ghost"}),
        },
    ),
    Case(
        "warnings_are_printed_and_the_worker_starts",
        ids("W002", "W004", "W005"),
        {
            "Q_CLUSTER": {**ORM, "timeout": None},
            "DATABASES": {
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
            },
            "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            "PRODUCTION_PROCESSES": worker(ARGS={"run-once": True}),
            "LOGGING": QUIET_LOGGING,
        },
        status=0,
        migrate=True,
    ),
    Case(
        "stop_timeout_below_timeout_warns",
        ids("W006"),
        {
            "PRODUCTION_PROCESSES": worker(STOP_TIMEOUT=10, ARGS={"run-once": None}),
            "LOGGING": QUIET_LOGGING,
        },
        status=0,
        migrate=True,
    ),
    Case("reload_not_a_bool", ids("E026"), {"PRODUCTION_PROCESSES": worker(RELOAD=1)}),
    Case(
        "health_file_directory_missing",
        ids("E027"),
        {"PRODUCTION_PROCESSES": worker(HEALTH_FILE="/nowhere/worker.health")},
    ),
    Case("health_interval_zero", ids("E028"), {"PRODUCTION_PROCESSES": worker(HEALTH_INTERVAL=0)}),
    Case("stall_after_negative", ids("E029"), {"PRODUCTION_PROCESSES": worker(STALL_AFTER=-1)}),
    Case(
        "reload_without_debug_warns",
        ids("W007"),
        {
            "PRODUCTION_PROCESSES": worker(RELOAD=True, ARGS={"run-once": None}),
            "LOGGING": QUIET_LOGGING,
        },
        status=0,
        migrate=True,
    ),
    Case(
        "silenced_system_checks",
        ids("E009"),
        {
            "Q_CLUSTER": {**ORM, "retry": 10},
            "PRODUCTION_PROCESSES": worker(ARGS={"name": "ghost"}),
            "SILENCED_SYSTEM_CHECKS": ["prodserver_djangoq2.W003"],
        },
        absent=ids("W003"),
    ),
    Case(
        "process_silenced_checks",
        ids("E010"),
        {
            "Q_CLUSTER": {"name": "t", "timeout": 30, "workers": "2"},
            "PRODUCTION_PROCESSES": worker(SILENCED_CHECKS=["prodserver_djangoq2.W001"]),
        },
        absent=ids("W001"),
    ),
]


def fill(value: Any, redis_url: str) -> Any:
    if value == LIVE_REDIS:
        return redis_url
    if isinstance(value, dict):
        return {key: fill(item, redis_url) for key, item in value.items()}
    return value


def run_case(case: Case, root: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    settings = fill(case.settings, redis_url)
    if case.name == "warnings_are_printed_and_the_worker_starts":
        settings["DATABASES"]["default"]["NAME"] = str(root / "db.sqlite3")
    project = Project(root, settings=settings, extra_settings_code=case.extra_settings_code)
    if case.migrate:
        project.migrate()
    return project.manage("prodserver", "worker", env=case.env, timeout=120)


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory, redis_server: Server
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    redis_url = f"redis://{redis_server.host}:{redis_server.port}/0"
    root = tmp_path_factory.mktemp("bad-configurations")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            case.name: pool.submit(run_case, case, root / case.name, redis_url) for case in CASES
        }
        yield {name: future.result() for name, future in futures.items()}


def test_cases_are_many_and_named_uniquely() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_configuration_is_refused_in_a_few_lines(
    case: Case, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = results[case.name]
    output = result.stdout + result.stderr
    assert result.returncode == case.status, output
    for check_id in case.expected:
        assert check_id in output, output
    for check_id in case.absent:
        assert check_id not in output, output
    assert case.contains in output, output
    assert "Traceback" not in output, output
    assert len(output.strip().splitlines()) <= MAX_LINES, output
    assert PASSWORD not in output, output
    assert SECRET_KEY not in output, output
    if case.status:
        assert (
            result.stderr.strip().splitlines()[-1].startswith("CommandError: prodserver_djangoq2.")
        )


@pytest.mark.parametrize(
    "q_cluster",
    [
        {**ORM, "retry": 20},  # E009: retry not above timeout
        {**ORM, "redis": "redis://127.0.0.1:6379/0"},  # E002: two brokers
    ],
    ids=["retry_not_over_timeout", "several_brokers"],
)
def test_worker_only_concerns_never_stop_migrate(tmp_path: Path, q_cluster: dict[str, Any]) -> None:
    project = Project(tmp_path / "project", settings={"Q_CLUSTER": q_cluster})
    migrated = project.manage("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "prodserver_djangoq2.E0" in migrated.stderr  # printed as a warning
    assert project.manage("check").returncode == 0


@pytest.mark.parametrize("bad", [{"workers": "four"}, {"timeout": "ten"}], ids=str)
def test_values_that_crash_django_q2_are_one_check_line(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    project = Project(tmp_path / "project", settings={"Q_CLUSTER": {**ORM, **bad}})
    checked = project.manage("check")
    assert checked.returncode == 1
    assert "prodserver_djangoq2.E010" in checked.stderr
    assert "Traceback" not in checked.stderr
    # Web processes (which run no checks) still load Django-Q2 and enqueue.
    assert project.manage("migrate", "--skip-checks").returncode == 0
    enqueued = project.manage(
        "shell", "-c", "from django_q.tasks import async_task; print(async_task('math.floor', 2.5))"
    )
    assert enqueued.returncode == 0, enqueued.stderr
    assert len(enqueued.stdout.split()[-1]) == 32  # a task id
