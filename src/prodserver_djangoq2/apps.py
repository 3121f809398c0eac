"""Django app configuration: binds the system checks and the backend-name hook."""

from __future__ import annotations

import os
import sys

from django.apps import AppConfig

from . import cluster_settings, process

# Runs while Django imports the apps, before django_q evaluates Q_CLUSTER when this app is
# listed first. A worker for a named cluster selects it here, the way Django-Q2 documents
# (Q_CLUSTER_NAME), so that it need not start over once Django is set up; values that would
# crash Django-Q2 are kept from it and reported by the checks instead.
_cluster = process.cluster_named_on_command_line(sys.argv)
if _cluster is not None:
    os.environ.setdefault(process.CLUSTER_NAME_VARIABLE, _cluster)
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
