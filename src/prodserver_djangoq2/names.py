"""Names that every process reads cheaply: no imports, so that a web process pays nothing."""

from __future__ import annotations

# Django-Q2 reads the selected cluster's name from this environment variable.
CLUSTER_NAME_VARIABLE = "Q_CLUSTER_NAME"
# The backend class sets this attribute; a subclass in a project inherits it.
BACKEND_MARKER = "runs_django_q2_cluster"
# django-prodserver's commands that start a worker backend.
WORKER_COMMANDS = ("worker", "prodserver")
BACKEND_NAMES = (
    "djangoq2",
    "prodserver_djangoq2.DjangoQ2Worker",
    "prodserver_djangoq2.backend.DjangoQ2Worker",
)
