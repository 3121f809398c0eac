"""Run a Django-Q2 cluster in this process and supervise it until it stops.

``qcluster`` returns once its sentinel has started and leaves the stop to a signal handler
that joins the sentinel from inside the handler, during interpreter shutdown; when the stop
signal reaches every process of the cluster at once, that join never returns. Here the
handler only records the signal and the main thread does the stopping, within a bound.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

import psutil
from django.core.management import CommandError

logger = logging.getLogger("django-q")  # Django-Q2 configures it; our lines join its log

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_INTERVAL = 0.1
# Time for cluster processes to exit once asked before they are killed.
KILL_GRACE = 5.0
# A stop signal sent to every process may end the sentinel a moment before this process
# handles its own copy; a sentinel death is only "on its own" if no signal follows in time.
SIGNAL_GRACE = 1.0
PR_SET_CHILD_SUBREAPER = 36


class StopBeforeStart(BaseException):
    """A stop signal arrived while the worker prepared its start: nothing is left to stop.

    Not an ``Exception``, so that no ``except Exception`` on the way swallows it.
    """


class ClusterRunner:
    """Start a cluster, wait for a stop signal or the sentinel's death, then stop it."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.signals_received: list[int] = []
        self.cluster_created = False

    def run(self, prepare: Callable[[], object] = lambda: None, run_once: bool = False) -> None:
        """Call ``prepare``, then run until stopped; raise ``CommandError`` if the cluster dies.

        A stop signal during ``prepare`` (e.g. a broker ping) abandons the start at once.
        """
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        try:
            prepare()
            from django_q.cluster import Cluster  # after prepare: it may select the cluster

            _adopt_orphans()
            cluster = self._create(Cluster)
        except StopBeforeStart:
            pass
        if self.signals_received:
            logger.info("Stop signal received before the cluster started.")
            return
        started = self._start(cluster)
        if started and not run_once:
            self._wait(cluster)
        if self._died_on_its_own(cluster):
            exitcode = cluster.sentinel.exitcode
            _end_descendants()
            raise CommandError(_death_message(exitcode))
        self._stop(cluster, started)

    def _create(self, cluster_class: Any) -> Any:
        # Cluster() installs Django-Q2's handlers, which stop the cluster from inside the
        # handler; the signals stay blocked until ours have replaced them.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            cluster = cluster_class()
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)
            self.cluster_created = True
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return cluster

    def _start(self, cluster: Any) -> bool:
        """Start the sentinel as ``Cluster.start()`` does; return whether it came up."""
        from django_q.cluster import Sentinel

        # Cluster.start() waits for the start event with no way out in some Django-Q2
        # releases; this wait also ends when the sentinel dies or a stop signal arrives.
        context = multiprocessing.get_context("fork")
        cluster.stop_event = context.Event()
        cluster.start_event = context.Event()
        cluster.sentinel = context.Process(
            target=Sentinel,
            name=f"Process-{uuid.uuid4().hex}",
            args=(
                cluster.stop_event,
                cluster.start_event,
                cluster.cluster_id,
                cluster.broker,
                cluster.timeout,
            ),
        )
        cluster.sentinel.start()
        logger.info("Q Cluster %s starting.", cluster.name)
        started = _in_background(cluster.start_event.wait)
        while not started.is_set():
            if self.signals_received or not cluster.sentinel.is_alive():
                return started.is_set()
            cluster.sentinel.join(POLL_INTERVAL)
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received.append(signum)
        # Once the cluster exists, the main loop stops it; before, there is nothing to stop.
        if not self.cluster_created:
            raise StopBeforeStart

    def _wait(self, cluster: Any) -> None:
        while not self.signals_received and cluster.sentinel.is_alive():
            cluster.sentinel.join(POLL_INTERVAL)

    def _died_on_its_own(self, cluster: Any) -> bool:
        if self.signals_received or cluster.sentinel.is_alive():
            return False
        deadline = time.monotonic() + SIGNAL_GRACE
        while not self.signals_received and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        return not self.signals_received

    def _stop(self, cluster: Any, started: bool) -> None:
        sentinel = cluster.sentinel
        # A sentinel still starting has no task in progress: it is ended without waiting.
        if started and sentinel.is_alive():
            logger.info("Stopping cluster %s: finishing tasks in progress.", cluster.name)
            _in_background(cluster.stop_event.set)
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
        if sentinel.exitcode is not None and sentinel.exitcode < 0:
            logger.warning(
                "Cluster %s's processes were ended by %s; tasks in progress did not finish "
                "and only brokers that wait for an acknowledgement deliver them again.",
                cluster.name,
                signal.Signals(-sentinel.exitcode).name,
            )
        _end_descendants()
        logger.info("Cluster %s stopped.", cluster.name)


def _in_background(call: Callable[[], object]) -> threading.Event:
    """Run ``call`` in a daemon thread; return an event that is set once it has returned."""
    # A multiprocessing Event's wait() and set() take locks that the sentinel takes too, and
    # set() waits until every process sleeping in wait() has woken up: if the sentinel dies at
    # the wrong moment, they never return. Only this helper thread may then block forever.
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    threading.Thread(target=run, name="prodserver-djangoq2-event", daemon=True).start()
    return done


def _adopt_orphans() -> None:
    # If the sentinel is killed, its workers would be re-parented to init and run on; as a
    # subreaper this process inherits them and can end them.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _end_descendants() -> None:
    """Terminate, then kill, every descendant of this process, and reap them."""
    started = time.monotonic()
    terminated: set[psutil.Process] = set()
    # Listed again on each round: a dying process may have started another, or left orphans
    # that this subreaper inherits.
    while processes := psutil.Process().children(recursive=True):
        waited = time.monotonic() - started
        if waited > 2 * KILL_GRACE:  # e.g. stuck in uninterruptible I/O: do not hang on it
            pids = ", ".join(str(process.pid) for process in processes)
            logger.warning("Processes %s did not end when killed; leaving them.", pids)
            return
        for process in processes:
            if waited >= KILL_GRACE:
                _signal(process, signal.SIGKILL)
            elif process not in terminated:
                _signal(process, signal.SIGTERM)
                terminated.add(process)
        psutil.wait_procs(processes, timeout=POLL_INTERVAL)


def _signal(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signum)


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        cause = f"was killed by {signal.Signals(-exitcode).name}"
    else:
        cause = f"exited with status {exitcode}"
    return (
        f"The Django-Q2 cluster's sentinel {cause}; the worker exits so that its process "
        "manager can restart it (see the log above for the cause)."
    )
