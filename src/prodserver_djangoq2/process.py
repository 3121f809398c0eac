"""A ``PRODUCTION_PROCESSES`` entry that runs a Django-Q2 worker, read once into one value.

The system checks, the worker's start-up preflight and the backend all use ``read`` (or
``problems``, which lists every error instead of raising the first).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings

from . import arguments
from .errors import ConfigurationError
from .names import BACKEND_MARKER, BACKEND_NAMES, CLUSTER_NAME_VARIABLE, WORKER_COMMANDS

DEFAULT_PING_TIMEOUT = 5.0
DEFAULT_HEALTH_INTERVAL = 5.0
# A cluster with tasks waiting and idle workers is stalled after the larger of its 'timeout'
# and this many seconds without starting a task.
DEFAULT_STALL_AFTER = 60.0
# Without a cluster 'timeout', tasks may run forever: a stop waits this long for them.
DEFAULT_STOP_TIMEOUT = 30.0
# Beyond the cluster's 'timeout': time for the sentinel to end its workers and save results.
STOP_MARGIN = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessEntry:
    """What one worker process was asked to do."""

    name: str
    argv: tuple[str, ...]
    cluster_name: str | None
    settings_module: str | None
    pythonpath: str | None
    traceback: bool
    run_once: bool
    skip_checks: bool
    stop_timeout: float | None
    ping_timeout: float
    silenced_checks: frozenset[str]
    reload: bool = False
    health_file: Path | None = None
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    stall_after: float | None = None

    @property
    def where(self) -> str:
        """How messages name this entry's ``ARGS``."""
        return f"PRODUCTION_PROCESSES['{self.name}']['ARGS']"

    def stop_timeout_for(self, cluster_timeout: object) -> float:
        """Return how long a stop waits for tasks of a cluster whose 'timeout' is given."""
        if self.stop_timeout is not None:
            return self.stop_timeout
        if is_positive_number(cluster_timeout):
            return float(cluster_timeout) + STOP_MARGIN  # type: ignore[arg-type]
        return DEFAULT_STOP_TIMEOUT

    def stall_after_for(self, cluster_timeout: object) -> float:
        """Return after how long without a task started a cluster with work counts as stalled."""
        if self.stall_after is not None:
            return self.stall_after
        timeout = float(cluster_timeout) if is_positive_number(cluster_timeout) else 0.0  # type: ignore[arg-type]
        return max(timeout, DEFAULT_STALL_AFTER)

    def cluster_to_serve(self) -> str | None:
        """Return the cluster named by ``ARGS`` or the environment; refuse a conflict."""
        from_environment = os.environ.get(CLUSTER_NAME_VARIABLE) or None
        if self.cluster_name is None:
            return from_environment
        if from_environment and from_environment != self.cluster_name:
            raise ConfigurationError(
                "prodserver_djangoq2.E018",
                f"{self.where} names cluster '{self.cluster_name}' but the environment sets "
                f"{CLUSTER_NAME_VARIABLE}='{from_environment}'.",
                "remove one of them.",
            )
        return self.cluster_name


def read(name: str, config: Mapping[str, Any]) -> ProcessEntry:
    """Return the entry ``config`` of process ``name``; raise its first error."""
    entry, errors = _parse(name, config)
    if errors:
        raise errors[0]
    assert entry is not None
    return entry


def problems(name: str, config: Mapping[str, Any]) -> list[ConfigurationError]:
    """Return every error in the entry ``config`` of process ``name``."""
    return _parse(name, config)[1]


def uses_this_backend(backend: object) -> bool:
    """Whether a ``BACKEND`` value names this package's worker backend (or a subclass)."""
    if not isinstance(backend, str):
        return False
    if backend in BACKEND_NAMES:
        return True
    from .discovery import resolve_backend

    try:
        resolved = resolve_backend(backend)
    except Exception:
        # A backend that cannot be imported is django-prodserver's to report, not ours.
        return False
    return getattr(resolved, BACKEND_MARKER, False) is True


def find_process_name(config: Mapping[str, Any]) -> str:
    """Return the ``PRODUCTION_PROCESSES`` key whose entry django-prodserver started."""
    processes = getattr(settings, "PRODUCTION_PROCESSES", {})
    names = [str(name) for name, entry in processes.items() if entry == config]
    if len(names) > 1:
        # Identical entries (a scale-out layout): the command line names the one started;
        # without a name, django-prodserver starts the first entry.
        named = [arg for arg in sys.argv[2:] if arg in names]
        return named[0] if named else names[0]
    return names[0] if names else "?"


def is_positive_number(value: object) -> bool:
    """Whether ``value`` is an int or float above zero (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _parse(
    name: str, config: Mapping[str, Any]
) -> tuple[ProcessEntry | None, list[ConfigurationError]]:
    errors: list[ConfigurationError] = []

    def attempt(read_value: Callable[[], T], fallback: T) -> T:
        try:
            return read_value()
        except ConfigurationError as error:
            errors.append(error)
            return fallback

    where = f"PRODUCTION_PROCESSES['{name}']['ARGS']"
    nothing: tuple[list[str], dict[str, Any]] = ([], {})
    argv, options = attempt(lambda: _arguments(config.get("ARGS", {}), where), nothing)
    cluster_name = attempt(lambda: _cluster_name(config.get("ARGS"), options, where), None)
    stop_timeout = attempt(lambda: _stop_timeout(config, name), None)
    ping_timeout = attempt(
        lambda: _seconds(
            config,
            name,
            "PING_TIMEOUT",
            DEFAULT_PING_TIMEOUT,
            "prodserver_djangoq2.E020",
            "how many seconds the broker may take to answer when the worker starts, e.g. 5",
        ),
        DEFAULT_PING_TIMEOUT,
    )
    silenced = attempt(lambda: _silenced_checks(config, name), frozenset[str]())
    reload = attempt(lambda: _reload(config, name), False)
    health_file = attempt(lambda: _health_file(config, name), None)
    health_interval = attempt(
        lambda: _seconds(
            config,
            name,
            "HEALTH_INTERVAL",
            DEFAULT_HEALTH_INTERVAL,
            "prodserver_djangoq2.E028",
            "how often the heartbeat file is written, e.g. 5",
        ),
        DEFAULT_HEALTH_INTERVAL,
    )
    stall_after = attempt(
        lambda: (
            _seconds(
                config,
                name,
                "STALL_AFTER",
                DEFAULT_STALL_AFTER,
                "prodserver_djangoq2.E029",
                "after how many seconds without a task started a busy queue counts as stalled",
            )
            if "STALL_AFTER" in config
            else None
        ),
        None,
    )
    if errors:
        return None, errors
    entry = ProcessEntry(
        name=name,
        argv=tuple(argv),
        cluster_name=cluster_name,
        settings_module=options["settings"],
        pythonpath=options["pythonpath"],
        traceback=bool(options["traceback"]),
        run_once=bool(options["run_once"]),
        skip_checks=bool(options["skip_checks"]),
        stop_timeout=stop_timeout,
        ping_timeout=ping_timeout,
        silenced_checks=silenced,
        reload=reload,
        health_file=health_file,
        health_interval=health_interval,
        stall_after=stall_after,
    )
    return entry, []


def _arguments(args: Any, where: str) -> tuple[list[str], dict[str, Any]]:
    parser = arguments.qcluster_parser()
    argv = arguments.to_argv(args, where, parser)
    return argv, arguments.parse(argv, where, parser)


def _cluster_name(args: Any, options: Mapping[str, Any], where: str) -> str | None:
    if not options:  # ARGS itself is wrong: reported once, above
        return None
    written = arguments.written_name(args, options["cluster_name"])
    if written is None:
        return None
    if not isinstance(written, str) or not written.strip():
        raise ConfigurationError(
            "prodserver_djangoq2.E017",
            f"{where} 'name' must be a non-empty string, not {written!r}.",
            "Name the Django-Q2 cluster (queue) this process serves.",
        )
    return written


def _stop_timeout(config: Mapping[str, Any], name: str) -> float | None:
    if "STOP_TIMEOUT" not in config:
        return None
    return _seconds(
        config,
        name,
        "STOP_TIMEOUT",
        DEFAULT_STOP_TIMEOUT,
        "prodserver_djangoq2.E019",
        "how long a stop may wait for tasks in progress, e.g. 30",
    )


def _seconds(
    config: Mapping[str, Any], name: str, key: str, default: float, check_id: str, meaning: str
) -> float:
    value = config.get(key, default)
    if not is_positive_number(value):
        raise ConfigurationError(
            check_id,
            f"PRODUCTION_PROCESSES['{name}']['{key}'] must be a positive number of seconds, "
            f"not {value!r}.",
            f"Give {meaning}.",
        )
    return float(value)


def _silenced_checks(config: Mapping[str, Any], name: str) -> frozenset[str]:
    value = config.get("SILENCED_CHECKS", ())
    if (
        isinstance(value, str)
        or not isinstance(value, Collection)
        or not all(isinstance(item, str) for item in value)
    ):
        raise ConfigurationError(
            "prodserver_djangoq2.E021",
            f"PRODUCTION_PROCESSES['{name}']['SILENCED_CHECKS'] must be a list of check ids, "
            f"not {value!r}.",
            "e.g. ['prodserver_djangoq2.W002'].",
        )
    return frozenset(value)


def started_entry(argv: list[str]) -> Mapping[str, Any] | None:
    """Return the entry that the worker command in ``argv`` starts, if it names this backend.

    Read while Django imports the apps, before Django-Q2 loads its settings; ``None`` for any
    other command, and where only the backend itself can tell (another ``BACKEND`` path).
    """
    if len(argv) < 2 or argv[1] not in WORKER_COMMANDS:
        return None
    processes = getattr(settings, "PRODUCTION_PROCESSES", None)
    if not isinstance(processes, Mapping) or not processes:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("process_name", nargs="?")
    for option in ("--settings", "--pythonpath", "--verbosity", "-v"):
        parser.add_argument(option)
    known, _ = parser.parse_known_args(argv[2:])
    config = processes.get(known.process_name or next(iter(processes)))
    if not isinstance(config, Mapping) or config.get("BACKEND") not in BACKEND_NAMES:
        return None
    return config


def cluster_named_in(config: Mapping[str, Any]) -> str | None:
    """Return the cluster name that an entry's ``ARGS`` gives, if it is a plain one."""
    args = config.get("ARGS", {})
    if isinstance(args, str):
        name_parser = argparse.ArgumentParser(add_help=False)
        name_parser.add_argument("-n", "--name", "--cluster-name")
        args = {"name": name_parser.parse_known_args(shlex.split(args))[0].name}
    name = arguments.written_name(args, None) if isinstance(args, Mapping) else None
    return name if isinstance(name, str) and name.strip() else None


def _reload(config: Mapping[str, Any], name: str) -> bool:
    value = config.get("RELOAD", False)
    if not isinstance(value, bool):
        raise ConfigurationError(
            "prodserver_djangoq2.E026",
            f"PRODUCTION_PROCESSES['{name}']['RELOAD'] must be True or False, not {value!r}.",
            "Set it to True only for development: it restarts the worker on code changes.",
        )
    return value


def _health_file(config: Mapping[str, Any], name: str) -> Path | None:
    value = config.get("HEALTH_FILE")
    if value is None:
        return None
    path = Path(value) if isinstance(value, str | os.PathLike) and str(value) else None
    if path is None or not path.parent.is_dir():
        raise ConfigurationError(
            "prodserver_djangoq2.E027",
            f"PRODUCTION_PROCESSES['{name}']['HEALTH_FILE'] must be a file path in an existing "
            f"directory, not {value!r}.",
            "e.g. '/tmp/worker.health'; each process needs a file of its own.",
        )
    return path
