"""Attach the backend-name resolver to django-prodserver's management commands."""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import version
from types import ModuleType

from .discovery import resolve_backend

# Where each django-prodserver major looks up BACKEND with ``import_string``.
RESOLVER_MODULES = {
    2: "django_prodserver.management.commands.prodserver",
    3: "django_prodserver.management.base",
}
DOTTED_PATH = "prodserver_djangoq2.DjangoQ2Worker"


class UnsupportedProdserverWarning(RuntimeWarning):
    """django-prodserver is a version whose commands this hook does not know."""


def attach() -> bool:
    """Let django-prodserver's commands resolve bare backend names; return whether it took."""
    prodserver_version = version("django-prodserver")
    module = resolver_module(prodserver_version)
    if module is None:
        warnings.warn(
            f"prodserver_djangoq2: django-prodserver {prodserver_version} is not supported "
            f"by the backend-name hook; write 'BACKEND': '{DOTTED_PATH}' instead of 'djangoq2'.",
            UnsupportedProdserverWarning,
            stacklevel=2,
        )
        return False
    namespace = vars(module)
    if not getattr(namespace["import_string"], "resolves_backend_names", False):
        namespace["import_string"] = resolve_backend
    if module.__name__ == RESOLVER_MODULES[3]:
        _let_prodserver_alias_run_workers()
    return True


def resolver_module(prodserver_version: str) -> ModuleType | None:
    """Return the module whose ``import_string`` resolves BACKEND in that version, if known."""
    major = prodserver_version.split(".")[0]
    path = RESOLVER_MODULES.get(int(major)) if major.isdigit() else None
    if path is None:
        return None
    try:
        module = importlib.import_module(path)
    except ImportError:  # a release of a known major that moved its commands
        return None
    return module if "import_string" in vars(module) else None


def _let_prodserver_alias_run_workers() -> None:
    # django-prodserver 3 made `prodserver` an alias of `server`, which refuses worker
    # backends; `manage.py prodserver worker` is the documented command and keeps working.
    from django_prodserver.backends.base import BaseProcessBackend
    from django_prodserver.management.commands.prodserver import Command

    Command.backend_base_class = BaseProcessBackend  # type: ignore[assignment]
