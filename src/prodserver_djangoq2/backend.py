"""The django-prodserver backend that runs a Django-Q2 cluster."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core.management import CommandError

from . import arguments, checks, named_cluster, preflight
from .runner import ClusterRunner

if TYPE_CHECKING:
    from django_prodserver.backends.base import BaseServerBackend as ProcessBackend
else:
    from django_prodserver.backends import base

    # django-prodserver 3 tells worker backends apart; 2 has one base class for every process.
    ProcessBackend = getattr(base, "BaseWorkerBackend", base.BaseServerBackend)

# Set on the command line the worker re-executes itself with, to switch settings only once.
REEXEC_MARKER = "PRODSERVER_DJANGOQ2_SETTINGS_SWITCHED"


class DjangoQ2Worker(ProcessBackend):
    """Start a Django-Q2 cluster for one ``PRODUCTION_PROCESSES`` entry.

    ``ARGS`` holds ``qcluster``'s options; ``STOP_TIMEOUT`` (seconds, default 30) bounds
    how long a stop waits for tasks in progress.
    """

    def __init__(self, **process_config: Any) -> None:
        require_installed()
        self.process_name = find_process_name(process_config)
        self.config = process_config
        where = f"PRODUCTION_PROCESSES['{self.process_name}']['ARGS']"
        parser = arguments.qcluster_parser()
        self.argv = arguments.to_argv(process_config.get("ARGS", {}), where, parser)
        self.options = arguments.parse(self.argv, where, parser)
        self.cluster_name = named_cluster.requested_name(
            arguments.written_name(process_config.get("ARGS"), self.options["cluster_name"]), where
        )
        self.stop_timeout = checks.stop_timeout(process_config, self.process_name)

    def prep_server_args(self) -> list[str]:
        """Return the ``qcluster`` command line that ``ARGS`` describes."""
        return list(self.argv)

    def start_server(self, *args: str) -> None:
        """Run the cluster in this process until a stop signal; fail if it dies."""
        try:
            self._start()
        except CommandError as error:
            if self.options["traceback"]:
                # django-prodserver prints a CommandError as one line; ARGS asked for more.
                raise RuntimeError(str(error)) from error
            raise

    def _start(self) -> None:
        runner = ClusterRunner(self.stop_timeout)
        runner.run(prepare=self._prepare, run_once=self.options["run_once"])

    def _prepare(self) -> None:
        if self.options["pythonpath"]:
            sys.path.insert(0, self.options["pythonpath"])
        if self.options["settings"]:
            switch_settings(self.options["settings"])
        named_cluster.select(self.cluster_name)
        if not self.options["skip_checks"]:
            preflight.run(self.process_name, self.config)


def require_installed() -> None:
    """Refuse to start without django-q2 and both apps in ``INSTALLED_APPS``."""
    if importlib.util.find_spec("django_q") is None:
        raise CommandError(
            "django-q2 is not installed; run: pip install prodserver-djangoq2 (or django-q2)."
        )
    for app in ("django_q", "prodserver_djangoq2"):
        if not apps.is_installed(app):
            raise CommandError(f"Add '{app}' to INSTALLED_APPS to run a Django-Q2 worker.")


def find_process_name(process_config: Mapping[str, Any]) -> str:
    """Return the ``PRODUCTION_PROCESSES`` key whose entry is ``process_config``."""
    processes = getattr(settings, "PRODUCTION_PROCESSES", {})
    for name, config in processes.items():
        if config == process_config:
            return str(name)
    return "?"


def switch_settings(module: str) -> None:
    """Run this command again under the settings module ``module``."""
    if module == os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    if os.environ.get(REEXEC_MARKER):
        raise CommandError(
            f"ARGS 'settings' asks for '{module}' but the worker already switched settings "
            "once; give the same 'settings' in both settings modules."
        )
    argv = without_settings_option(sys.orig_argv)
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": module, REEXEC_MARKER: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment)


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
