"""Tasks that the end-to-end tests enqueue."""

import os
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
