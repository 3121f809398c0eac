"""System checks of the ``Q_CLUSTER`` setting and the ``SECRET_KEY`` Django-Q2 signs with.

An Error is for a setting with which Django-Q2 cannot enqueue or run at all: every Django
command that runs the checks (``migrate``, ``runserver``...) stops on it. What only matters to
a worker is a Warning here; ``WORKER_REFUSALS`` lists the ones a worker still refuses to start
with unless its ``SILENCED_CHECKS`` lists them. Checks run for ``Q_CLUSTER``'s own settings and
for each ``ALT_CLUSTERS`` entry merged over them, the way Django-Q2 merges them for a named
cluster; an entry is only blamed for the settings it writes itself.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .cluster_settings import (
    BROKERS,
    MISSING,
    NUMBERS,
    POSITIVE_INTEGERS,
    as_written,
    chosen_brokers,
    cluster_configs,
    is_error_reporter,
    is_log_level,
)

# Worker-only concerns that refuse a worker's start (``SILENCED_CHECKS`` lets it start).
WORKER_REFUSALS = frozenset(
    {"prodserver_djangoq2.E001", "prodserver_djangoq2.E002", "prodserver_djangoq2.E009"}
)
BROKER_TYPES: dict[str, tuple[type, ...]] = {
    "broker_class": (str,),
    "iron_mq": (dict,),
    "sqs": (dict,),
    "orm": (str,),
    "mongo": (dict,),
    "django_redis": (str,),
    "redis": (dict, str),
}
BROKER_TYPE_NAMES: dict[type, str] = {dict: "a dict", str: "a string"}
# Broker -> (module it imports, this package's extra that installs it).
CLIENTS = {
    "redis": ("redis", "redis"),
    "django_redis": ("django_redis", "django-redis"),
    "sqs": ("boto3", "sqs"),
    "mongo": ("pymongo", "mongo"),
    "iron_mq": ("iron_mq", "iron-mq"),
}
# Redis keeps its stats itself and never redelivers a task; every other broker does both
# through Django's cache and the ``retry`` lock.
REDIS_BROKERS = ("redis", "django_redis")
PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "locmem",
    "django.core.cache.backends.dummy.DummyCache": "dummy",
}


def check_q_cluster() -> list[CheckMessage]:
    """Check ``SECRET_KEY`` and every cluster that ``Q_CLUSTER`` defines."""
    messages = _check_secret_key()
    q_cluster = as_written()
    if q_cluster is MISSING:
        return [
            *messages,
            Warning(
                "Q_CLUSTER is not set; Django-Q2 workers have no broker.",
                hint="Add Q_CLUSTER = {'name': ..., 'orm': 'default'} (or another broker).",
                id="prodserver_djangoq2.E001",
            ),
        ]
    if not isinstance(q_cluster, dict):
        return [
            *messages,
            Error(
                f"Q_CLUSTER must be a dict, not {type(q_cluster).__name__}.",
                hint="Write Q_CLUSTER as a dict of Django-Q2 settings.",
                id="prodserver_djangoq2.E001",
            ),
        ]
    messages += _check_alt_clusters(q_cluster.get("ALT_CLUSTERS", {}))
    for where, conf, own in cluster_configs(q_cluster):
        messages += _check_cluster(where, conf, own)
    return messages


def check_q_cluster_deployment() -> list[CheckMessage]:
    """Check the ``Q_CLUSTER`` settings that matter in production."""
    q_cluster = as_written()
    if not isinstance(q_cluster, dict):
        return []
    messages: list[CheckMessage] = []
    for where, conf, own in cluster_configs(q_cluster):
        messages += _check_cluster_deployment(where, conf, own)
    return messages


def _check_secret_key() -> list[CheckMessage]:
    try:
        secret_key = settings.SECRET_KEY
    except ImproperlyConfigured:
        secret_key = ""
    if not secret_key:
        return [
            Error(
                "SECRET_KEY is empty; Django-Q2 workers sign every task with it.",
                hint="Set SECRET_KEY to the same value in the web and worker processes.",
                id="prodserver_djangoq2.E012",
            )
        ]
    return []


def _check_alt_clusters(alt_clusters: object) -> list[CheckMessage]:
    hint = "Write ALT_CLUSTERS as {'cluster name': {setting: value, ...}, ...}."
    if not isinstance(alt_clusters, dict):
        return [
            Error(
                f"Q_CLUSTER['ALT_CLUSTERS'] must be a dict, not {type(alt_clusters).__name__}.",
                hint=hint,
                id="prodserver_djangoq2.E011",
            )
        ]
    return [
        Error(
            f"Q_CLUSTER['ALT_CLUSTERS'][{name!r}] must be a dict of settings named by a string.",
            hint=hint,
            id="prodserver_djangoq2.E011",
        )
        for name, entry in alt_clusters.items()
        if not isinstance(name, str) or not isinstance(entry, dict)
    ]


def _check_cluster(where: str, conf: dict[str, Any], own: set[str]) -> list[CheckMessage]:
    messages = _check_brokers(where, conf, own)
    messages += _check_numbers(where, conf, own)
    messages += _check_loaded_values(where, conf, own)
    cache = conf.get("cache", "default")
    if "cache" in own and (not isinstance(cache, str) or cache not in settings.CACHES):
        messages.append(
            Error(
                f"{where}['cache'] names {cache!r}, which is not in CACHES.",
                hint=f"Use one of the CACHES aliases: {', '.join(settings.CACHES)}.",
                id="prodserver_djangoq2.E008",
            )
        )
    return messages


def _check_loaded_values(where: str, conf: dict[str, Any], own: set[str]) -> list[CheckMessage]:
    """Check the settings that Django-Q2 evaluates while Django loads its apps."""
    messages: list[CheckMessage] = []
    if "log_level" in own and not is_log_level(conf["log_level"]):
        messages.append(
            Error(
                f"{where}['log_level'] must name a logging level, not {conf['log_level']!r}.",
                hint="Use 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'.",
                id="prodserver_djangoq2.E024",
            )
        )
    reporter = conf.get("error_reporter")
    if "error_reporter" in own and reporter and not is_error_reporter(reporter):
        messages.append(
            Error(
                f"{where}['error_reporter'] must be a dict of reporter settings dicts.",
                hint="e.g. {'sentry': {'dsn': '...'}}; see Django-Q2's error reporters.",
                id="prodserver_djangoq2.E025",
            )
        )
    return messages


def _check_brokers(where: str, conf: dict[str, Any], own: set[str]) -> list[CheckMessage]:
    brokers = chosen_brokers(conf)
    messages: list[CheckMessage] = []
    for key in brokers:
        if key in own and not isinstance(conf[key], BROKER_TYPES[key]):
            expected = " or ".join(BROKER_TYPE_NAMES[kind] for kind in BROKER_TYPES[key])
            messages.append(
                Error(
                    f"{where}['{key}'] must be {expected}, not {type(conf[key]).__name__}.",
                    hint="See Django-Q2's broker documentation for this setting's form.",
                    id="prodserver_djangoq2.E005",
                )
            )
    if messages or not own & set(BROKERS):
        return messages
    if not brokers:
        return [
            Warning(
                f"{where} chooses no broker; Django-Q2 then uses Redis on localhost.",
                hint="Set one broker explicitly, e.g. 'orm': 'default' or 'redis': '<url>'.",
                id="prodserver_djangoq2.W001",
            ),
            *_check_client(where, "redis"),
        ]
    if brokers == ["django_redis", "redis"] and _same_redis_server(conf):
        # Django-Q2's own layout: django-redis's connection where it is installed, else redis.
        brokers = ["django_redis"] if _installed("django_redis") else ["redis"]
    if len(brokers) > 1:
        return [
            Warning(
                f"{where} chooses several brokers: {', '.join(brokers)}.",
                hint=f"Django-Q2 uses '{brokers[0]}' and ignores the others; keep one.",
                id="prodserver_djangoq2.E002",
            )
        ]
    (broker,) = brokers
    return _check_client(where, broker) + _check_alias(where, broker, conf[broker])


def _same_redis_server(conf: dict[str, Any]) -> bool:
    cache = settings.CACHES.get(conf["django_redis"], {})
    location = cache.get("LOCATION") or "redis://localhost:6379/0"
    first = location[0] if isinstance(location, list | tuple) else location
    return _redis_server(first) == _redis_server(conf["redis"])


def _redis_server(setting: object) -> tuple[object, ...]:
    """Return (host or socket, port, db) of a Redis URL or connection dict."""
    if isinstance(setting, str):
        parts = urlsplit(setting if "://" in setting else f"redis://{setting}")
        db = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[0]
        if parts.scheme == "unix":
            return (parts.path, None, db)
        return (parts.hostname or "localhost", parts.port or 6379, db)
    if isinstance(setting, dict):
        if setting.get("unix_socket_path"):
            return (setting["unix_socket_path"], None, str(setting.get("db", 0)))
        host = setting.get("host") or "localhost"
        return (host, int(setting.get("port") or 6379), str(setting.get("db", 0)))
    return (setting,)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check_client(where: str, broker: str) -> list[CheckMessage]:
    if broker not in CLIENTS:
        return []
    module, extra = CLIENTS[broker]
    if _installed(module):
        return []
    return [
        Error(
            f"{where} uses the {broker} broker but {module} is not installed.",
            hint=f"pip install prodserver-djangoq2[{extra}]",
            id="prodserver_djangoq2.E003",
        )
    ]


def _check_alias(where: str, broker: str, value: str) -> list[CheckMessage]:
    if broker == "broker_class":
        try:
            import_string(value)
        except ImportError as error:
            return [
                Error(
                    f"{where}['broker_class'] {value!r} cannot be imported.",
                    hint=f"Give the dotted path of a Broker subclass ({error}).",
                    id="prodserver_djangoq2.E004",
                )
            ]
    if broker == "orm" and value not in settings.DATABASES:
        return [
            Error(
                f"{where}['orm'] names database {value!r}, which is not in DATABASES.",
                hint=f"Use one of the DATABASES aliases: {', '.join(settings.DATABASES)}.",
                id="prodserver_djangoq2.E006",
            )
        ]
    if broker == "django_redis":
        if value not in settings.CACHES:
            problem = "which is not in CACHES"
        elif not str(settings.CACHES[value].get("BACKEND", "")).startswith("django_redis."):
            problem = "which is not a django-redis cache"
        else:
            return []
        return [
            Error(
                f"{where}['django_redis'] names cache {value!r}, {problem}.",
                hint="Name a CACHES alias whose BACKEND is django_redis.cache.RedisCache.",
                id="prodserver_djangoq2.E007",
            )
        ]
    return []


def _check_numbers(where: str, conf: dict[str, Any], own: set[str]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    valid: dict[str, float] = {}
    for key in NUMBERS:
        value = conf.get(key)
        integer = key in POSITIVE_INTEGERS
        if value is None:
            continue
        right_type = isinstance(value, int) or (not integer and isinstance(value, float))
        if right_type and not isinstance(value, bool) and value > 0:
            valid[key] = value
        elif key in own:
            messages.append(
                Error(
                    f"{where}['{key}'] must be a positive {'integer' if integer else 'number'}"
                    f", not {value!r}.",
                    hint=f"See Django-Q2's documentation of '{key}'.",
                    id="prodserver_djangoq2.E010",
                )
            )
    if conf.get("timeout") is None and "timeout" in own:
        messages.append(
            Warning(
                f"{where} sets no 'timeout'; a stuck task holds its worker forever.",
                hint="Set 'timeout' to the longest a task may run, in seconds, below 'retry'.",
                id="prodserver_djangoq2.W002",
            )
        )
    brokers = chosen_brokers(conf)
    redelivers = bool(brokers) and brokers[0] not in REDIS_BROKERS
    # Django-Q2's default 'retry' is 60 seconds.
    timeout, retry = valid.get("timeout"), valid.get("retry", conf.get("retry", 60))
    if (
        redelivers
        and timeout
        and isinstance(retry, int | float)
        and retry <= timeout
        and own & {"timeout", "retry", *BROKERS}
    ):
        messages.append(
            Warning(
                f"{where}: 'retry' ({retry:g}) is not greater than 'timeout' ({timeout:g}).",
                hint="The broker hands a task out again after 'retry' seconds, so longer "
                "tasks run twice: set 'retry' above 'timeout'.",
                id="prodserver_djangoq2.E009",
            )
        )
    return messages


def _check_cluster_deployment(
    where: str, conf: dict[str, Any], own: set[str]
) -> list[CheckMessage]:
    brokers = chosen_brokers(conf)
    if len(brokers) != 1 or brokers[0] in REDIS_BROKERS:
        return []
    messages: list[CheckMessage] = []
    alias = conf.get("orm")
    database = settings.DATABASES.get(alias) if isinstance(alias, str) else None
    workers = conf.get("workers") or os.cpu_count() or 1
    if (
        database is not None
        and str(database.get("ENGINE", "")).endswith("sqlite3")
        and isinstance(workers, int)
        and workers > 1
        and "timeout" not in database.get("OPTIONS", {})
        and own & {"orm", "workers"}
    ):
        messages.append(
            Warning(
                f"{where} runs {workers} workers on SQLite: expect 'database is locked'.",
                hint=f"Use PostgreSQL, set 'workers': 1, or set DATABASES['{alias}']"
                "['OPTIONS']['timeout'] to wait longer for SQLite's lock.",
                id="prodserver_djangoq2.W004",
            )
        )
    cache = conf.get("cache", "default")
    backend = settings.CACHES.get(cache, {}).get("BACKEND") if isinstance(cache, str) else None
    if backend in PROCESS_LOCAL_CACHES and own & {"cache", *BROKERS}:
        messages.append(
            Warning(
                f"{where} keeps cluster stats in a {PROCESS_LOCAL_CACHES[backend]} cache: "
                "qinfo shows none.",
                hint=f"Point 'cache' at a cache that processes share (database, Redis); "
                f"CACHES[{cache!r}] is private to each process.",
                id="prodserver_djangoq2.W005",
            )
        )
    return messages
