"""The heartbeat file (``HEALTH_FILE``): what the cluster does, for the probe.

The file shows what the cluster does, not only that this process lives:
- the sentinel stamps the shared state on every guard cycle (``ObservedSentinel``), so a
  sentinel that is stopped or stuck stops the heartbeat;
- Django-Q2's ``pre_execute`` (sent by a worker) and ``post_execute`` (sent by the monitor)
  stamp the last task started and finished; the receivers are connected before the cluster
  forks, so its processes inherit them;
- a thread of this process asks the broker how many tasks wait, so that a broker outage only
  makes the worker not ready, and a stall (tasks waiting, workers idle, none started) shows.

The file is rewritten atomically every ``HEALTH_INTERVAL`` seconds and holds no secret.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("django-q")

FORMAT_VERSION = 1
# Shared slots (doubles), written by the cluster's processes and read by this one.
GUARD_AT, STARTED_AT, FINISHED_AT, BUSY, IDLE, MONITOR_PID, PUSHER_PID = range(7)
FIRST_WORKER = 7
ID_LENGTH = 64
# Dead processes are marked with a negative pid in the shared slots.
_shared: SharedState | None = None


class SharedState:
    """Memory shared by this process and the cluster it forks (no semaphore, no file)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self.workers = workers
        self.slots = context.RawArray(ctypes.c_double, FIRST_WORKER + workers)
        self.started_id = context.RawArray(ctypes.c_char, ID_LENGTH)
        self.finished_id = context.RawArray(ctypes.c_char, ID_LENGTH)

    def stamp_task(self, started: bool, task: Any) -> None:
        """Record a task that a worker starts (or the monitor has saved) now."""
        task_id = str(task.get("id", "") if isinstance(task, dict) else "")
        buffer = self.started_id if started else self.finished_id
        buffer.value = task_id.encode()[: ID_LENGTH - 1]
        self.slots[STARTED_AT if started else FINISHED_AT] = time.time()

    def stamp_guard(self, sentinel: Any) -> None:
        """Record what the sentinel sees on one guard cycle."""
        busy = idle = 0
        pool = list(sentinel.pool)[: self.workers]
        for index in range(self.workers):
            process = pool[index] if index < len(pool) else None
            self.slots[FIRST_WORKER + index] = _pid(process)
            if process is not None:
                # Django-Q2's worker timer: -1 idle, -2 recycled, above 0 busy.
                if process.timer.value > 0:
                    busy += 1
                elif process.timer.value == -1:
                    idle += 1
        self.slots[BUSY], self.slots[IDLE] = busy, idle
        self.slots[MONITOR_PID] = _pid(sentinel.monitor)
        self.slots[PUSHER_PID] = _pid(sentinel.pusher)
        self.slots[GUARD_AT] = time.time()

    def snapshot(self) -> dict[str, Any]:
        """Return the cluster's side of the heartbeat."""
        slots = list(self.slots)
        processes = [("monitor", slots[MONITOR_PID]), ("pusher", slots[PUSHER_PID])]
        processes += [("worker", pid) for pid in slots[FIRST_WORKER:] if pid]
        return {
            "sentinel_heartbeat_at": slots[GUARD_AT] or None,
            "workers": {"busy": int(slots[BUSY]), "idle": int(slots[IDLE])},
            "processes": [
                {"role": role, "pid": int(abs(pid)), "alive": pid > 0}
                for role, pid in processes
                if pid
            ],
            "last_task_started": _task(self.started_id, slots[STARTED_AT]),
            "last_task_finished": _task(self.finished_id, slots[FINISHED_AT]),
        }


def _pid(process: Any) -> float:
    if process is None:
        return 0.0
    try:
        alive = process.is_alive()
    except (AssertionError, ValueError):  # not a child of the caller, or closed
        alive = False
    return float(process.pid if alive else -(process.pid or 0))


def _task(buffer: Any, at: float) -> dict[str, Any] | None:
    return {"id": buffer.value.decode(errors="replace"), "at": at} if at else None


def observed(sentinel_class: type) -> type:
    """Return ``sentinel_class``, reporting each guard cycle to the shared state."""

    class ObservedSentinel(sentinel_class):  # type: ignore[misc]
        def status(self) -> str:
            # Django-Q2 calls status() on every guard cycle, to save its stats.
            if _shared is not None:
                with contextlib.suppress(Exception):  # the heartbeat never stops the cluster
                    _shared.stamp_guard(self)
            result: str = super().status()
            return result

    return ObservedSentinel


class Heartbeat:
    """Write ``path`` every ``interval`` seconds until the worker stops."""

    def __init__(
        self, path: Path, interval: float, stall_after: float, process_name: str, cluster: str
    ) -> None:
        self.path = path
        self.interval = interval
        self.stall_after = stall_after
        self.process_name = process_name
        self.cluster = cluster
        self.state = "starting"
        self.sentinel_pid: int | None = None
        self.running_since: float | None = None
        self.queued: int | None = None
        self.broker_contact_at: float | None = None
        self.shared: SharedState | None = None
        self.stopped = threading.Event()

    def prepare(self, workers: int) -> None:
        """Share memory with the cluster about to fork and listen to its tasks."""
        global _shared
        from django_q.signals import post_execute, pre_execute

        self.shared = _shared = SharedState(workers)
        pre_execute.connect(_task_started, dispatch_uid="prodserver_djangoq2.health")
        post_execute.connect(_task_finished, dispatch_uid="prodserver_djangoq2.health")
        self.write()

    def forked(self, sentinel_pid: int) -> None:
        """Start writing periodically, now that the cluster's first fork is done."""
        # Threads start only after the fork: a thread's open broker connection or held lock
        # must not be copied into the cluster.
        self.sentinel_pid = sentinel_pid
        self._start_thread(self._write_periodically, "prodserver-health")
        self._start_thread(self._poll_broker, "prodserver-health-broker")

    def running(self) -> None:
        """Say that the cluster has started."""
        self.running_since = time.time()
        self.state = "running"
        self.write()

    def stopping(self) -> None:
        """Say that a stop is in progress."""
        self.state = "stopping"
        self.write()

    def stop(self) -> None:
        """Mark the file as stopped: a probe then fails with that reason."""
        self.stopped.set()
        self.state = "stopped"
        self.write()

    def write(self) -> None:
        """Write the current state atomically: to a new file, then renamed over the old."""
        state = self.snapshot()
        with contextlib.suppress(OSError):
            descriptor, temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(descriptor, "w") as handle:
                    json.dump(state, handle)
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise

    def snapshot(self) -> dict[str, Any]:
        """Return what the file holds."""
        cluster = self.shared.snapshot() if self.shared is not None else {}
        sentinel = {"pid": self.sentinel_pid, "alive": self._sentinel_alive()}
        return {
            "version": FORMAT_VERSION,
            "pid": os.getpid(),
            "process": self.process_name,
            "cluster": self.cluster,
            "state": self.state,
            "written_at": time.time(),
            "interval": self.interval,
            "stall_after": self.stall_after,
            "running_since": self.running_since,
            "sentinel": {**sentinel, "heartbeat_at": cluster.get("sentinel_heartbeat_at")},
            "processes": cluster.get("processes", []),
            "workers": cluster.get("workers", {"busy": 0, "idle": 0}),
            "last_task_started": cluster.get("last_task_started"),
            "last_task_finished": cluster.get("last_task_finished"),
            "broker": {"queued": self.queued, "contact_at": self.broker_contact_at},
        }

    def _sentinel_alive(self) -> bool:
        if self.sentinel_pid is None:
            return False
        try:
            os.kill(self.sentinel_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _write_periodically(self) -> None:
        while not self.stopped.wait(self.interval):
            self.write()

    def _poll_broker(self) -> None:
        from django.db import connections
        from django_q.brokers import get_broker

        broker = get_broker()
        while not self.stopped.is_set():
            try:
                self.queued = int(broker.queue_size())
                self.broker_contact_at = time.time()
            except Exception as error:  # an outage: the probe's --ready reports it
                logger.debug("Health: the broker did not answer: %s", type(error).__name__)
                connections.close_all()  # this thread's own connections, opened again next time
            self.stopped.wait(self.interval)

    def _start_thread(self, target: Any, name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()


def _task_started(sender: Any, task: Any = None, **kwargs: Any) -> None:
    if _shared is not None:
        _shared.stamp_task(True, task)


def _task_finished(sender: Any, task: Any = None, **kwargs: Any) -> None:
    if _shared is not None:
        _shared.stamp_task(False, task)
