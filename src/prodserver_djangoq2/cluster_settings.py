"""``Q_CLUSTER`` as the project wrote it, and as each of its clusters sees it.

Django-Q2 evaluates ``Q_CLUSTER`` while Django loads its apps, and a few wrong values crash it
there with a traceback, before any system check can run. ``make_loadable`` (called while
Django imports this app, which is listed before ``django_q``) hands Django-Q2 a copy without
those values, so that ``manage.py check`` and the worker report them as check errors, and
web processes keep working; the checks read the settings ``as_written``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from .names import CLUSTER_NAME_VARIABLE

# Django-Q2's broker settings, in the order of precedence that ``get_broker`` applies.
BROKERS = ("broker_class", "iron_mq", "sqs", "orm", "mongo", "django_redis", "redis")
POSITIVE_INTEGERS = ("workers", "recycle", "queue_limit")
POSITIVE_NUMBERS = ("timeout", "retry")
NUMBERS = (*POSITIVE_INTEGERS, *POSITIVE_NUMBERS)
MISSING = object()

# (the copy handed to Django-Q2, the value the project wrote)
_replacement: tuple[object, object] | None = None


def as_written() -> object:
    """Return ``Q_CLUSTER`` as the project wrote it (``MISSING`` if it is not set)."""
    current = getattr(settings, "Q_CLUSTER", MISSING)
    if _replacement is not None and current is _replacement[0]:
        return _replacement[1]
    return current


def make_loadable() -> None:
    """Give Django-Q2 a ``Q_CLUSTER`` without the values that crash it at import."""
    global _replacement
    written = getattr(settings, "Q_CLUSTER", MISSING)
    if written is MISSING:
        return
    loadable = loadable_copy(written, os.environ.get(CLUSTER_NAME_VARIABLE) or None)
    if loadable is not written:
        settings.Q_CLUSTER = loadable
        _replacement = (loadable, written)


def loadable_copy(q_cluster: object, cluster_name: str | None) -> object:
    """Return ``q_cluster``, or a copy without what would crash Django-Q2's ``Conf``."""
    if not isinstance(q_cluster, dict):
        return {}  # Django-Q2 calls .copy() and .get() on it
    loadable = {key: value for key, value in q_cluster.items() if key != "ALT_CLUSTERS"}
    _drop_crashing_values(loadable, loadable)
    alt_clusters = q_cluster.get("ALT_CLUSTERS", MISSING)
    if isinstance(alt_clusters, dict):
        loadable["ALT_CLUSTERS"] = {
            name: _loadable_entry(loadable, entry) for name, entry in alt_clusters.items()
        }
    elif alt_clusters is not MISSING:
        loadable["ALT_CLUSTERS"] = alt_clusters  # Django-Q2 ignores it when it is no dict
    elif cluster_name not in (None, q_cluster.get("name"), q_cluster.get("cluster_name")):
        # Django-Q2 pops ALT_CLUSTERS without a default for any other cluster name; a name
        # that no ALT_CLUSTERS defines is a plain named queue with Q_CLUSTER's settings.
        loadable["ALT_CLUSTERS"] = {}
    return q_cluster if loadable == q_cluster else loadable


def cluster_configs(q_cluster: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    """Return (setting path, effective settings, keys it writes) for each cluster."""
    base = {key: value for key, value in q_cluster.items() if key != "ALT_CLUSTERS"}
    # Q_CLUSTER answers for every setting, the ones it leaves to Django-Q2's defaults too.
    configs = [("Q_CLUSTER", base, {*BROKERS, *NUMBERS, "cache", *base})]
    alt_clusters = q_cluster.get("ALT_CLUSTERS")
    if isinstance(alt_clusters, dict):
        for name, entry in alt_clusters.items():
            if isinstance(entry, dict):
                own = own_settings(entry)
                where = f"Q_CLUSTER['ALT_CLUSTERS'][{name!r}]"
                configs.append((where, {**base, **own}, set(own)))
    return configs


def selected_config(q_cluster: Mapping[str, Any], cluster_name: str | None) -> dict[str, Any]:
    """Return the effective settings of cluster ``cluster_name`` (``None``: the default)."""
    base = {key: value for key, value in q_cluster.items() if key != "ALT_CLUSTERS"}
    alt_clusters = q_cluster.get("ALT_CLUSTERS")
    if cluster_name in (None, base.get("name"), base.get("cluster_name")):
        return base
    entry = alt_clusters.get(cluster_name) if isinstance(alt_clusters, dict) else None
    return {**base, **own_settings(entry)} if isinstance(entry, dict) else base


def own_settings(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return an ``ALT_CLUSTERS`` entry without the two keys Django-Q2 drops from it."""
    return {key: value for key, value in entry.items() if key not in ("name", "cluster_name")}


def chosen_brokers(conf: Mapping[str, Any]) -> list[str]:
    """Return the broker settings that ``conf`` sets, the one Django-Q2 uses first."""
    # Django-Q2 takes any dict as SQS settings, an empty one too.
    return [key for key in BROKERS if conf.get(key) or (key == "sqs" and conf.get(key) == {})]


def is_log_level(value: object) -> bool:
    """Whether Django-Q2 can set ``value`` as its logger's level (a level's name)."""
    return isinstance(value, str) and isinstance(getattr(logging, value, None), int)


def is_error_reporter(value: object) -> bool:
    """Whether ``value`` has the shape of Django-Q2's ``error_reporter`` setting."""
    return isinstance(value, dict) and all(isinstance(conf, Mapping) for conf in value.values())


def _loadable_entry(base: dict[str, Any], entry: object) -> object:
    if not isinstance(entry, dict):
        return entry
    loadable = dict(entry)
    _drop_crashing_values(loadable, {**base, **loadable})
    return loadable


def _drop_crashing_values(own: dict[str, Any], effective: Mapping[str, Any]) -> None:
    """Remove from ``own`` the values that Django-Q2's ``Conf`` cannot evaluate."""
    # Conf computes int(workers) ** 2 as queue_limit's default.
    if "workers" in own and own["workers"] and not _int_convertible(own["workers"]):
        del own["workers"]
    # Conf compares timeout > retry when timeout is set.
    timeout, retry = effective.get("timeout"), effective.get("retry", 60)
    if timeout and not _comparable(timeout, retry):
        for key in POSITIVE_NUMBERS:
            if key in own and not _is_number(own[key]):
                del own[key]
    # Conf passes log_level to getattr(logging, ...) and calls error_reporter.items().
    if "log_level" in own and not is_log_level(own["log_level"]):
        del own["log_level"]
    if own.get("error_reporter") and not is_error_reporter(own["error_reporter"]):
        del own["error_reporter"]


def _int_convertible(value: object) -> bool:
    try:
        int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _comparable(timeout: object, retry: object) -> bool:
    try:
        timeout > retry  # type: ignore[operator]  # noqa: B015
    except TypeError:
        return False
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
