"""System checks for Django-Q2 workers: ``manage.py check`` and the worker's start run these.

Ids are stable and documented in ``docs/checks.md``. Checks about ``Q_CLUSTER`` run for its
own settings and for each ``ALT_CLUSTERS`` entry merged over them, the way Django-Q2 merges
them for a named cluster; an entry is only blamed for the settings it writes itself.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Collection, Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError
from django.utils.module_loading import import_string

from . import arguments, named_cluster

# Django-Q2's broker settings, in the order of precedence that ``get_broker`` applies.
BROKERS = ("broker_class", "iron_mq", "sqs", "orm", "mongo", "django_redis", "redis")
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
POSITIVE_INTEGERS = ("workers", "recycle", "queue_limit")
POSITIVE_NUMBERS = ("timeout", "retry")
PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "locmem",
    "django.core.cache.backends.dummy.DummyCache": "dummy",
}
BACKEND_NAMES = (
    "djangoq2",
    "prodserver_djangoq2.DjangoQ2Worker",
    "prodserver_djangoq2.backend.DjangoQ2Worker",
)
DEFAULT_PING_TIMEOUT = 5.0
DEFAULT_STOP_TIMEOUT = 30.0
ENVIRONMENT_CONFLICT = "prodserver_djangoq2.E018"


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that every Django-Q2 worker needs."""
    return [*_check_secret_key(), *_check_q_cluster(), *_check_processes()]


def check_deployment(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that matter in production."""
    q_cluster = getattr(settings, "Q_CLUSTER", None)
    if not isinstance(q_cluster, dict):
        return []
    messages: list[CheckMessage] = []
    for where, conf, own in cluster_configs(q_cluster):
        messages += _check_cluster_deployment(where, conf, own)
    return messages


def cluster_configs(q_cluster: dict[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    """Return (setting path, effective settings, keys it writes) for each cluster."""
    base = {key: value for key, value in q_cluster.items() if key != "ALT_CLUSTERS"}
    # Q_CLUSTER answers for every setting, the ones it leaves to Django-Q2's defaults too.
    configs = [("Q_CLUSTER", base, {*BROKERS, *POSITIVE_INTEGERS, *POSITIVE_NUMBERS, "cache"})]
    alt_clusters = q_cluster.get("ALT_CLUSTERS")
    if isinstance(alt_clusters, dict):
        for name, entry in alt_clusters.items():
            if isinstance(entry, dict):
                # Django-Q2 drops these two keys from an entry.
                own = {k: v for k, v in entry.items() if k not in ("name", "cluster_name")}
                where = f"Q_CLUSTER['ALT_CLUSTERS'][{name!r}]"
                configs.append((where, {**base, **own}, set(own)))
    return configs


def chosen_brokers(conf: Mapping[str, Any]) -> list[str]:
    """Return the broker settings that ``conf`` sets, the one Django-Q2 uses first."""
    # Django-Q2 takes any dict as SQS settings, an empty one too.
    return [key for key in BROKERS if conf.get(key) or (key == "sqs" and conf.get(key) == {})]


def uses_this_backend(backend: object) -> bool:
    """Whether a ``BACKEND`` value names this package's worker backend (or a subclass)."""
    if not isinstance(backend, str):
        return False
    if backend in BACKEND_NAMES:
        return True
    from .backend import DjangoQ2Worker
    from .discovery import resolve_backend

    try:
        resolved = resolve_backend(backend)
    except Exception:
        # A backend that cannot be imported is django-prodserver's to report, not ours.
        return False
    return isinstance(resolved, type) and issubclass(resolved, DjangoQ2Worker)


def stop_timeout(process_config: Mapping[str, Any], process_name: str) -> float:
    """Return the process's ``STOP_TIMEOUT`` in seconds."""
    return positive_seconds(
        process_config,
        process_name,
        ("STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT),
        "prodserver_djangoq2.E019",
        "how long a stop may wait for tasks in progress, e.g. 30",
    )


def ping_timeout(process_config: Mapping[str, Any], process_name: str) -> float:
    """Return the process's ``PING_TIMEOUT`` in seconds."""
    return positive_seconds(
        process_config,
        process_name,
        ("PING_TIMEOUT", DEFAULT_PING_TIMEOUT),
        "prodserver_djangoq2.E020",
        "how many seconds the broker may take to answer when the worker starts, e.g. 5",
    )


def positive_seconds(
    process_config: Mapping[str, Any],
    process_name: str,
    key_and_default: tuple[str, float],
    check_id: str,
    meaning: str,
) -> float:
    """Return a process key that holds a positive number of seconds, or refuse it."""
    key, default = key_and_default
    value = process_config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CommandError(
            f"{check_id}: PRODUCTION_PROCESSES['{process_name}']['{key}'] must be a positive "
            f"number of seconds, not {value!r}. HINT: Give {meaning}."
        )
    return float(value)


def silenced_checks(process_config: Mapping[str, Any], process_name: str) -> frozenset[str]:
    """Return the check ids that the process's ``SILENCED_CHECKS`` silences at its start."""
    value = process_config.get("SILENCED_CHECKS", ())
    if (
        isinstance(value, str)
        or not isinstance(value, Collection)
        or not all(isinstance(item, str) for item in value)
    ):
        raise CommandError(
            f"prodserver_djangoq2.E021: PRODUCTION_PROCESSES['{process_name}']"
            f"['SILENCED_CHECKS'] must be a list of check ids, not {value!r}. "
            "HINT: e.g. ['prodserver_djangoq2.W002']."
        )
    return frozenset(value)


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


def _check_q_cluster() -> list[CheckMessage]:
    if not hasattr(settings, "Q_CLUSTER"):
        return [
            Error(
                "Q_CLUSTER is not set; Django-Q2 workers have no broker.",
                hint="Add Q_CLUSTER = {'name': ..., 'orm': 'default'} (or another broker).",
                id="prodserver_djangoq2.E001",
            )
        ]
    q_cluster = settings.Q_CLUSTER
    if not isinstance(q_cluster, dict):
        return [
            Error(
                f"Q_CLUSTER must be a dict, not {type(q_cluster).__name__}.",
                hint="Write Q_CLUSTER as a dict of Django-Q2 settings.",
                id="prodserver_djangoq2.E001",
            )
        ]
    messages = _check_alt_clusters(q_cluster.get("ALT_CLUSTERS", {}))
    for where, conf, own in cluster_configs(q_cluster):
        messages += _check_cluster(where, conf, own)
    return messages


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
    if len(brokers) > 1:
        return [
            Error(
                f"{where} chooses several brokers: {', '.join(brokers)}.",
                hint=f"Django-Q2 uses '{brokers[0]}' and ignores the others; keep one.",
                id="prodserver_djangoq2.E002",
            )
        ]
    (broker,) = brokers
    return _check_client(where, broker) + _check_alias(where, broker, conf[broker])


def _check_client(where: str, broker: str) -> list[CheckMessage]:
    if broker not in CLIENTS:
        return []
    module, extra = CLIENTS[broker]
    if importlib.util.find_spec(module) is not None:
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
    for key in (*POSITIVE_INTEGERS, *POSITIVE_NUMBERS):
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
            Error(
                f"{where}: 'retry' ({retry:g}) is not greater than 'timeout' ({timeout:g}).",
                hint="The broker hands a task out again after 'retry' seconds, so longer "
                "tasks run twice: set 'retry' above 'timeout'.",
                id="prodserver_djangoq2.E009",
            )
        )
    return messages


def _check_processes() -> list[CheckMessage]:
    processes = getattr(settings, "PRODUCTION_PROCESSES", {})
    hint = "Write PRODUCTION_PROCESSES as {'name': {'BACKEND': 'djangoq2', 'ARGS': {...}}}."
    if not isinstance(processes, Mapping):
        return [
            Error(
                f"PRODUCTION_PROCESSES must be a dict, not {type(processes).__name__}.",
                hint=hint,
                id="prodserver_djangoq2.E013",
            )
        ]
    messages: list[CheckMessage] = []
    for name, config in processes.items():
        if not isinstance(config, Mapping) or "BACKEND" not in config:
            messages.append(
                Error(
                    f"PRODUCTION_PROCESSES['{name}'] is not a dict with a 'BACKEND'.",
                    hint=hint,
                    id="prodserver_djangoq2.E013",
                )
            )
        elif uses_this_backend(config["BACKEND"]):
            messages += check_process(str(name), config)
    return messages


def check_process(name: str, config: Mapping[str, Any]) -> list[CheckMessage]:
    """Check one ``PRODUCTION_PROCESSES`` entry that runs a Django-Q2 worker."""
    messages: list[CheckMessage] = []
    where = f"PRODUCTION_PROCESSES['{name}']['ARGS']"
    try:
        parser = arguments.qcluster_parser()
        argv = arguments.to_argv(config.get("ARGS", {}), where, parser)
        options = arguments.parse(argv, where, parser)
        cluster = arguments.written_name(config.get("ARGS"), options["cluster_name"])
        named_cluster.requested_name(cluster, where)
    except CommandError as error:
        # Q_CLUSTER_NAME belongs to the environment of the worker being started (and the
        # backend sets it for the selected cluster): the backend refuses a conflict itself.
        if not str(error).startswith(f"{ENVIRONMENT_CONFLICT}:"):
            messages.append(_from_command_error(error))
    else:
        messages += _check_cluster_name(cluster, where)
    for validate in (stop_timeout, ping_timeout, silenced_checks):
        try:
            validate(config, name)
        except CommandError as error:
            messages.append(_from_command_error(error))
    return messages


def _check_cluster_name(cluster: str | None, where: str) -> list[CheckMessage]:
    q_cluster = getattr(settings, "Q_CLUSTER", None)
    if cluster is None or not isinstance(q_cluster, dict):
        return []
    alt_clusters = q_cluster.get("ALT_CLUSTERS", {})
    if cluster in (q_cluster.get("name"), q_cluster.get("cluster_name")):
        return []
    if not isinstance(alt_clusters, dict) or cluster in alt_clusters:
        return []
    return [
        Warning(
            f"{where} names cluster {cluster!r}, which Q_CLUSTER['ALT_CLUSTERS'] lacks.",
            hint=f"The worker serves queue {cluster!r} with Q_CLUSTER's own settings; add an "
            "ALT_CLUSTERS entry if it needs others, or silence this warning.",
            id="prodserver_djangoq2.W003",
        )
    ]


def _from_command_error(error: CommandError) -> CheckMessage:
    # The worker raises these errors itself; their text is "<id>: <message> HINT: <hint>".
    check_id, _, text = str(error).partition(": ")
    message, _, hint = text.partition(" HINT: ")
    return Error(message, hint=hint or None, id=check_id)


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
