"""Record every task execution, so that tests can count tasks that ran more than once.

Django-Q2 stores one result per task id and raises ``attempt_count`` only when an earlier
attempt failed, so a task that succeeds twice leaves no trace in the database. With
``TESTS_EXECUTION_LOG`` set, each worker appends ``<task id> <sentinel pid>`` to that file when
it starts a task: the sentinel (the worker's parent) tells which cluster ran it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

EXECUTION_LOG = "TESTS_EXECUTION_LOG"


def record_if_asked() -> None:
    path = os.environ.get(EXECUTION_LOG)
    if not path:
        return
    from django_q.signals import pre_execute

    def record(sender: object, func: object, task: dict[str, Any], **kwargs: object) -> None:
        # One short write to an O_APPEND file: lines from concurrent workers never interleave.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, f"{task['id']} {os.getppid()}\n".encode())
        finally:
            os.close(descriptor)

    pre_execute.connect(record, weak=False, dispatch_uid="tests.brokers.executions")


def read(path: Path) -> list[tuple[str, int]]:
    """Return the recorded executions as (task id, sentinel pid) pairs."""
    if not path.exists():
        return []
    pairs = [line.split() for line in path.read_text().splitlines()]
    return [(task_id, int(pid)) for task_id, pid in pairs]


def repeated(records: list[tuple[str, int]]) -> dict[str, int]:
    """Return the task ids that ran more than once, with their number of runs."""
    runs = Counter(task_id for task_id, _ in records)
    return {task_id: count for task_id, count in runs.items() if count > 1}
