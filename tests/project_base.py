"""Defaults of the throwaway projects that the end-to-end tests run ``manage.py`` in."""

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_prodserver",
    "prodserver_djangoq2",
    "django_q",
    "tests.testapp",
]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "tests_cache",
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django-q": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
