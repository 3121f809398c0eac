"""In-process tests of the system checks and the worker's start-up preflight."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from prodserver_djangoq2 import checks, cluster_settings, preflight, process
from prodserver_djangoq2.backend import DjangoQ2Worker
from prodserver_djangoq2.errors import ConfigurationError
from tests.services import Server, free_port

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")

ORM = {"name": "tests", "orm": "default", "workers": 1, "timeout": 30, "retry": 60}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "checks.md"
SOURCES = Path(__file__).resolve().parent.parent / "src" / "prodserver_djangoq2"
ID_PATTERN = re.compile(r"prodserver_djangoq2\.[EW]\d{3}")


class CustomWorker(DjangoQ2Worker):
    """A project's own subclass of the backend."""


class DownBroker:
    """A custom broker whose ping says the broker is down."""

    def __init__(self, list_key: str | None = None) -> None:
        self.list_key = list_key

    def ping(self) -> bool:
        return False


def ids(deploy: bool = False) -> list[str]:
    messages = checks.check_settings() + (checks.check_deployment() if deploy else [])
    return [str(message.id) for message in messages]


def check_error_codes(expected: list[str], deploy: bool = False) -> None:
    assert ids(deploy) == [f"prodserver_djangoq2.{code}" for code in expected]


def check_levels(expected: list[type[Error | Warning]]) -> None:
    """The levels in ``manage.py check``: an Error stops migrate, runserver and the rest."""
    assert [type(message) for message in checks.check_settings()] == expected


def worker_entry(**entry: Any) -> process.ProcessEntry:
    return process.read("worker", {"BACKEND": "djangoq2", **entry})


def processes(**entry: Any) -> dict[str, Any]:
    return {"worker": {"BACKEND": "djangoq2", **entry}}


# Defaults and binding


def test_defaults_pass() -> None:
    assert checks.check_settings() == []
    assert checks.check_deployment() == []


@override_settings(Q_CLUSTER=["not", "a", "dict"])
def test_checks_are_bound() -> None:
    with pytest.raises(SystemCheckError, match=r"prodserver_djangoq2\.E001"):
        call_command("check")


@override_settings(
    Q_CLUSTER={**ORM, "workers": 3},
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
def test_deployment_checks_are_bound_to_deploy() -> None:
    call_command("check")  # W004 is not part of the normal set
    with pytest.raises(SystemCheckError, match=r"prodserver_djangoq2\.W004"):
        call_command("check", "--deploy", "--fail-level=WARNING")


def test_messages_are_short_and_have_hints() -> None:
    with override_settings(Q_CLUSTER={"orm": 5, "redis": 5, "workers": "4"}):
        messages = checks.check_settings()
    assert messages
    assert all(len(str(m.msg)) < 80 and m.hint for m in messages)


# Q_CLUSTER


def test_q_cluster_missing() -> None:
    # Django-Q2 runs on its defaults: only a worker refuses it.
    with override_settings():
        del settings.Q_CLUSTER
        check_error_codes(["E001"])
        check_levels([Warning])


@override_settings(Q_CLUSTER="redis://localhost")
def test_q_cluster_not_a_dict() -> None:
    check_error_codes(["E001"])
    check_levels([Error])
    assert checks.check_deployment() == []


@override_settings(Q_CLUSTER={"name": "tests", "timeout": 30})
def test_q_cluster_no_broker() -> None:
    check_error_codes(["W001"])


@override_settings(Q_CLUSTER={**ORM, "redis": {"host": "localhost"}})
def test_q_cluster_several_brokers() -> None:
    check_error_codes(["E002"])
    check_levels([Warning])
    assert "uses 'orm'" in checks.check_settings()[0].hint


@override_settings(Q_CLUSTER={"name": "t", "timeout": 30, "iron_mq": {"token": "x"}})
def test_q_cluster_client_missing() -> None:
    check_error_codes(["E003"])
    assert checks.check_settings()[0].hint == "pip install prodserver-djangoq2[iron-mq]"


@override_settings(Q_CLUSTER={"name": "t", "timeout": 30, "redis": "redis://localhost"})
def test_q_cluster_redis_client_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # find_spec: not importable
    check_error_codes(["E003"])
    assert checks.check_settings()[0].hint == "pip install prodserver-djangoq2[redis]"


@override_settings(Q_CLUSTER={"name": "t", "timeout": 30})
def test_q_cluster_no_broker_and_redis_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    check_error_codes(["W001", "E003"])


@override_settings(Q_CLUSTER={**ORM, "orm": None, "broker_class": "tests.nowhere.Broker"})
def test_q_cluster_broker_class_not_importable() -> None:
    check_error_codes(["E004"])


@override_settings(Q_CLUSTER={**ORM, "orm": None, "broker_class": "django_q.brokers.orm.ORM"})
def test_q_cluster_broker_class_importable() -> None:
    check_error_codes([])


@pytest.mark.parametrize(("key", "value"), [("orm", 1), ("redis", 6379), ("sqs", "eu")])
def test_q_cluster_broker_wrong_type(key: str, value: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, "orm": None, key: value}):
        check_error_codes(["E005"])


@override_settings(Q_CLUSTER={**ORM, "orm": "queue"})
def test_q_cluster_orm_alias_missing() -> None:
    check_error_codes(["E006"])


@override_settings(Q_CLUSTER={**ORM, "orm": None, "django_redis": "redis"})
def test_q_cluster_django_redis_alias_missing() -> None:
    check_error_codes(["E007"])


@override_settings(Q_CLUSTER={**ORM, "orm": None, "django_redis": "default"})
def test_q_cluster_django_redis_alias_not_django_redis() -> None:
    check_error_codes(["E007"])
    assert "not a django-redis cache" in str(checks.check_settings()[0].msg)


@override_settings(
    Q_CLUSTER={**ORM, "orm": None, "django_redis": "redis"},
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://x"},
    },
)
def test_q_cluster_django_redis_alias_valid() -> None:
    check_error_codes([], deploy=True)  # Redis keeps its own stats: the cache does not matter


@pytest.mark.parametrize("cache", ["stats", ["default"]])
def test_q_cluster_cache_alias_missing(cache: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, "cache": cache}):
        check_error_codes(["E008"])


@override_settings(Q_CLUSTER={**ORM, "retry": 30})
def test_q_cluster_retry_not_greater_than_timeout() -> None:
    check_error_codes(["E009"])
    check_levels([Warning])


@override_settings(Q_CLUSTER={"name": "tests", "orm": "default", "workers": 1, "timeout": 90})
def test_q_cluster_timeout_over_default_retry() -> None:
    check_error_codes(["E009"])


@override_settings(Q_CLUSTER={**ORM, "orm": None, "redis": "redis://localhost", "timeout": 90})
def test_q_cluster_retry_ignored_by_redis() -> None:
    check_error_codes([])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("workers", "4"),
        ("workers", 0),
        ("recycle", 2.5),
        ("queue_limit", True),
        ("timeout", -1),
        ("retry", "60"),
    ],
)
def test_q_cluster_number_invalid(key: str, value: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, key: value}):
        check_error_codes(["E010"])


@override_settings(Q_CLUSTER={**ORM, "timeout": 2.5, "workers": None})
def test_q_cluster_number_valid() -> None:
    check_error_codes([])


@override_settings(Q_CLUSTER={**ORM, "timeout": None})
def test_q_cluster_timeout_unset() -> None:
    check_error_codes(["W002"])


@pytest.mark.parametrize("alt", [["long"], None, {"long": "orm"}, {1: {}}])
def test_q_cluster_alt_clusters_malformed(alt: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, "ALT_CLUSTERS": alt}):
        check_error_codes(["E011"])


@override_settings(Q_CLUSTER={**ORM, "ALT_CLUSTERS": {"long": {"timeout": 600, "name": "x"}}})
def test_q_cluster_alt_cluster_retry_not_greater_than_timeout() -> None:
    check_error_codes(["E009"])
    assert "['ALT_CLUSTERS']['long']" in str(checks.check_settings()[0].msg)


@override_settings(
    Q_CLUSTER={**ORM, "retry": 10, "workers": "4", "ALT_CLUSTERS": {"long": {"poll": 1}}}
)
def test_q_cluster_alt_cluster_does_not_repeat_base_problems() -> None:
    check_error_codes(["E010", "E009"])


@override_settings(Q_CLUSTER={**ORM, "ALT_CLUSTERS": {"cloud": {"orm": None, "sqs": {}}}})
def test_q_cluster_alt_cluster_switches_broker() -> None:
    check_error_codes([])


REDIS_CACHE = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/1"}


@pytest.mark.parametrize(
    "redis",
    [
        "redis://127.0.0.1:6379/1",
        "redis://:pw@127.0.0.1/1",
        {"host": "127.0.0.1", "port": 6379, "db": 1},
        "redis://127.0.0.1:6379?db=1",
    ],
)
def test_q_cluster_redis_and_django_redis_on_one_server(redis: object) -> None:
    # Django-Q2's own test settings: django-redis's connection where it is installed.
    caches = {"default": settings.CACHES["default"], "queue": REDIS_CACHE}
    q_cluster = {**ORM, "orm": None, "redis": redis, "django_redis": "queue"}
    with override_settings(Q_CLUSTER=q_cluster, CACHES=caches):
        check_error_codes([])


@pytest.mark.parametrize(
    "redis", ["redis://127.0.0.1:6379/2", {"host": "10.0.0.5", "db": 1}, "redis://other/1"]
)
def test_q_cluster_redis_and_django_redis_on_two_servers(redis: object) -> None:
    caches = {"default": settings.CACHES["default"], "queue": REDIS_CACHE}
    q_cluster = {**ORM, "orm": None, "redis": redis, "django_redis": "queue"}
    with override_settings(Q_CLUSTER=q_cluster, CACHES=caches):
        check_error_codes(["E002"])
        check_levels([Warning])


@pytest.mark.parametrize("level", ["LOUD", 10, None])
def test_q_cluster_log_level_invalid(level: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, "log_level": level}):
        check_error_codes(["E024"])
        check_levels([Error])


@pytest.mark.parametrize("reporter", ["sentry", {"sentry": "dsn"}, ["sentry"]])
def test_q_cluster_error_reporter_invalid(reporter: object) -> None:
    with override_settings(Q_CLUSTER={**ORM, "error_reporter": reporter}):
        check_error_codes(["E025"])


@override_settings(Q_CLUSTER={**ORM, "log_level": "DEBUG", "error_reporter": {"x": {"a": 1}}})
def test_q_cluster_loaded_values_valid() -> None:
    check_error_codes([])


@pytest.mark.parametrize(
    ("written", "loadable"),
    [
        ({"orm": "default", "workers": "four"}, {"orm": "default"}),
        ({"orm": "default", "workers": "4"}, {"orm": "default", "workers": "4"}),
        ({"orm": "default", "timeout": "ten"}, {"orm": "default"}),
        ({"timeout": 30, "retry": "sixty"}, {"timeout": 30}),
        ({"timeout": "30", "retry": "60"}, {"timeout": "30", "retry": "60"}),
        ({"log_level": "LOUD", "error_reporter": "sentry"}, {}),
        ({"ALT_CLUSTERS": {"a": {"workers": [2]}}}, {"ALT_CLUSTERS": {"a": {}}}),
        (
            {"timeout": 9, "ALT_CLUSTERS": {"a": {"retry": "x"}}},
            {"timeout": 9, "ALT_CLUSTERS": {"a": {}}},
        ),
        ({"ALT_CLUSTERS": [1]}, {"ALT_CLUSTERS": [1]}),
        (["not", "a", "dict"], {}),
    ],
)
def test_values_that_crash_django_q2_are_kept_from_it(written: object, loadable: object) -> None:
    assert cluster_settings.loadable_copy(written, None) == loadable


def test_a_cluster_name_without_alt_clusters_is_loadable() -> None:
    written = {"name": "site", "orm": "default"}
    assert cluster_settings.loadable_copy(written, "site") is written
    assert cluster_settings.loadable_copy(written, None) is written
    assert cluster_settings.loadable_copy(written, "high") == {**written, "ALT_CLUSTERS": {}}


def test_checks_read_q_cluster_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    written = {**ORM, "workers": "four"}
    with override_settings(Q_CLUSTER=written):
        monkeypatch.setattr(cluster_settings, "_replacement", None)
        cluster_settings.make_loadable()
        assert {k: v for k, v in ORM.items() if k != "workers"} == settings.Q_CLUSTER
        check_error_codes(["E010"])
    assert cluster_settings.as_written() is settings.Q_CLUSTER  # another value: as it is


@override_settings(SECRET_KEY="")
def test_secret_key_missing() -> None:
    check_error_codes(["E012"])


# PRODUCTION_PROCESSES


@override_settings(PRODUCTION_PROCESSES=[{"BACKEND": "djangoq2"}])
def test_production_processes_not_a_dict() -> None:
    check_error_codes(["E013"])
    check_levels([Warning])


@pytest.mark.parametrize("entry", [{"ARGS": {}}, "djangoq2"])
def test_production_processes_entry_without_backend(entry: object) -> None:
    with override_settings(PRODUCTION_PROCESSES={"worker": entry}):
        check_error_codes(["E013"])


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ({"ARGS": ["--run-once"]}, "E014"),
        ({"ARGS": {"nmae": "high"}}, "E015"),
        ({"ARGS": "--nmae high"}, "E016"),
        ({"ARGS": {"name": ""}}, "E017"),
        ({"STOP_TIMEOUT": "30"}, "E019"),
        ({"PING_TIMEOUT": 0}, "E020"),
        ({"SILENCED_CHECKS": "prodserver_djangoq2.W002"}, "E021"),
        ({"SILENCED_CHECKS": [2]}, "E021"),
        ({"RELOAD": "yes"}, "E026"),
        ({"HEALTH_FILE": "/nowhere/at/all/worker.health"}, "E027"),
        ({"HEALTH_FILE": 5}, "E027"),
        ({"HEALTH_INTERVAL": 0}, "E028"),
        ({"STALL_AFTER": "1m"}, "E029"),
    ],
)
def test_production_processes_entry_invalid(entry: dict[str, Any], code: str) -> None:
    with override_settings(PRODUCTION_PROCESSES=processes(**entry)):
        check_error_codes([code])
        (message,) = checks.check_settings()
    assert str(message.msg).startswith("PRODUCTION_PROCESSES['worker']")
    assert message.hint
    assert isinstance(message, Warning)  # only the worker refuses it


@override_settings(
    Q_CLUSTER={**ORM, "ALT_CLUSTERS": {"high": {}}},
    PRODUCTION_PROCESSES={**processes(ARGS={"name": "high"}), "other": {"BACKEND": "djangoq2"}},
)
def test_production_processes_environment_is_the_started_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment names the cluster of the worker being started, not of every process.
    monkeypatch.setenv("Q_CLUSTER_NAME", "low")
    check_error_codes([])
    entry = process.read("worker", settings.PRODUCTION_PROCESSES["worker"])
    with pytest.raises(
        ConfigurationError, match=r"^prodserver_djangoq2\.E018: .* HINT: remove one"
    ):
        entry.cluster_to_serve()


@pytest.mark.parametrize(("stop_timeout", "expected"), [(20, ["W006"]), (30, []), (45, [])])
def test_production_processes_stop_timeout_against_timeout(
    stop_timeout: int, expected: list[str]
) -> None:
    with override_settings(PRODUCTION_PROCESSES=processes(STOP_TIMEOUT=stop_timeout)):
        check_error_codes(expected)


@override_settings(
    Q_CLUSTER={**ORM, "ALT_CLUSTERS": {"long": {"timeout": 300, "retry": 400}}},
    PRODUCTION_PROCESSES=processes(STOP_TIMEOUT=60, ARGS={"name": "long"}),
)
def test_production_processes_stop_timeout_against_the_selected_clusters_timeout() -> None:
    check_error_codes(["W006"])
    assert "'timeout' (300)" in str(checks.check_settings()[0].msg)


@pytest.mark.parametrize(
    ("entry", "cluster_timeout", "expected"),
    [({}, 60, 65.0), ({}, None, 30.0), ({"STOP_TIMEOUT": 10}, 60, 10.0), ({}, 2.5, 7.5)],
)
def test_stop_timeout_defaults_to_the_clusters_timeout(
    entry: dict[str, Any], cluster_timeout: object, expected: float
) -> None:
    assert worker_entry(**entry).stop_timeout_for(cluster_timeout) == expected


@override_settings(
    PRODUCTION_PROCESSES={
        "worker-a": {"BACKEND": "djangoq2"},
        "worker-b": {"BACKEND": "djangoq2"},
    }
)
def test_identical_entries_are_told_apart_by_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", "worker", "worker-b"])
    assert process.find_process_name({"BACKEND": "djangoq2"}) == "worker-b"
    monkeypatch.setattr(sys, "argv", ["manage.py", "worker"])  # django-prodserver's default
    assert process.find_process_name({"BACKEND": "djangoq2"}) == "worker-a"
    assert process.find_process_name({"BACKEND": "elsewhere"}) == "?"


@override_settings(PRODUCTION_PROCESSES=processes(ARGS={"cluster-name": "high"}))
def test_production_processes_cluster_not_in_alt_clusters() -> None:
    check_error_codes(["W003"])


@pytest.mark.parametrize("name", ["tests", "high"])
def test_production_processes_cluster_known(name: str) -> None:
    q_cluster = {**ORM, "ALT_CLUSTERS": {"high": {}}}
    with override_settings(Q_CLUSTER=q_cluster, PRODUCTION_PROCESSES=processes(ARGS=f"-n {name}")):
        check_error_codes([])


@override_settings(Q_CLUSTER="bad", PRODUCTION_PROCESSES=processes(ARGS={"name": "high"}))
def test_production_processes_cluster_name_without_q_cluster() -> None:
    check_error_codes(["E001"])


@pytest.mark.parametrize(
    "backend",
    [
        "prodserver_djangoq2.DjangoQ2Worker",
        "prodserver_djangoq2.backend.DjangoQ2Worker",
        "tests.test_checks.CustomWorker",
    ],
)
def test_production_processes_backend_paths_are_checked(backend: str) -> None:
    with override_settings(PRODUCTION_PROCESSES={"w": {"BACKEND": backend, "ARGS": 5}}):
        check_error_codes(["E014"])


@pytest.mark.parametrize(
    "backend",
    ["django_prodserver.backends.servers.gunicorn.GunicornServer", "nowhere.Backend", 5],
)
def test_production_processes_other_backends_are_ignored(backend: object) -> None:
    with override_settings(PRODUCTION_PROCESSES={"w": {"BACKEND": backend, "ARGS": 5}}):
        check_error_codes([])


# Deployment checks


POSTGRES_DOWN = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "q",
    "HOST": "127.0.0.1",
    "PORT": "1",
    "USER": "u",
    "PASSWORD": "s3cr3t-pw",
}
SQLITE = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}


@override_settings(Q_CLUSTER={**ORM, "workers": 4}, DATABASES=SQLITE)
def test_deploy_sqlite_with_several_workers() -> None:
    check_error_codes(["W004"], deploy=True)


@pytest.mark.parametrize(("workers", "options"), [(1, {}), (4, {"timeout": 30})])
def test_deploy_sqlite_without_lock_contention(workers: int, options: dict[str, Any]) -> None:
    databases = {"default": {**SQLITE["default"], "OPTIONS": options}}
    with override_settings(Q_CLUSTER={**ORM, "workers": workers}, DATABASES=databases):
        check_error_codes([], deploy=True)


@pytest.mark.parametrize("backend", ["locmem.LocMemCache", "dummy.DummyCache"])
def test_deploy_process_local_cache(backend: str) -> None:
    caches = {"default": {"BACKEND": f"django.core.cache.backends.{backend}"}}
    with override_settings(CACHES=caches):
        check_error_codes(["W005"], deploy=True)


@override_settings(Q_CLUSTER={**ORM, "ALT_CLUSTERS": {"fast": {"workers": 8}}}, DATABASES=SQLITE)
def test_deploy_alt_cluster_with_several_workers() -> None:
    check_error_codes(["W004"], deploy=True)
    assert "'fast'" in str(checks.check_deployment()[0].msg)


# Preflight: system checks at the worker's start


def test_preflight_prints_warnings_and_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with override_settings(Q_CLUSTER={**ORM, "timeout": None}):
        preflight.report_checks()
    line = capsys.readouterr().err.strip()
    assert line.startswith("prodserver_djangoq2.W002: Q_CLUSTER sets no 'timeout'")
    assert " HINT: " in line
    assert "\n" not in line


@override_settings(
    Q_CLUSTER={**ORM, "timeout": None}, SILENCED_SYSTEM_CHECKS=["prodserver_djangoq2.W002"]
)
def test_preflight_honours_silenced_system_checks(capsys: pytest.CaptureFixture[str]) -> None:
    preflight.report_checks()
    assert capsys.readouterr().err == ""


@override_settings(Q_CLUSTER={**ORM, "timeout": None})
def test_preflight_honours_process_silenced_checks(capsys: pytest.CaptureFixture[str]) -> None:
    preflight.report_checks({"prodserver_djangoq2.W002"})
    assert capsys.readouterr().err == ""


@override_settings(Q_CLUSTER={**ORM, "retry": 10})
def test_preflight_refuses_worker_only_concerns() -> None:
    with pytest.raises(CommandError, match=r"^prodserver_djangoq2\.E009: .* HINT: ") as caught:
        preflight.report_checks()
    assert caught.value.returncode == 2


@override_settings(Q_CLUSTER={**ORM, "retry": 10})
def test_preflight_lets_silenced_worker_only_concerns_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    preflight.report_checks({"prodserver_djangoq2.E009"})
    assert capsys.readouterr().err == ""


@override_settings(Q_CLUSTER={**ORM, "workers": 0})
def test_preflight_refuses_errors() -> None:
    with pytest.raises(CommandError, match=r"^prodserver_djangoq2\.E010: .* HINT: "):
        preflight.report_checks()


@override_settings(
    PRODUCTION_PROCESSES={**processes(), "other": {"BACKEND": "djangoq2", "ARGS": 5}}
)
def test_preflight_prints_other_processes_problems_and_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    preflight.report_checks()
    assert capsys.readouterr().err.startswith("prodserver_djangoq2.E014: ")


@override_settings(
    Q_CLUSTER={
        "workers": "1",
        "recycle": "1",
        "timeout": "1",
        "retry": "1",
        "queue_limit": "1",
        "orm": "default",
    },
    SECRET_KEY="",
)
def test_preflight_keeps_many_errors_short() -> None:
    with pytest.raises(CommandError) as caught:
        preflight.report_checks()
    lines = str(caught.value).splitlines()
    assert len(lines) == preflight.MAX_ERROR_LINES
    assert lines[-1] == "... and 2 more: run python manage.py check"


def test_format_message_names_the_object() -> None:
    message = Error("bad\nthing", obj="app.Model", id="app.E001")
    assert preflight.format_message(message) == "app.E001: app.Model: bad thing"


@pytest.mark.django_db
def test_preflight_run_passes_on_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    preflight.run(worker_entry())
    assert capsys.readouterr().err == ""


def test_process_entry_reports_bad_silenced_checks() -> None:
    with pytest.raises(ConfigurationError, match=r"prodserver_djangoq2\.E021"):
        worker_entry(SILENCED_CHECKS="x")


# Preflight: broker ping


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Django-Q2's ``Conf`` with no broker chosen; tests set the one they need."""
    from django_q.conf import Conf

    for name in ("BROKER_CLASS", "IRON_MQ", "SQS", "ORM", "MONGO", "DJANGO_REDIS"):
        monkeypatch.setattr(Conf, name, None)
    monkeypatch.setattr(Conf, "REDIS", {})
    return Conf


def refusal(seconds: float = 2) -> str:
    with pytest.raises(CommandError) as caught:
        preflight.ping_broker(seconds)
    message = str(caught.value)
    assert message.startswith("prodserver_djangoq2.E023: ")
    assert "\n" not in message
    assert "s3cr3t-pw" not in message
    return message


def test_ping_redis_url_down(conf: Any) -> None:
    port = free_port()
    conf.REDIS = f"redis://user:s3cr3t-pw@127.0.0.1:{port}/0?password=s3cr3t-pw"
    message = refusal()
    assert f"redis broker at redis://127.0.0.1:{port}/0 did not answer: ConnectionError" in message


def test_ping_redis_dict_down(conf: Any) -> None:
    port = free_port()
    conf.REDIS = {"host": "127.0.0.1", "port": port, "password": "s3cr3t-pw"}
    assert f"redis broker at 127.0.0.1:{port} did not answer" in refusal()


def test_ping_redis_socket_down(conf: Any, tmp_path: Path) -> None:
    conf.REDIS = {"unix_socket_path": str(tmp_path / "redis.sock")}
    assert f"redis broker at {tmp_path / 'redis.sock'} did not answer" in refusal()


def test_ping_redis_up(conf: Any, redis_server: Server) -> None:
    conf.REDIS = f"redis://{redis_server.host}:{redis_server.port}/0"
    preflight.ping_broker(5)


@override_settings(
    CACHES={
        "default": settings.CACHES["default"],
        "queue": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": ["redis://:s3cr3t-pw@127.0.0.1:1/0"],
        },
    }
)
def test_ping_django_redis_down(conf: Any) -> None:
    conf.DJANGO_REDIS = "queue"
    assert "django_redis broker (cache 'queue' at redis://127.0.0.1:1/0)" in refusal()


def test_ping_mongo_times_out(conf: Any) -> None:
    conf.MONGO = {"host": f"mongodb://u:s3cr3t-pw@127.0.0.1:{free_port()}/q"}
    message = refusal(seconds=0.5)
    assert "mongo broker at mongodb://127.0.0.1:" in message
    assert message.endswith(
        "did not answer within 0.5 s. HINT: Start the broker or correct "
        "its settings; PING_TIMEOUT sets the wait."
    )


def test_ping_mongo_refused(conf: Any) -> None:
    conf.MONGO = {"host": "127.0.0.1", "port": free_port(), "serverSelectionTimeoutMS": 100}
    assert "did not answer: ServerSelectionTimeoutError" in refusal(seconds=10)


def test_ping_mongo_hosts_list(conf: Any) -> None:
    conf.MONGO = {"host": ["127.0.0.1"], "port": free_port(), "password": "s3cr3t-pw"}
    assert "mongo broker at 127.0.0.1:" in refusal(seconds=0.5)


def test_ping_sqs_up(conf: Any, moto_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://{moto_server.host}:{moto_server.port}")
    conf.SQS = {
        "aws_region": "eu-west-1",
        "aws_access_key_id": "AKIA-test",
        "aws_secret_access_key": "s3cr3t-pw",
    }
    preflight.ping_broker(10)


def test_ping_sqs_down(conf: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    conf.SQS = {
        "region_name": "eu-west-1",
        "aws_access_key_id": "AKIA-test",
        "aws_secret_access_key": "s3cr3t-pw",
    }
    message = refusal(seconds=10)
    assert "sqs broker in eu-west-1 did not answer" in message
    assert "AKIA-test" not in message


def test_ping_iron_mq_without_client(conf: Any) -> None:
    conf.IRON_MQ = {"host": "mq.example.com", "token": "s3cr3t-pw"}
    assert "iron_mq broker at mq.example.com did not answer: ModuleNotFoundError" in refusal()


def test_ping_custom_broker_down(conf: Any) -> None:
    conf.BROKER_CLASS = "tests.test_checks.DownBroker"
    message = refusal()
    assert "custom broker tests.test_checks.DownBroker did not answer" in message
    assert "ping() returned False" in message


def test_ping_custom_broker_without_ping(conf: Any) -> None:
    conf.BROKER_CLASS = "django_q.brokers.Broker"  # its ping() returns None
    preflight.ping_broker(2)


@pytest.mark.django_db
def test_ping_orm(conf: Any) -> None:
    conf.ORM = "default"
    preflight.ping_broker(5)


@pytest.fixture
def queue_database(monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any) -> Iterator[str]:
    """A PostgreSQL database alias 'queue' whose server is down."""
    from django.db import connections

    # Django reads DATABASES into its connection handler once: add the alias there too.
    configured = connections.configure_settings({"default": {}, "queue": dict(POSTGRES_DOWN)})
    monkeypatch.setitem(connections.settings, "queue", configured["queue"])
    databases = {**settings.DATABASES, "queue": POSTGRES_DOWN}
    # django_db_blocker: a database outside the test databases.
    with override_settings(DATABASES=databases), django_db_blocker.unblock():
        yield "queue"


def test_ping_orm_down(conf: Any, queue_database: str) -> None:
    conf.ORM = queue_database
    message = refusal(seconds=10)
    assert "orm broker (database 'queue', postgresql at 127.0.0.1:1) did not answer: " in message
    assert "OperationalError" in message


@pytest.mark.django_db
def test_migrations_database_down(conf: Any, queue_database: str) -> None:
    conf.ORM = queue_database
    with pytest.raises(CommandError) as caught:
        preflight.check_migrations()
    message = str(caught.value)
    assert message.startswith("prodserver_djangoq2.E022: cannot read Django-Q2's tables in ")
    assert "OperationalError" in message
    assert "s3cr3t-pw" not in message


def test_scrub_shortens_long_reasons() -> None:
    reason = preflight._scrub(ValueError("x" * 500 + " s3cr3t-pw"), ["s3cr3t-pw"])
    assert len(reason) == preflight.MAX_REASON_LENGTH
    assert reason.endswith("...")


# Preflight: Django-Q2's migrations


@pytest.mark.django_db(transaction=True)
def test_migrations_missing_and_applied(conf: Any) -> None:
    conf.ORM = "default"
    call_command("migrate", "django_q", "zero", verbosity=0)
    try:
        with pytest.raises(
            CommandError,
            match=r"^prodserver_djangoq2\.E022: database 'default' "
            r"lacks \d+ of Django-Q2's migrations\. HINT: run python manage.py "
            r"migrate$",
        ) as caught:
            preflight.check_migrations()
        assert caught.value.returncode == 4
    finally:
        call_command("migrate", "django_q", verbosity=0)
    preflight.check_migrations()


@pytest.mark.django_db
def test_preflight_run_skips_silenced_preflight(conf: Any) -> None:
    conf.REDIS = f"redis://127.0.0.1:{free_port()}/0"
    silenced = ["prodserver_djangoq2.E023", "prodserver_djangoq2.E022"]
    preflight.run(worker_entry(SILENCED_CHECKS=silenced))
    with pytest.raises(CommandError, match="E023") as caught:
        preflight.run(worker_entry(PING_TIMEOUT=2))
    assert caught.value.returncode == 3


# The table of ids in the docs


def documented_ids() -> list[str]:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `prodserver")]
    return [ID_PATTERN.search(row).group() for row in rows]  # type: ignore[union-attr]


def test_documented_ids_are_unique() -> None:
    documented = documented_ids()
    assert documented
    assert len(documented) == len(set(documented))


def test_every_emitted_id_is_documented() -> None:
    emitted = {
        match for path in SOURCES.glob("*.py") for match in ID_PATTERN.findall(path.read_text())
    }
    assert emitted == set(documented_ids())


def test_every_documented_id_is_produced_by_a_bad_configuration() -> None:
    from tests.harness import DJANGO_Q2_VERSION
    from tests.test_bad_configurations import CASES

    produced = {check_id for case in CASES for check_id in case.expected}
    if DJANGO_Q2_VERSION < (1, 11):
        # Django-Q2 1.10 itself stops Django's start on an empty SECRET_KEY (see the cases);
        # E012 is then only reachable in-process, where test_secret_key_missing covers it.
        produced.add("prodserver_djangoq2.E012")
    assert set(documented_ids()) <= produced
