"""Print the seconds from SIGTERM to exit of an idle worker on this interpreter.

    python tools/stop_time.py [SAMPLES]

A project on SQLite with the ORM broker runs ``manage.py worker worker`` (``prodserver worker``
on django-prodserver 2); once its cluster is running and idle, SIGTERM goes to the main process
and the time until that process has exited is taken. ``tools/matrix.py stop-time`` runs this on
each line.
"""

from __future__ import annotations

import platform
import signal
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import WORKER_COMMAND, Project

IDLE = 1.0  # seconds the cluster runs idle before the signal
LINGER = 2.0  # seconds a process of the worker may take to exit after the worker


def _left_behind(root: Path) -> list[str]:
    """Return the processes still running in ``root`` a moment after the worker's exit."""
    # A helper that exits by itself once the worker has gone (multiprocessing's resource
    # tracker reads its pipe's end) is not left behind; give it the moment it needs.
    deadline = time.monotonic() + LINGER
    while True:
        left = []
        for process in psutil.process_iter(["cwd", "cmdline", "status"]):
            if process.info["cwd"] == str(root) and process.info["status"] != "zombie":
                left.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def main() -> int:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    with tempfile.TemporaryDirectory() as directory:
        project = Project(Path(directory) / "project")
        project.migrate()
        seconds = []
        for _ in range(samples):
            worker = project.start(WORKER_COMMAND, "worker")
            worker.wait_for_output("running.")
            time.sleep(IDLE)
            started = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            exitcode = worker.process.wait(timeout=60)
            seconds.append(time.monotonic() - started)
            left = _left_behind(project.root)
            if exitcode != 0 or left:
                print(f"exit {exitcode}, left behind: {left}\n{worker.output()}", file=sys.stderr)
                return 1
    releases = ", ".join(
        f"{name} {version(name)}" for name in ("django", "django-prodserver", "django-q2")
    )
    median = statistics.median(seconds)
    print(
        f"Python {platform.python_version()} ({releases}): median {median:.2f} s from SIGTERM"
        f" to exit, {len(seconds)} stops from {min(seconds):.2f} to"
        f" {max(seconds):.2f} s, each exit 0 with no process left"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
