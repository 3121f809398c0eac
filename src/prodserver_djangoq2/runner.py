"""Run a Django-Q2 cluster in this process and supervise it until it stops.

``qcluster`` returns once its sentinel has started and leaves the stop to a signal handler
that joins the sentinel from inside the handler, during interpreter shutdown; when the stop
signal reaches every process of the cluster at once, that join never returns. Here the
handler only records the signal and the main thread does the stopping.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

import psutil
from django.core.management import CommandError

logger = logging.getLogger("django-q")  # Django-Q2 configures it; our lines join its log

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_INTERVAL = 0.1
# Time for cluster processes to exit once asked before they are killed.
KILL_GRACE = 5.0
PR_SET_CHILD_SUBREAPER = 36


class ClusterRunner:
    """Start a cluster, wait for a stop signal or the sentinel's death, then stop it."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.signals_received: list[int] = []

    def run(self, run_once: bool = False) -> None:
        """Run until stopped; raise ``CommandError`` if the cluster dies on its own."""
        from django_q.cluster import Cluster

        _adopt_orphans()
        cluster = Cluster()
        # Cluster() installs Django-Q2's own handlers; ours replace them.
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record_signal)
        try:
            cluster.start()
        except RuntimeError:
            if not self.signals_received:
                _end_processes(psutil.Process().children(recursive=True))
                raise CommandError(_death_message(cluster.sentinel.exitcode)) from None
        if not run_once:
            self._wait(cluster)
        if not self.signals_received and not run_once:
            exitcode = cluster.sentinel.exitcode
            _end_processes(psutil.Process().children(recursive=True))
            raise CommandError(_death_message(exitcode))
        self._stop(cluster)

    def _record_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received.append(signum)

    def _wait(self, cluster: Any) -> None:
        while not self.signals_received and cluster.sentinel.is_alive():
            cluster.sentinel.join(POLL_INTERVAL)

    def _stop(self, cluster: Any) -> None:
        sentinel = cluster.sentinel
        if sentinel.is_alive():
            logger.info("Stopping cluster %s: finishing tasks in progress.", cluster.name)
            cluster.stop_event.set()
            deadline = time.monotonic() + self.stop_timeout
            # A second stop signal means: do not wait any longer.
            while sentinel.is_alive() and time.monotonic() < deadline:
                if len(self.signals_received) > 1:
                    break
                sentinel.join(POLL_INTERVAL)
            if sentinel.is_alive():
                logger.warning(
                    "Cluster %s did not stop in time; ending its processes.", cluster.name
                )
        _end_processes(psutil.Process().children(recursive=True))
        logger.info("Cluster %s stopped.", cluster.name)


def _adopt_orphans() -> None:
    # If the sentinel is killed, its workers would be re-parented to init and run on; as a
    # subreaper this process inherits them and can end them.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _end_processes(processes: list[psutil.Process]) -> None:
    """Terminate, then kill, the given processes, and reap them."""
    for process in processes:
        _signal(process, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=KILL_GRACE)
    for process in alive:
        _signal(process, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=KILL_GRACE)
    # Children that were reparented to this subreaper are not known to multiprocessing.
    for child in psutil.Process().children():
        if child.status() == psutil.STATUS_ZOMBIE:
            child.wait(0)


def _signal(process: psutil.Process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        pass


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        cause = f"was killed by {signal.Signals(-exitcode).name}"
    else:
        cause = f"exited with status {exitcode}"
    return (
        f"The Django-Q2 cluster's sentinel {cause}; the worker exits so that its process "
        "manager can restart it (see the log above for the cause)."
    )
