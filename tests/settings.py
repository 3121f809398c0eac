"""Settings for the in-process tests (pytest-django)."""

from tests.project_base import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
Q_CLUSTER = {"name": "tests", "orm": "default", "workers": 1, "timeout": 30, "retry": 60}
PRODUCTION_PROCESSES = {"worker": {"BACKEND": "djangoq2"}}
