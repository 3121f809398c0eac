"""Tasks that the end-to-end tests enqueue."""

import os
import subprocess
import time


def add(a: int, b: int) -> int:
    return a + b


def noop() -> None:
    return None


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def worker_pid() -> int:
    return os.getpid()


def cluster_settings() -> dict[str, object]:
    """Report the Django-Q2 configuration that the worker running this task sees."""
    from django_q.conf import Conf

    return {
        "cluster_name": Conf.CLUSTER_NAME,
        "workers": Conf.WORKERS,
        "timeout": Conf.TIMEOUT,
        "retry": Conf.RETRY,
        "environment": os.environ.get("Q_CLUSTER_NAME"),
    }


def start_orphan(seconds: float) -> int:
    """Start a process that outlives this task (its worker is recycled before it ends)."""
    return subprocess.Popen(["sleep", str(seconds)]).pid


def cluster_report() -> dict[str, object]:
    """Report every cluster setting in effect, as each Django-Q2 module sees it."""
    from tests.testapp.cluster_tasks import settings_in_effect

    return settings_in_effect()
