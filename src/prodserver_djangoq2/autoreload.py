"""Development only (``"RELOAD": True``): restart the worker when the project's code changes.

This process becomes a watcher: it runs the worker as a child process (the same command, with
Django's ``RUN_MAIN`` set, as ``runserver`` does) and watches files with Django's own
autoreloader, which uses Watchman where it is installed. A change stops the child as a stop
signal would, letting tasks in progress finish, and starts a new one. A child that fails, for
example on a syntax error, is started again after the next change.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.apps import apps
from django.utils import autoreload

logger = logging.getLogger("django-q")

CHILD_VARIABLE = autoreload.DJANGO_AUTORELOAD_ENV
POLL_INTERVAL = 0.2


def is_watched_child() -> bool:
    """Whether this process is the worker that a watcher started."""
    return os.environ.get(CHILD_VARIABLE) == "true"


def run_with_reloader() -> int:
    """Run the worker in a child process until a stop signal; return the exit status."""
    watcher = Watcher()
    return watcher.run()


class Watcher:
    """Start the worker, restart it on each change, stop it on a stop signal."""

    def __init__(self) -> None:
        self.changed = threading.Event()
        self.signals: list[int] = []
        self.child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._watch_files()
        while True:
            self.changed.clear()
            status = self._run_child()
            if self.signals or (status == 0 and not self.changed.is_set()):
                return status
            if not self.changed.is_set():
                logger.error(
                    "The worker exited with status %s; it starts again when a file changes.",
                    status,
                )
                while not self.changed.wait(POLL_INTERVAL):
                    if self.signals:
                        return 0
            logger.info("Code changed: restarting the worker.")

    def _run_child(self) -> int:
        # A process group of its own: a Ctrl-C reaches only this watcher, which passes it on.
        self.child = subprocess.Popen(
            autoreload.get_child_arguments(),
            env={**os.environ, CHILD_VARIABLE: "true"},
            process_group=0,
        )
        stopping = False
        while True:
            try:
                return self.child.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                if self.changed.is_set() and not stopping:
                    stopping = True
                    self.child.send_signal(signal.SIGTERM)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _watch_files(self) -> None:
        reloader = autoreload.get_reloader()
        # Task modules are imported by the cluster's processes, not by this one: watch the
        # Python files of the project's own apps, wherever the worker imports them from.
        for directory, pattern in project_directories():
            reloader.watch_dir(directory, pattern)

        def on_change(sender: Any, file_path: Path, **kwargs: Any) -> bool:
            self.changed.set()
            return True  # handled: Django's reloader must not exit this process

        autoreload.file_changed.connect(on_change, weak=False)
        watching = threading.Thread(target=reloader.run_loop, name="prodserver-watch", daemon=True)
        watching.start()


def project_directories() -> list[tuple[Path, str]]:
    """Return (directory, glob) for the project's own code: manage.py's folder, its apps."""
    root = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else Path.cwd()
    # Not root/**: a virtualenv inside the project would be scanned on every tick.
    watched = [(root, "*.py")]
    for app_config in apps.get_app_configs():
        path = Path(app_config.path).resolve()
        if not any(part in ("site-packages", "dist-packages") for part in path.parts):
            watched.append((path, "**/*.py"))
    return watched
