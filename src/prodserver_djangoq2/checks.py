"""The system checks this app registers: ``manage.py check`` and the worker's start run them.

Ids are stable and documented in ``docs/checks.md``. The letter of an id says what a worker
does about it: E, it refuses to start; W, it warns. In ``manage.py check`` (and so in
``migrate``, ``runserver``...) only what Django-Q2 itself cannot run with is an Error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning

from . import cluster_checks, process
from .cluster_settings import as_written, selected_config


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that every Django-Q2 worker needs."""
    return [*cluster_checks.check_q_cluster(), *_check_processes()]


def check_deployment(**kwargs: Any) -> list[CheckMessage]:
    """Check the settings that matter in production."""
    return cluster_checks.check_q_cluster_deployment()


def _check_processes() -> list[CheckMessage]:
    processes = getattr(settings, "PRODUCTION_PROCESSES", {})
    hint = "Write PRODUCTION_PROCESSES as {'name': {'BACKEND': 'djangoq2', 'ARGS': {...}}}."
    # django-prodserver's own setting: a mistake in it only matters to its commands.
    if not isinstance(processes, Mapping):
        return [
            Warning(
                f"PRODUCTION_PROCESSES must be a dict, not {type(processes).__name__}.",
                hint=hint,
                id="prodserver_djangoq2.E013",
            )
        ]
    messages: list[CheckMessage] = []
    for name, config in processes.items():
        if not isinstance(config, Mapping) or "BACKEND" not in config:
            messages.append(
                Warning(
                    f"PRODUCTION_PROCESSES['{name}'] is not a dict with a 'BACKEND'.",
                    hint=hint,
                    id="prodserver_djangoq2.E013",
                )
            )
        elif process.uses_this_backend(config["BACKEND"]):
            messages += check_process(str(name), config)
    return messages


def check_process(name: str, config: Mapping[str, Any]) -> list[CheckMessage]:
    """Check one ``PRODUCTION_PROCESSES`` entry that runs a Django-Q2 worker."""
    errors = process.problems(name, config)
    if errors:
        # The worker refuses to start with them; nothing else depends on this entry.
        return [error.as_check(Warning) for error in errors]
    entry = process.read(name, config)
    q_cluster = as_written()
    if not isinstance(q_cluster, dict):
        return []
    return [
        *_check_cluster_name(entry, q_cluster),
        *_check_stop_timeout(entry, q_cluster),
        *_check_reload(entry),
    ]


def _check_reload(entry: process.ProcessEntry) -> list[CheckMessage]:
    if not entry.reload or settings.DEBUG:
        return []
    return [
        Warning(
            f"PRODUCTION_PROCESSES['{entry.name}'] has RELOAD on while DEBUG is off.",
            hint="RELOAD restarts the worker whenever code changes: keep it for development.",
            id="prodserver_djangoq2.W007",
        )
    ]


def _check_cluster_name(
    entry: process.ProcessEntry, q_cluster: dict[str, Any]
) -> list[CheckMessage]:
    cluster = entry.cluster_name
    alt_clusters = q_cluster.get("ALT_CLUSTERS", {})
    if cluster is None or cluster in (q_cluster.get("name"), q_cluster.get("cluster_name")):
        return []
    if not isinstance(alt_clusters, dict) or cluster in alt_clusters:
        return []
    return [
        Warning(
            f"{entry.where} names cluster {cluster!r}, which Q_CLUSTER['ALT_CLUSTERS'] lacks.",
            hint=f"The worker serves queue {cluster!r} with Q_CLUSTER's own settings; add an "
            "ALT_CLUSTERS entry if it needs others, or silence this warning.",
            id="prodserver_djangoq2.W003",
        )
    ]


def _check_stop_timeout(
    entry: process.ProcessEntry, q_cluster: dict[str, Any]
) -> list[CheckMessage]:
    timeout = selected_config(q_cluster, entry.cluster_name).get("timeout")
    stop_timeout = entry.stop_timeout
    if stop_timeout is None or not isinstance(timeout, int | float) or stop_timeout >= timeout:
        return []
    return [
        Warning(
            f"PRODUCTION_PROCESSES['{entry.name}']['STOP_TIMEOUT'] ({stop_timeout:g}) "
            f"is shorter than the cluster's 'timeout' ({timeout:g}).",
            hint="A stop then ends tasks that the cluster allows to run; raise STOP_TIMEOUT "
            "or leave it out (default: the cluster's 'timeout' plus "
            f"{process.STOP_MARGIN:g} s).",
            id="prodserver_djangoq2.W006",
        )
    ]
