"""One corpus entry: a public project's ``Q_CLUSTER``, where it comes from, and how it runs here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# Django-Q2's broker settings, in the order of precedence that its ``get_broker`` applies.
BROKER_KEYS = ("broker_class", "iron_mq", "sqs", "orm", "mongo", "django_redis", "redis")
# What a project that sets no CACHES runs with.
DJANGO_DEFAULT_CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@dataclass(frozen=True)
class RedisLocation:
    """Where the project names its Redis server; the tests put their own server there."""

    part: Literal["host", "port", "url"]
    db: int | None = None


REDIS_HOST = RedisLocation("host")
REDIS_PORT = RedisLocation("port")


def redis_url(db: int | None = None) -> RedisLocation:
    """A ``redis://`` URL on the tests' server, with the project's database number if it has one."""
    return RedisLocation("url", db)


@dataclass(frozen=True)
class InProject:
    """A filesystem path the project keeps under its own directory."""

    name: str


@dataclass(frozen=True)
class Entry:
    """A ``Q_CLUSTER`` as a public project writes it, with the adaptation needed to run it here."""

    name: str
    repository: str
    path: str
    commit: str
    q_cluster: dict[str, Any]
    adaptation: str
    database: Literal["sqlite", "postgres"] = "sqlite"
    caches: dict[str, Any] = field(default_factory=lambda: DJANGO_DEFAULT_CACHES)
    # Other settings of the project that Django-Q2 reads (TIME_ZONE, USE_TZ).
    django_settings: dict[str, Any] = field(default_factory=dict)
    # Worker-only concerns that the worker's start refuses unless its SILENCED_CHECKS lists them.
    silenced_at_start: tuple[str, ...] = ()
    # An ALT_CLUSTERS name that a second worker serves in the end-to-end test.
    alt_cluster: str | None = None

    @property
    def brokers(self) -> list[str]:
        """The broker settings the project sets, the one Django-Q2 uses first."""
        return [key for key in BROKER_KEYS if self.q_cluster.get(key)]

    @property
    def cluster_name(self) -> str:
        """The name Django-Q2 stores with the default cluster's results."""
        name = self.q_cluster.get("cluster_name", self.q_cluster.get("name", "default"))
        return str(name)

    @property
    def uses_redis(self) -> bool:
        return _contains_redis((self.q_cluster, self.caches))


def located(value: Any, redis_host: str, redis_port: int, project_root: Path) -> Any:
    """Return ``value`` with every location marker replaced by the tests' own one."""
    if isinstance(value, RedisLocation):
        if value.part == "host":
            return redis_host
        if value.part == "port":
            return redis_port
        database = "" if value.db is None else f"/{value.db}"
        return f"redis://{redis_host}:{redis_port}{database}"
    if isinstance(value, InProject):
        return str(project_root / value.name)
    if isinstance(value, dict):
        return {
            key: located(item, redis_host, redis_port, project_root) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(located(item, redis_host, redis_port, project_root) for item in value)
    return value


def _contains_redis(value: Any) -> bool:
    if isinstance(value, RedisLocation):
        return True
    if isinstance(value, dict):
        return any(_contains_redis(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_redis(item) for item in value)
    return False
