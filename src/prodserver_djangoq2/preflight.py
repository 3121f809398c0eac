"""Refuse to start a worker whose settings, broker or database would make it fail later.

Runs after the cluster is selected, so that ``django_q.conf.Conf`` holds the selected
cluster's settings, and before the cluster forks. Output never includes a broker's or a
database's credentials: locations are printed without them and error texts are scrubbed.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks as django_checks
from django.core.checks import CheckMessage

from . import checks
from .cluster_checks import WORKER_REFUSALS
from .errors import EXIT_BROKER_UNREACHABLE, EXIT_MIGRATIONS_MISSING, refusal
from .process import ProcessEntry

PING_ID = "prodserver_djangoq2.E023"
MIGRATIONS_ID = "prodserver_djangoq2.E022"
# Errors beyond this many are counted, not printed: the full list is `manage.py check`'s.
MAX_ERROR_LINES = 5
MAX_REASON_LENGTH = 160
SECRET_WORDS = ("password", "secret", "token", "key", "credential")


def run(entry: ProcessEntry) -> None:
    """Refuse to start the worker on a configuration error or an unreachable broker."""
    report_checks(entry.silenced_checks)
    if PING_ID not in entry.silenced_checks:
        ping_broker(entry.ping_timeout)
    if MIGRATIONS_ID not in entry.silenced_checks:
        check_migrations()


def report_checks(silenced: Iterable[str] = ()) -> None:
    """Print warnings to stderr; raise ``CommandError`` listing what the worker refuses."""
    silenced = set(silenced)
    # The worker is a production process: this package's deployment checks apply to it.
    messages = [*django_checks.run_checks(), *checks.check_deployment()]
    shown = [
        message
        for message in messages
        if message.level >= django_checks.WARNING
        and not message.is_silenced()
        and message.id not in silenced
    ]
    refused = [m for m in shown if m.is_serious() or m.id in WORKER_REFUSALS]
    for message in shown:
        if message not in refused:
            sys.stderr.write(format_message(message) + "\n")
    errors = [format_message(message) for message in refused]
    if len(errors) > MAX_ERROR_LINES:
        more = len(errors) - MAX_ERROR_LINES + 1
        errors[MAX_ERROR_LINES - 1 :] = [f"... and {more} more: run python manage.py check"]
    if errors:
        raise refusal("\n".join(errors))


def format_message(message: CheckMessage) -> str:
    """Return a check message as one line: ``<id>: <message> HINT: <hint>``."""
    line = f"{message.id or '?'}: "
    if message.obj is not None:
        line += f"{message.obj}: "
    line += str(message.msg).replace("\n", " ")
    if message.hint:
        line += " HINT: " + str(message.hint).replace("\n", " ")
    return line


def ping_broker(seconds: float) -> None:
    """Raise ``CommandError`` unless the selected cluster's broker answers within ``seconds``."""
    from django_q.conf import Conf

    description, ping, secrets = _broker(Conf)
    outcome = _call_within(seconds, ping)
    hint = "Start the broker or correct its settings; PING_TIMEOUT sets the wait."
    if outcome is TimeoutError:
        raise refusal(
            f"{PING_ID}: the {description} did not answer within {seconds:g} s. HINT: {hint}",
            EXIT_BROKER_UNREACHABLE,
        )
    if isinstance(outcome, BaseException):
        reason = _scrub(outcome, secrets)
        raise refusal(
            f"{PING_ID}: the {description} did not answer: {reason}. HINT: {hint}",
            EXIT_BROKER_UNREACHABLE,
        )


def check_migrations() -> None:
    """Raise ``CommandError`` unless Django-Q2's migrations are applied where it writes."""
    from django.db import DatabaseError, connections, router
    from django_q.conf import Conf
    from django_q.models import Task

    from .migration_state import missing_django_q_migrations

    aliases = [router.db_for_write(Task), *([Conf.ORM] if Conf.ORM else [])]
    for alias in dict.fromkeys(aliases):
        connection = connections[alias]
        try:
            missing = missing_django_q_migrations(connection)
        except DatabaseError as error:
            reason = _scrub(error, _secrets(settings.DATABASES[alias]))
            raise refusal(
                f"{MIGRATIONS_ID}: cannot read Django-Q2's tables in database '{alias}': "
                f"{reason}. HINT: Check DATABASES['{alias}'] and that the database is up.",
                EXIT_MIGRATIONS_MISSING,
            ) from None
        finally:
            # The cluster forks next; its processes must not share this connection.
            connection.close()
        if missing:
            option = "" if alias == "default" else f" --database={alias}"
            raise refusal(
                f"{MIGRATIONS_ID}: database '{alias}' lacks {len(missing)} of Django-Q2's "
                f"migrations. HINT: run python manage.py migrate{option}",
                EXIT_MIGRATIONS_MISSING,
            )


def _broker(conf: Any) -> tuple[str, Callable[[], object], list[str]]:
    """Return the selected broker's description, a ping and the secrets in its settings."""
    if conf.BROKER_CLASS:
        return f"custom broker {conf.BROKER_CLASS}", _ping_django_q_broker, []
    if conf.IRON_MQ:
        host = conf.IRON_MQ.get("host") or "IronMQ's default host"
        return f"iron_mq broker at {host}", _ping_django_q_broker, _secrets(conf.IRON_MQ)
    if isinstance(conf.SQS, dict):
        region = conf.SQS.get("aws_region") or conf.SQS.get("region_name") or "default region"
        return f"sqs broker in {region}", _ping_sqs, _secrets(conf.SQS)
    if conf.ORM:
        database = settings.DATABASES[conf.ORM]
        engine = str(database.get("ENGINE", "")).rsplit(".", 1)[-1]
        where = database.get("HOST") or database.get("NAME") or "localhost"
        if database.get("PORT"):
            where = f"{where}:{database['PORT']}"
        description = f"orm broker (database '{conf.ORM}', {engine} at {where})"
        return description, lambda: _ping_database(conf.ORM), _secrets(database)
    if conf.MONGO:
        host = conf.MONGO.get("host") or "localhost"
        hosts = host if isinstance(host, list) else [host]
        where = ", ".join(_location(str(item)) for item in hosts)
        if "port" in conf.MONGO:
            where += f":{conf.MONGO['port']}"
        return f"mongo broker at {where}", _ping_mongo, _secrets(conf.MONGO)
    # Without django-redis installed, Django-Q2 ignores 'django_redis' and uses 'redis'.
    if conf.DJANGO_REDIS and importlib.util.find_spec("django_redis") is not None:
        cache = settings.CACHES[conf.DJANGO_REDIS]
        location = cache.get("LOCATION") or "localhost"
        first = location[0] if isinstance(location, list | tuple) else location
        description = f"django_redis broker (cache '{conf.DJANGO_REDIS}' at {_location(first)})"
        return description, _ping_redis, _secrets(cache)
    return f"redis broker at {_redis_location(conf.REDIS)}", _ping_redis, _secrets(conf.REDIS)


def _redis_location(redis: object) -> str:
    if isinstance(redis, str):
        return _location(redis)
    config = redis if isinstance(redis, dict) else {}  # E005 refuses other types
    if config.get("unix_socket_path"):
        return str(config["unix_socket_path"])
    return f"{config.get('host') or 'localhost'}:{config.get('port') or 6379}"


def _location(url: str) -> str:
    """Return ``url`` without its credentials or query (which may carry a password)."""
    if "://" not in url:
        return url.rpartition("@")[2]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _secrets(config: object) -> list[str]:
    """Return the strings in a broker or database setting that must never be printed."""
    found: list[str] = []
    if isinstance(config, str) and "://" in config:
        parts = urlsplit(config)
        found += [part for part in (parts.password, parts.query) if part]
    elif isinstance(config, Mapping):
        for key, value in config.items():
            if isinstance(value, str) and any(w in str(key).lower() for w in SECRET_WORDS):
                found.append(value)
            else:
                found += _secrets(value)
    elif isinstance(config, list | tuple):
        for value in config:
            found += _secrets(value)
    return found


def _scrub(error: BaseException, secrets: list[str]) -> str:
    text = f"{type(error).__name__}: {str(error).strip()}".splitlines()[0].rstrip(".")
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 3] + "..."
    return text


def _call_within(seconds: float, call: Callable[[], object]) -> object:
    """Run ``call`` in a daemon thread; return its exception, ``TimeoutError`` or ``None``."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as error:  # reported by the caller, whatever it is
            outcome.append(error)
        else:
            outcome.append(None)

    # A daemon thread: a ping stuck in a connect must not keep the process alive.
    thread = threading.Thread(target=target, name="prodserver-djangoq2-ping", daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else TimeoutError


def _ping_redis() -> None:
    from django_q.brokers.redis_broker import Redis

    Redis.get_connection().ping()


def _ping_database(alias: str) -> None:
    from django.db import connections

    connection = connections[alias]  # this thread's own connection
    try:
        connection.ensure_connection()
    finally:
        connection.close()


def _ping_sqs() -> None:
    from django_q.brokers.aws_sqs import Sqs

    Sqs.get_connection().client("sqs").list_queues(MaxResults=1)


def _ping_mongo() -> None:
    from django_q.brokers.mongo import Mongo

    client = Mongo.get_connection()
    try:
        client.admin.command("ping")
    finally:
        client.close()


def _ping_django_q_broker() -> None:
    from django_q.brokers import get_broker

    # Broker.ping() returns None where a broker does not implement it.
    if get_broker().ping() is False:
        raise ConnectionError("the broker's ping() returned False")
