"""A minimal project that runs a Django-Q2 worker through django-prodserver."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_prodserver",
    "prodserver_djangoq2",
    "django_q",
    "demo",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", BASE_DIR / "demo.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "demo_cache"}
}

Q_CLUSTER = {
    "name": "demo",
    "orm": "default",
    "workers": 1,
    "timeout": 30,
    "retry": 60,
    "poll": 0.1,
}

PRODUCTION_PROCESSES = {
    "worker": {"BACKEND": "djangoq2"},
}
