"""Attach the backend-name resolver to django-prodserver's management commands."""

from __future__ import annotations

import importlib
from abc import ABCMeta
from importlib.metadata import version
from types import FunctionType, ModuleType

from .discovery import resolve_backend
from .process import BACKEND_MARKER

# Where each django-prodserver major looks up BACKEND with ``import_string``, and the
# function of its command that does the lookup.
RESOLVER_MODULES = {
    2: "django_prodserver.management.commands.prodserver",
    3: "django_prodserver.management.base",
}
RESOLVING_FUNCTIONS = {2: "Command.start_server", 3: "BaseProcessCommand.start_process"}
DOTTED_PATH = "prodserver_djangoq2.DjangoQ2Worker"

_unsupported_version: str | None = None


class _DjangoQ2WorkerClasses(metaclass=ABCMeta):  # noqa: B024 (only for issubclass)
    """Stands for this package's backend and its subclasses, without importing them."""

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        return getattr(subclass, BACKEND_MARKER, False) is True


def attach() -> bool:
    """Let django-prodserver's commands resolve bare backend names; return whether it took."""
    global _unsupported_version
    prodserver_version = version("django-prodserver")
    module = resolver_module(prodserver_version)
    if module is None:
        _unsupported_version = prodserver_version
        return False
    namespace = vars(module)
    if not getattr(namespace["import_string"], "resolves_backend_names", False):
        namespace["import_string"] = resolve_backend
    if module.__name__ == RESOLVER_MODULES[3]:
        _let_prodserver_alias_run_this_worker()
    return True


def unsupported_version_warning() -> str | None:
    """Return the line a worker prints when the hook could not attach, once per start."""
    if _unsupported_version is None:
        return None
    return (
        f"prodserver_djangoq2: django-prodserver {_unsupported_version} is not supported "
        f"by the backend-name hook; write 'BACKEND': '{DOTTED_PATH}' instead of 'djangoq2'."
    )


def resolver_module(prodserver_version: str) -> ModuleType | None:
    """Return the module whose ``import_string`` django-prodserver's command calls, if known."""
    major = prodserver_version.split(".")[0]
    path = RESOLVER_MODULES.get(int(major)) if major.isdigit() else None
    if path is None:
        return None
    try:
        module = importlib.import_module(path)
    except ImportError:  # a release of a known major that moved its commands
        return None
    # The name is looked up in the globals of the command's own function when it runs.
    owner, _, function_name = RESOLVING_FUNCTIONS[int(major)].partition(".")
    function = getattr(getattr(module, owner, None), function_name, None)
    if not isinstance(function, FunctionType) or "import_string" not in function.__code__.co_names:
        return None
    return module if function.__globals__ is vars(module) else None


def _let_prodserver_alias_run_this_worker() -> None:
    # django-prodserver 3 made `prodserver` an alias of `server`, which refuses worker
    # backends; `manage.py prodserver worker` is this package's documented command and keeps
    # working for its backend only.
    from django_prodserver.backends.base import BaseServerBackend
    from django_prodserver.management.commands.prodserver import Command

    Command.backend_base_class = (BaseServerBackend, _DjangoQ2WorkerClasses)  # type: ignore[assignment]
