"""The django-prodserver backend that runs a Django-Q2 cluster."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.management import CommandError

from . import hook, names, preflight, process
from .compatibility import django_q2_problem
from .errors import ConfigurationError, refusal
from .reexec import reexec
from .runner import DEFERRED_SIGNALS, ClusterRunner, children_to_hand_over

if TYPE_CHECKING:
    from django_prodserver.backends.base import BaseServerBackend as ProcessBackend
else:
    from django_prodserver.backends import base

    # django-prodserver 3 tells worker backends apart; 2 has one base class for every process.
    ProcessBackend = getattr(base, "BaseWorkerBackend", base.BaseServerBackend)

# Set in the environment of a worker that re-executed itself for ARGS 'settings'.
REEXEC_MARKER = "PRODSERVER_DJANGOQ2_SETTINGS_SWITCHED"


class DjangoQ2Worker(ProcessBackend):
    """Start a Django-Q2 cluster for one ``PRODUCTION_PROCESSES`` entry.

    ``ARGS`` holds ``qcluster``'s options; ``STOP_TIMEOUT`` (seconds, default: the cluster's
    ``timeout`` plus 5) bounds how long a stop waits for tasks in progress.
    """

    runs_django_q2_cluster = True  # names.BACKEND_MARKER, for subclasses too

    def __init__(self, **process_config: Any) -> None:
        require_installed()
        name = process.find_process_name(process_config)
        try:
            self.entry = process.read(name, process_config)
        except ConfigurationError as error:
            raise refusal(str(error)) from None

    def prep_server_args(self) -> list[str]:
        """Return the ``qcluster`` command line that ``ARGS`` describes."""
        return list(self.entry.argv)

    def start_server(self, *args: str) -> None:
        """Run the cluster in this process until a stop signal; fail if it dies."""
        try:
            self._start()
        except CommandError as error:
            if self.entry.traceback:
                # django-prodserver prints a CommandError as one line; ARGS asked for more.
                raise RuntimeError(str(error)) from error
            raise

    def _start(self) -> None:
        entry = self.entry
        unsupported = hook.unsupported_version_warning()
        if unsupported:
            sys.stderr.write(unsupported + "\n")
        incompatible = django_q2_problem()
        if incompatible:
            raise refusal(incompatible)
        if entry.pythonpath:
            sys.path.insert(0, entry.pythonpath)
        try:
            switch_settings(entry)
            switch_cluster(entry)
        except ConfigurationError as error:
            raise refusal(str(error)) from None
        # The reloader and the heartbeat are imported only by the processes that ask for them.
        if entry.reload:
            from . import autoreload

            if not autoreload.is_watched_child():
                sys.exit(autoreload.run_with_reloader())
        from django_q.conf import Conf

        heartbeat = None
        if entry.health_file is not None:
            from .health import Heartbeat

            heartbeat = Heartbeat(
                entry.health_file,
                entry.health_interval,
                entry.stall_after_for(Conf.TIMEOUT),
                entry.name,
                str(Conf.CLUSTER_NAME),
            )
        runner = ClusterRunner(entry.stop_timeout_for(Conf.TIMEOUT), heartbeat)
        runner.run(prepare=self._prepare, run_once=entry.run_once)

    def _prepare(self) -> None:
        if not self.entry.skip_checks:
            preflight.run(self.entry)


def require_installed() -> None:
    """Refuse to start without django-q2 and both apps in ``INSTALLED_APPS``."""
    if importlib.util.find_spec("django_q") is None:
        raise refusal(
            "django-q2 is not installed; run: pip install prodserver-djangoq2 (or django-q2)."
        )
    for app in ("django_q", "prodserver_djangoq2"):
        if not apps.is_installed(app):
            raise refusal(f"Add '{app}' to INSTALLED_APPS to run a Django-Q2 worker.")


def switch_settings(entry: process.ProcessEntry) -> None:
    """Run this command again under ARGS 'settings', if it names another module."""
    module = entry.settings_module
    if not module or module == os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    if os.environ.get(REEXEC_MARKER):
        raise refusal(
            f"ARGS 'settings' asks for '{module}' but the worker already switched settings "
            "once; give the same 'settings' in both settings modules."
        )
    environment = {"DJANGO_SETTINGS_MODULE": module, REEXEC_MARKER: "1"}
    if entry.pythonpath:  # the new interpreter imports the settings before ARGS is read
        paths = [entry.pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])]
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    _reexec_deferring_signals(environment, without_settings_option(sys.orig_argv))


def switch_cluster(entry: process.ProcessEntry) -> None:
    """Run this command again with Q_CLUSTER_NAME set, if it serves another cluster."""
    from django_q.conf import Conf

    cluster = entry.cluster_to_serve()
    # Django-Q2 read Q_CLUSTER_NAME when Django loaded it; only a new interpreter reads it
    # again, and with it every value that Django-Q2's modules copied at import.
    in_environment = os.environ.get(names.CLUSTER_NAME_VARIABLE)
    if cluster is not None and cluster not in (in_environment, Conf.CLUSTER_NAME):
        _reexec_deferring_signals({names.CLUSTER_NAME_VARIABLE: cluster}, sys.orig_argv)


def _reexec_deferring_signals(environment: dict[str, str], argv: list[str]) -> None:
    # A signal that arrives while the command starts again waits for the runner's handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
    # Children this program already has (e.g. multiprocessing's resource tracker under
    # forkserver) are reaped by the new one.
    reexec({**environment, **children_to_hand_over()}, argv)


def without_settings_option(argv: list[str]) -> list[str]:
    """Return ``argv`` without any ``--settings`` option and its value."""
    kept: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--settings":
            skip_next = True
        elif not arg.startswith("--settings="):
            kept.append(arg)
    return kept
