"""Django app configuration: binds the system checks and the backend-name hook."""

from __future__ import annotations

import os
import sys
import warnings

from django.apps import AppConfig

from . import cluster_settings, process

# Runs while Django imports the apps, before django_q evaluates Q_CLUSTER when this app is
# listed first. Values that would crash Django-Q2 are kept from it and reported by the checks.
# In a worker's own process only: its named cluster is selected the Django-Q2 way
# (Q_CLUSTER_NAME), so that it need not start over once Django is set up; and Django-Q2's
# warning about retry and timeout is left to the checks E009 and W002, which say it in one line.
_worker_entry = process.started_entry(sys.argv)
if _worker_entry is not None:
    _cluster = process.cluster_named_in(_worker_entry)
    if _cluster is not None:
        os.environ.setdefault(process.CLUSTER_NAME_VARIABLE, _cluster)
    warnings.filterwarnings(
        "ignore", message="Retry and timeout are misconfigured", module="django_q.conf"
    )
cluster_settings.make_loadable()


class ProdserverDjangoQ2Config(AppConfig):
    """Attach the ``djangoq2`` backend name and this package's checks."""

    name = "prodserver_djangoq2"
    verbose_name = "Django-Q2 workers for django-prodserver"

    def ready(self) -> None:
        """Register the checks and let django-prodserver resolve backend names."""
        from django.core import checks

        from . import hook
        from .checks import check_deployment, check_settings

        checks.register(check_settings, "prodserver_djangoq2")
        checks.register(check_deployment, "prodserver_djangoq2", deploy=True)
        hook.attach()
