"""Attach the backend-name resolver to django-prodserver's management commands.

A web process that lists the app never runs these commands: the hook waits for the import of
the command module it changes, so that such a process imports nothing of django-prodserver's.
"""

from __future__ import annotations

import importlib
import sys
from abc import ABCMeta
from collections.abc import Callable, Sequence
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING

from .names import BACKEND_MARKER

if TYPE_CHECKING:  # importlib.abc imports importlib.resources: not for every process
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

# Where each django-prodserver major looks up BACKEND with ``import_string``, and the
# function of its command that does the lookup.
RESOLVER_MODULES = {
    2: "django_prodserver.management.commands.prodserver",
    3: "django_prodserver.management.base",
}
RESOLVING_FUNCTIONS = {2: "Command.start_server", 3: "BaseProcessCommand.start_process"}
# django-prodserver 3's `prodserver` command, an alias of `server`.
ALIAS_MODULE = "django_prodserver.management.commands.prodserver"
DOTTED_PATH = "prodserver_djangoq2.DjangoQ2Worker"

_unsupported_version: str | None = None


class _DjangoQ2WorkerClasses(metaclass=ABCMeta):  # noqa: B024 (only for issubclass)
    """Stands for this package's backend and its subclasses, without importing them."""

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        return getattr(subclass, BACKEND_MARKER, False) is True


def attach_when_imported() -> None:
    """Attach now if django-prodserver's command modules are loaded, or as each one loads."""
    major = _major(prodserver_version())
    if major not in RESOLVER_MODULES:
        attach()  # records the unknown version, for the worker's notice
        return
    actions: dict[str, Callable[[ModuleType], None]] = {
        RESOLVER_MODULES[major]: _attach_once_loaded
    }
    if major >= 3:
        actions[ALIAS_MODULE] = lambda module: _let_prodserver_alias_run_this_worker()
    for name in [name for name in actions if name in sys.modules]:
        actions.pop(name)(sys.modules[name])
    if actions and not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(actions))


def attach() -> bool:
    """Let django-prodserver's commands resolve bare backend names; return whether it took."""
    global _unsupported_version
    found_version = prodserver_version()
    module = resolver_module(found_version)
    if module is None:
        _unsupported_version = found_version
        return False
    _attach_resolver(module)
    if module.__name__ == RESOLVER_MODULES[3]:
        _let_prodserver_alias_run_this_worker()
    return True


def prodserver_version() -> str:
    """Return the installed django-prodserver's version (2.x and 3.x carry ``__version__``)."""
    import django_prodserver

    found = getattr(django_prodserver, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import version

    return version("django-prodserver")


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
    major = _major(prodserver_version)
    path = RESOLVER_MODULES.get(major)
    if path is None:
        return None
    try:
        module = importlib.import_module(path)
    except ImportError:  # a release of a known major that moved its commands
        return None
    return module if _resolves_through(module, major) else None


def _resolves_through(module: ModuleType, major: int) -> bool:
    """Whether the command's function looks ``import_string`` up in ``module``'s globals."""
    owner, _, function_name = RESOLVING_FUNCTIONS[major].partition(".")
    function = getattr(getattr(module, owner, None), function_name, None)
    if not isinstance(function, FunctionType) or "import_string" not in function.__code__.co_names:
        return False
    return function.__globals__ is vars(module)


def _attach_once_loaded(module: ModuleType) -> None:
    global _unsupported_version
    found_version = prodserver_version()
    if _resolves_through(module, _major(found_version)):
        _attach_resolver(module)
    else:  # a release of a known major whose command changed
        _unsupported_version = found_version


def _let_prodserver_alias_run_this_worker() -> None:
    # django-prodserver 3 made `prodserver` an alias of `server`, which refuses worker
    # backends; `manage.py prodserver worker` is this package's documented command and keeps
    # working for its backend only.
    from django_prodserver.backends.base import BaseServerBackend
    from django_prodserver.management.commands.prodserver import Command

    Command.backend_base_class = (BaseServerBackend, _DjangoQ2WorkerClasses)  # type: ignore[assignment]


def _major(version: str) -> int:
    major = version.split(".")[0]
    return int(major) if major.isdigit() else -1


def _attach_resolver(module: ModuleType) -> None:
    from .discovery import resolve_backend

    namespace = vars(module)
    if not getattr(namespace.get("import_string"), "resolves_backend_names", False):
        namespace["import_string"] = resolve_backend


class _AfterImport:
    """Runs an action on each of some modules right after the module has been executed."""

    def __init__(self, actions: dict[str, Callable[[ModuleType], None]]) -> None:
        self.actions = actions

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.actions:
            return None
        action = self.actions.pop(fullname)
        if not self.actions:
            sys.meta_path.remove(self)
        spec = _spec_from_other_finders(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRun(spec.loader, action)  # type: ignore[assignment]
        return spec


def _spec_from_other_finders(
    fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and not isinstance(finder, _AfterImport):
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec  # type: ignore[no-any-return]
    return None


class _ThenRun:
    """A module's own loader, followed by an action once the module has been executed."""

    def __init__(self, loader: Loader, action: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.action = action

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.action(module)

    def __getattr__(self, name: str) -> object:  # get_source, get_code...: the loader's own
        return getattr(self.loader, name)
