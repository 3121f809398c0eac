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
            left = [
                process.pid
                for process in psutil.process_iter(["cwd"])
                if process.info["cwd"] == str(project.root)
            ]
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
