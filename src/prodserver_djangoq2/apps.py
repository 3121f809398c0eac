"""Django app configuration: binds the system checks and the backend-name hook."""

from __future__ import annotations

import warnings

from django.apps import AppConfig

from . import named_cluster

# Runs while Django imports the apps, before django_q loads its configuration when this app
# is listed first: Q_CLUSTER_NAME set in the environment must not crash Django-Q2, and the
# checks E009/W002 report retry and timeout in one line instead of Django-Q2's warning.
named_cluster.tolerate_missing_alt_clusters()
warnings.filterwarnings("ignore", message="Retry and timeout are misconfigured")


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
