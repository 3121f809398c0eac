"""Select the Django-Q2 cluster (queue) that this process serves.

``django_q.conf.Conf`` reads ``Q_CLUSTER_NAME`` once, when Django loads the ``django_q`` app,
so ``qcluster --name`` has no effect in a process that is already set up. Here the
configuration is evaluated again for the requested name and copied onto the existing ``Conf``
class, which every Django-Q2 module holds a reference to.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from typing import Any

from django.conf import settings
from django.core.management import CommandError

ENVIRONMENT_VARIABLE = "Q_CLUSTER_NAME"


def requested_name(from_args: Any, where: str) -> str | None:
    """Return the cluster name asked for by ``ARGS`` or the environment, refusing conflicts."""
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE) or None
    if from_args is None:
        return from_environment
    if not isinstance(from_args, str) or not from_args.strip():
        raise CommandError(
            f"prodserver_djangoq2.E017: {where} 'name' must be a non-empty string, not "
            f"{from_args!r}. HINT: Name the Django-Q2 cluster (queue) this process serves."
        )
    if from_environment and from_environment != from_args:
        raise CommandError(
            f"prodserver_djangoq2.E018: {where} names cluster '{from_args}' but the "
            f"environment sets {ENVIRONMENT_VARIABLE}='{from_environment}'. "
            "HINT: remove one of them."
        )
    return from_args


def select(name: str | None) -> str:
    """Make Django-Q2 serve cluster ``name`` (``None``: as configured); return the name."""
    from django_q.conf import Conf

    if name is None or name == Conf.CLUSTER_NAME:
        return str(Conf.CLUSTER_NAME)
    os.environ[ENVIRONMENT_VARIABLE] = name
    _reevaluate(Conf)
    return str(Conf.CLUSTER_NAME)


def tolerate_missing_alt_clusters() -> None:
    """Give ``Q_CLUSTER`` an empty ``ALT_CLUSTERS`` where Django-Q2 would need one."""
    # Django-Q2 pops ALT_CLUSTERS without a default whenever the cluster name differs from
    # Q_CLUSTER["name"]; a name that ALT_CLUSTERS does not define is a plain named queue.
    q_cluster = getattr(settings, "Q_CLUSTER", None)
    if isinstance(q_cluster, dict) and "ALT_CLUSTERS" not in q_cluster:
        settings.Q_CLUSTER = {**q_cluster, "ALT_CLUSTERS": {}}


def _reevaluate(conf: type) -> None:
    tolerate_missing_alt_clusters()
    spec = importlib.util.find_spec("django_q.conf")
    assert spec is not None
    assert spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        # Django-Q2 already warned about these settings when it first loaded them.
        warnings.simplefilter("ignore")
        spec.loader.exec_module(fresh)
    for key, value in vars(fresh.Conf).items():
        if not key.startswith("__"):
            setattr(conf, key, value)
    # Modules that copied these names at import time see the selected cluster's values too.
    for module_name in ("django_q.conf", "django_q.worker"):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, "error_reporter"):
            vars(module)["error_reporter"] = fresh.error_reporter
    if "log_level" in fresh.Conf.conf:
        logging.getLogger("django-q").setLevel(fresh.Conf.LOG_LEVEL)
