"""Django app configuration: binds the system checks and the backend-name hook."""

from __future__ import annotations

from django.apps import AppConfig

from . import cluster_settings

# Runs while Django imports the apps, before django_q evaluates Q_CLUSTER when this app is
# listed first: values that would crash Django-Q2 there are reported by the checks instead.
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
