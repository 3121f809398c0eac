"""Throwaway Django projects for end-to-end tests: settings, ``manage.py`` and its processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
PRODSERVER_MAJOR = int(version("django-prodserver").split(".")[0])
DJANGO_Q2_VERSION = tuple(int(part) for part in version("django-q2").split(".")[:2])
# The command that runs a worker backend on the installed django-prodserver without the hook.
WORKER_COMMAND = "worker" if PRODSERVER_MAJOR >= 3 else "prodserver"
MANAGE_PY = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""
ORM_Q_CLUSTER = {
    "name": "tests",
    "orm": "default",
    "workers": 2,
    "timeout": 30,
    "retry": 60,
    "poll": 0.1,
    "guard_cycle": 0.2,
    # Keep every result: the default keeps the last 250, and the tests count them all.
    "save_limit": 0,
}


def q_cluster_for(**broker: Any) -> dict[str, Any]:
    """Return the tests' ``Q_CLUSTER`` with the broker given by ``broker``'s keys."""
    settings = {key: value for key, value in ORM_Q_CLUSTER.items() if key != "orm"}
    return {**settings, **broker}


def sqlite_databases(root: Path) -> dict[str, Any]:
    return {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(root / "db.sqlite3"),
            "OPTIONS": {"timeout": 30},
        }
    }


def start_children_with_default_hangup() -> None:
    """Let the processes that the tests start get SIGHUP's default action, as under systemd.

    A run under ``nohup`` ignores SIGHUP, and an ignored signal stays ignored through fork and
    exec: the workers the tests start would then never reload. A handler that does nothing
    keeps this process deaf to hangups, and a handler does not survive exec.
    """
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _ignore_hangup)


def _ignore_hangup(signum: int, frame: object) -> None:
    pass


def read_sqlite(path: Path, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """Return the rows of ``sql`` run on the SQLite file ``path`` on a connection of its own.

    Read-only and in autocommit mode: it never creates a database file where there is none,
    and never holds a lock that would slow down the cluster writing to the file.
    """
    uri = f"{path.as_uri()}?mode=ro"
    with contextlib.closing(
        sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    ) as connection:
        return connection.execute(sql, parameters).fetchall()


@dataclass
class Project:
    """A Django project in ``root`` whose settings are ``project_base`` plus ``settings``."""

    root: Path
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    extra_settings_code: str = ""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "manage.py").write_text(MANAGE_PY)
        self.settings.setdefault("DATABASES", sqlite_databases(self.root))
        self.settings.setdefault("Q_CLUSTER", dict(ORM_Q_CLUSTER))
        self.settings.setdefault("PRODUCTION_PROCESSES", {"worker": {"BACKEND": "djangoq2"}})
        self.write()

    def write(self) -> None:
        lines = ["from tests.project_base import *  # noqa: F403", ""]
        lines += [f"{name} = {value!r}" for name, value in self.settings.items()]
        lines.append(self.extra_settings_code)
        (self.root / "project_settings.py").write_text("\n".join(lines) + "\n")

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DJANGO_SETTINGS_MODULE", "Q_CLUSTER_NAME")
        }
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.root), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        # A deprecation that this package's code runs into ends the process with a traceback.
        # A warning filter names a module exactly, so each module of the package is listed.
        source = REPO / "src"
        modules = sorted(
            ".".join(path.relative_to(source).with_suffix("").parts).removesuffix(".__init__")
            for path in (source / "prodserver_djangoq2").rglob("*.py")
        )
        env["PYTHONWARNINGS"] = ",".join(
            [
                *(
                    f"error::{category}:{module}"
                    for module in modules
                    for category in ("DeprecationWarning", "PendingDeprecationWarning")
                ),
                *filter(None, [os.environ.get("PYTHONWARNINGS")]),
            ]
        )
        for overrides in (self.env, extra or {}):
            for key, value in overrides.items():
                # Extra import paths go in front of the project's, which stay reachable.
                env[key] = f"{value}{os.pathsep}{env[key]}" if key == "PYTHONPATH" else value
        return env

    def manage(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py`` to completion and return its result."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        """Start ``manage.py`` in the background (its output goes to a log file)."""
        log = self.root / f"{'-'.join(args).replace('/', '_')}-{time.monotonic_ns()}.log"
        handle = log.open("w")
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.environment(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        handle.close()
        return Worker(process, log)

    def migrate(self) -> None:
        result = self.manage("migrate", "--verbosity=0")
        assert result.returncode == 0, result.stderr
        result = self.manage("createcachetable")
        assert result.returncode == 0, result.stderr

    def enqueue(
        self, func: str, *args: float, count: int = 1, cluster: str | None = None
    ) -> list[str]:
        """Enqueue ``count`` calls of ``tests.testapp.tasks.<func>``; return their ids."""
        options = [f"--count={count}"] + ([f"--cluster={cluster}"] if cluster else [])
        result = self.manage("enqueue", func, *map(str, args), *options)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    def report(self) -> dict[str, Any]:
        """Return the stored tasks and the number still queued in the ORM broker."""
        result = self.manage("task_report")
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def wait_for_results(
        self, ids: list[str], timeout: float = 60, worker: Worker | None = None
    ) -> dict[str, Any]:
        """Wait until every task in ``ids`` has a stored result; return them by id."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self.stored_on_sqlite(ids)
            if stored in (None, len(ids)):
                done = {task["id"]: task for task in self.report()["tasks"] if task["id"] in ids}
                if len(done) == len(ids):
                    return done
                stored = len(done)
            if worker is not None and worker.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(ids) - stored} of {len(ids)} tasks not done in {timeout}s"
                    + (f":\n{worker.output()}" if worker else "")
                )
            time.sleep(0.1)

    def stored_on_sqlite(self, ids: list[str]) -> int | None:
        """Return how many of ``ids`` have a stored result, or ``None`` off SQLite.

        Each ``task_report`` is a Django process (about half a second of CPU); counting rows in
        the SQLite file costs microseconds, so a wait asks for the report only when it is due.
        """
        database = self.settings["DATABASES"]["default"]
        if database["ENGINE"] != "django.db.backends.sqlite3":
            return None
        placeholders = ", ".join("?" * len(ids))
        sql = f"SELECT COUNT(*) FROM django_q_task WHERE id IN ({placeholders})"
        try:
            ((count,),) = read_sqlite(Path(database["NAME"]), sql, ids)
        except sqlite3.Error:
            return None
        return int(count)


@dataclass
class Worker:
    """A background ``manage.py`` process and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(f"exited before printing {text!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def stop(
        self, signum: int = signal.SIGTERM, timeout: float = 60, whole_group: bool = False
    ) -> int:
        """Send ``signum`` to the main process (or to every process) and wait for the exit."""
        targets = [self.pid] + ([p.pid for p in self.descendants()] if whole_group else [])
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"did not exit within {timeout}s of {signum!r}:\n{self.output()}"
            ) from None

    def kill(self) -> None:
        """Kill the whole session (cleanup after a failed test)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()


def is_resource_tracker(process: psutil.Process) -> bool:
    """Tell multiprocessing's resource tracker, a child of the main process but not the cluster's.

    The main process has one under the forkserver start method, Python 3.14's default. It ends by
    itself once every process that holds its pipe has exited.
    """
    try:
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False


def children_but_trackers(pid: int) -> list[psutil.Process]:
    """Return the children of ``pid``, but for multiprocessing's resource tracker."""
    return [child for child in psutil.Process(pid).children() if not is_resource_tracker(child)]
