"""Django app configuration: binds the system checks and the backend-name hook."""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig

from . import cluster_settings, hook, names

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

# Runs while Django imports the apps, before django_q evaluates Q_CLUSTER when this app is
# listed first. Values that would crash Django-Q2 are kept from it and reported by the checks.
# In a worker's own process only: its named cluster is selected the Django-Q2 way
# (Q_CLUSTER_NAME), so that it need not start over once Django is set up; and Django-Q2's
# warning about retry and timeout is left to the checks E009 and W002, which say it in one line.
if len(sys.argv) > 1 and sys.argv[1] in names.WORKER_COMMANDS:
    from . import process

    _worker_entry = process.started_entry(sys.argv)
    if _worker_entry is not None:
        _cluster = process.cluster_named_in(_worker_entry)
        if _cluster is not None:
            os.environ.setdefault(names.CLUSTER_NAME_VARIABLE, _cluster)
        warnings.filterwarnings(
            "ignore", message="Retry and timeout are misconfigured", module="django_q.conf"
        )
cluster_settings.make_loadable()


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    """Run this package's checks (imported when checks run: web processes never pay for them)."""
    from . import checks

    return checks.check_settings(**kwargs)


def check_deployment(**kwargs: Any) -> list[CheckMessage]:
    """Run this package's deployment checks (``check --deploy`` and the worker's start)."""
    from . import checks

    return checks.check_deployment(**kwargs)


class ProdserverDjangoQ2Config(AppConfig):
    """Attach the ``djangoq2`` backend name and this package's checks."""

    name = "prodserver_djangoq2"
    verbose_name = "Django-Q2 workers for django-prodserver"

    def ready(self) -> None:
        """Register the checks and let django-prodserver resolve backend names."""
        from django.core import checks

        checks.register(check_settings, "prodserver_djangoq2")
        checks.register(check_deployment, "prodserver_djangoq2", deploy=True)
        hook.attach_when_imported()
