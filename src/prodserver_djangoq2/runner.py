"""Run a Django-Q2 cluster in this process and supervise it until it stops or reloads.

``qcluster`` returns once its sentinel has started and leaves the stop to a signal handler
that joins the sentinel from inside the handler, during interpreter shutdown; when the stop
signal reaches every process of the cluster at once, that join never returns. Here the
handler only records the signal and the main thread does the stopping, within a bound.

The main thread sleeps until something happens: a signal, the exit of a child (the sentinel,
or an orphan this process adopted) or the return of a helper thread wakes it at once. On
SIGHUP it stops the cluster as for a stop, then runs its own command again in the same PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import psutil
from django.core.management import CommandError

from . import reexec, sentinel

if TYPE_CHECKING:  # imported when a process asks for a health file
    from .health import Heartbeat

logger = logging.getLogger("django-q")  # Django-Q2 configures it; our lines join its log

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP
# Blocked while a reload runs the command again, so that they wait for the new runner.
DEFERRED_SIGNALS = {*STOP_SIGNALS, RELOAD_SIGNAL}
# Time for cluster processes to exit once asked before they are killed.
KILL_GRACE = 5.0
# A stop signal sent to every process may end the sentinel a moment before this process
# handles its own copy; a sentinel death is only "on its own" if no signal follows in time.
SIGNAL_GRACE = 1.0
# Every wait below wakes at once on the events that end it; this bound only guards against a
# wake-up that never comes.
WAKE_BOUND = 1.0
# Processes that are not this process's children do not wake it when they exit.
POLL_INTERVAL = 0.1
PR_SET_CHILD_SUBREAPER = 36
# Set by a reload for the command it runs again: PIDs of the children the old program left
# behind (e.g. multiprocessing's resource tracker, which exits once that program is gone).
INHERITED_CHILDREN = "PRODSERVER_DJANGOQ2_INHERITED_CHILDREN"


class SignalBeforeStart(BaseException):
    """A stop or reload signal arrived while the worker prepared its start.

    Not an ``Exception``, so that no ``except Exception`` on the way swallows it.
    """


class ClusterRunner:
    """Start a cluster, wait for a signal or the sentinel's death, then stop or reload."""

    def __init__(self, stop_timeout: float, heartbeat: Heartbeat | None = None) -> None:
        self.stop_timeout = stop_timeout
        self.heartbeat = heartbeat
        self.signals_received: list[int] = []
        self.cluster_created = False
        self.children = Children()
        self.wakeup = Wakeup()
        self.hangup_disposition: Any = signal.SIG_DFL

    @property
    def stop_requests(self) -> int:
        return sum(signum in STOP_SIGNALS for signum in self.signals_received)

    @property
    def reload_requested(self) -> bool:
        return RELOAD_SIGNAL in self.signals_received

    def run(self, prepare: Callable[[], object] = lambda: None, run_once: bool = False) -> None:
        """Call ``prepare``, then run until stopped; raise ``CommandError`` if the cluster dies.

        A signal during ``prepare`` (e.g. a broker ping) abandons the start at once. After
        SIGHUP this does not return: the command runs again in this process, once the cluster
        has stopped.
        """
        self._handle_signals()
        try:
            # A reload keeps these blocked while the command starts again: one that arrived
            # meanwhile is delivered now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFERRED_SIGNALS)
            prepare()
            from django_q.cluster import Cluster  # after prepare: it may select the cluster

            self.children.adopt_orphans()
            cluster = self._create(Cluster)
        except SignalBeforeStart:
            pass
        if self.signals_received:
            if not self.stop_requests:
                logger.info("Reload signal received before the cluster started.")
                self._reload()
            logger.info("Stop signal received before the cluster started.")
            return
        self._supervise(cluster, run_once)
        if self.reload_requested and not self.stop_requests:
            if cluster.sentinel.exitcode == -RELOAD_SIGNAL:
                # The whole process group got SIGHUP: a terminal hung up, nobody asked to reload.
                logger.info("Cluster %s was ended by a hangup; the worker stops.", cluster.name)
                return
            self._reload()

    def _handle_signals(self) -> None:
        handled = set(STOP_SIGNALS)
        # None: a handler installed outside Python, which the cluster need not keep.
        self.hangup_disposition = signal.getsignal(RELOAD_SIGNAL) or signal.SIG_DFL
        # Started with SIGHUP ignored (nohup): a hangup must not restart it either.
        if self.hangup_disposition != signal.SIG_IGN:
            handled.add(RELOAD_SIGNAL)
        for signum in handled:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received.append(signum)
        # Once the cluster exists, the main thread acts on it; before, there is nothing to stop.
        if not self.cluster_created:
            raise SignalBeforeStart

    def _create(self, cluster_class: Any) -> Any:
        # Cluster() installs Django-Q2's handlers, which stop the cluster from inside the
        # handler; the signals stay blocked until ours have replaced them. One that arrived
        # meanwhile is then only recorded: run() acts on it before starting anything.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
        try:
            cluster = cluster_class()
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)
            self.cluster_created = True
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return cluster

    def _supervise(self, cluster: Any, run_once: bool) -> None:
        self._start_sentinel(cluster)
        # Only now: the sentinel must not inherit the wake-up pipe or the SIGCHLD handler.
        self.wakeup.open()
        try:
            # Exits from before, such as that of a resource tracker a reload left behind.
            self.children.reap()
            started = self._wait_for_start(cluster)
            if started and self.heartbeat:
                self.heartbeat.running()
            if started and not run_once:
                self._wait(cluster)
            if self._died_on_its_own(cluster):
                exitcode = cluster.sentinel.exitcode
                self.children.end(self._pause)
                raise CommandError(_death_message(exitcode))
            self._stop(cluster, started)
        finally:
            self.wakeup.close()
            if self.heartbeat:
                self.heartbeat.stop()

    def _start_sentinel(self, cluster: Any) -> None:
        """Start the sentinel as ``Cluster.start()`` does."""
        from django_q.conf import Conf

        sentinel_class = sentinel.sentinel_class()
        if self.heartbeat:
            from . import health

            self.heartbeat.prepare(Conf.WORKERS)
            sentinel_class = health.observed(sentinel_class)
        # Cluster.start() waits for the start event with no way out in some Django-Q2
        # releases; here that wait also ends when the sentinel dies or a signal arrives.
        context = multiprocessing.get_context("fork")
        cluster.stop_event = context.Event()
        cluster.start_event = context.Event()
        cluster.sentinel = context.Process(
            target=_run_sentinel,
            name=f"Process-{uuid.uuid4().hex}",
            args=(
                self.hangup_disposition,
                sentinel_class,
                cluster.stop_event,
                cluster.start_event,
                cluster.cluster_id,
                cluster.broker,
                cluster.timeout,
            ),
        )
        cluster.sentinel.start()
        self.children.sentinel = cluster.sentinel
        if self.heartbeat:
            self.heartbeat.forked(cluster.sentinel.pid)
        logger.info("Q Cluster %s starting.", cluster.name)

    def _wait_for_start(self, cluster: Any) -> bool:
        """Wait until the sentinel has started; return whether it did."""
        started = _in_background(cluster.start_event.wait, then=self.wakeup.wake)
        while not started.is_set():
            if self.signals_received or not cluster.sentinel.is_alive():
                return started.is_set()
            self._pause(WAKE_BOUND)
        return True

    def _wait(self, cluster: Any) -> None:
        while not self.signals_received and cluster.sentinel.is_alive():
            self._pause(WAKE_BOUND)

    def _pause(self, timeout: float) -> None:
        """Sleep until an event or ``timeout``; reap the children that exited meanwhile."""
        if self.wakeup.wait(timeout):
            self.children.reap()

    def _died_on_its_own(self, cluster: Any) -> bool:
        if self.signals_received or cluster.sentinel.is_alive():
            return False
        deadline = time.monotonic() + SIGNAL_GRACE
        while not self.signals_received and (remaining := deadline - time.monotonic()) > 0:
            self._pause(remaining)
        return not self.signals_received

    def _stop(self, cluster: Any, started: bool) -> None:
        sentinel = cluster.sentinel
        # A sentinel still starting has no task in progress: it is ended without waiting.
        if started and sentinel.is_alive():
            if self.heartbeat:
                self.heartbeat.stopping()
            purpose = " to reload" if not self.stop_requests else ""
            logger.info(
                "Stopping cluster %s%s: finishing tasks in progress.", cluster.name, purpose
            )
            _in_background(cluster.stop_event.set)
            deadline = time.monotonic() + self.stop_timeout
            # A second stop signal means: do not wait any longer.
            while sentinel.is_alive() and self.stop_requests < 2:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._pause(min(remaining, WAKE_BOUND))
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
        self.children.end(self._pause)
        logger.info("Cluster %s stopped.", cluster.name)

    def _reload(self) -> NoReturn:
        """Run this worker's command again in this process: new code, same PID."""
        logger.info("Reloading: running the worker's command again in process %d.", os.getpid())
        # Signals that arrive while the command starts again wait for its runner's handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
        reexec.reexec(children_to_hand_over())


def children_to_hand_over() -> dict[str, str]:
    """Return the environment that lets this command, run again, reap what it leaves behind.

    Every re-execution of the worker's command should pass it: children of this program (such
    as multiprocessing's resource tracker, which exits once the program is replaced) become
    children of the new one, which would otherwise take them for its own and never reap them.
    """
    return {INHERITED_CHILDREN: " ".join(map(str, _child_pids()))}


def _run_sentinel(hangup_disposition: Any, sentinel_class: Any, *args: Any) -> None:
    # Forked with this process's SIGHUP handler: the cluster's processes get what they had.
    signal.signal(RELOAD_SIGNAL, hangup_disposition)
    sentinel_class(*args)


class Wakeup:
    """Wake the main thread at once on a signal, a child's exit or a helper thread's call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: tuple[int, int] | None = None

    def open(self) -> None:
        """Start writing to the wake-up pipe on signals, SIGCHLD included."""
        self._fds = os.pipe()
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._previous_fd = signal.set_wakeup_fd(self._fds[1], warn_on_full_buffer=False)
        # Only a signal with a Python handler reaches the pipe.
        previous = signal.signal(signal.SIGCHLD, _ignore)
        self._previous_sigchld = previous or signal.SIG_DFL

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout``; return whether a child exited meanwhile."""
        assert self._fds is not None, "open() first"
        # A child's exit wakes this through SIGCHLD. (The sentinel's Process.sentinel fd would
        # only signal once the sentinel's descendants, which inherit it, have exited too.)
        multiprocessing.connection.wait([self._fds[0]], timeout)
        # The pipe holds the number of each signal received (and zeros from wake()).
        received = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fds[0], 512):
                received += chunk
        return signal.SIGCHLD in received

    def wake(self) -> None:
        """Wake the main thread (from another thread)."""
        with self._lock:
            if self._fds is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._fds[1], b"\0")

    def close(self) -> None:
        """Restore the signal handling that ``open`` replaced."""
        signal.set_wakeup_fd(self._previous_fd)
        signal.signal(signal.SIGCHLD, self._previous_sigchld)
        with self._lock:
            fds, self._fds = self._fds, None
        for fd in fds or ():
            os.close(fd)


class Children:
    """The children of the worker's main process: the cluster's, and those it may reap.

    The cluster is the sentinel with its descendants and every orphan this subreaper adopts.
    Children started before the cluster (multiprocessing's resource tracker, anything the
    project's code started) are not the cluster's: they are neither signalled nor reaped, as
    the code that started them may wait for them. Children a reload left behind are reaped.
    """

    def __init__(self) -> None:
        self.started_before: set[int] = set()
        self.inherited: set[int] = set()
        self.sentinel: BaseProcess | None = None

    def adopt_orphans(self) -> None:
        """Become a subreaper, and note the children that already exist."""
        # If the sentinel is killed, its workers would be re-parented to init and run on; as
        # a subreaper this process inherits them and can end them. Orphans of tasks come here
        # too, and are reaped as they exit.
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        inherited = os.environ.pop(INHERITED_CHILDREN, "")
        self.inherited = {int(pid) for pid in inherited.split()}
        self.started_before = set(_child_pids()) - self.inherited

    def reap(self) -> None:
        """Reap the children that have exited and that nothing else waits for."""
        waited_for = set(self.started_before)
        if self.sentinel is not None and self.sentinel.pid is not None:
            # multiprocessing reaps the sentinel: that is how it learns its exit code.
            waited_for.add(self.sentinel.pid)
        for pid in _child_pids():
            if pid not in waited_for:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def cluster(self) -> list[psutil.Process]:
        """Return the cluster's processes that still run."""
        processes: list[psutil.Process] = []
        apart = self.started_before | self.inherited
        for pid in _child_pids():
            if pid not in apart:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child = psutil.Process(pid)
                    processes += [child, *child.children(recursive=True)]
        return [process for process in processes if _running(process)]

    def end(self, pause: Callable[[float], object]) -> None:
        """Terminate, then kill, every process of the cluster, and reap them."""
        started = time.monotonic()
        terminated: set[psutil.Process] = set()
        while True:
            if self.sentinel is not None:
                self.sentinel.join(0)  # lets multiprocessing reap it
            self.reap()
            # Listed again on each round: a dying process may have started another, or left
            # orphans that this subreaper inherits.
            processes = self.cluster()
            if not processes:
                return
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
            pause(POLL_INTERVAL)


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _child_pids() -> list[int]:
    """Return the PIDs of this process's children."""
    # The kernel's list of each thread's children takes microseconds to read; psutil reads
    # every process of the machine, which would slow down every stop.
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as children:
                pids += map(int, children.read().split())
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN, or a thread just ended
        return [child.pid for child in psutil.Process().children()]
    return pids


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _in_background(
    call: Callable[[], object], then: Callable[[], object] = lambda: None
) -> threading.Event:
    """Run ``call`` then ``then`` in a daemon thread; return an event set once ``call`` returned."""
    # A multiprocessing Event's wait() and set() take locks that the sentinel takes too, and
    # set() waits until every process sleeping in wait() has woken up: if the sentinel dies at
    # the wrong moment, they never return. Only this helper thread may then block forever.
    done = threading.Event()

    def run() -> None:
        call()
        done.set()
        then()

    threading.Thread(target=run, name="prodserver-djangoq2-event", daemon=True).start()
    return done


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
