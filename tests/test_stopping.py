"""End to end: the worker stops on SIGTERM/SIGINT however they are delivered, and loses no task.

"Main only" is how Docker and Kubernetes deliver a stop; "every process" is how systemd's
``KillMode=control-group``, supervisord's ``stopasgroup`` or a terminal's Ctrl+C deliver it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django_q.humanhash import humanize

from prodserver_djangoq2.runner import KILL_GRACE, Wakeup, _running
from tests.harness import (
    ORM_Q_CLUSTER,
    REPO,
    Project,
    Worker,
    children_but_trackers,
    is_resource_tracker,
)

# Small enough that tasks handed back by a killed worker come back within seconds.
FAST_Q_CLUSTER = {**ORM_Q_CLUSTER, "timeout": 4, "retry": 5}
STOP_WAIT = 30


def make_project(root: Path, q_cluster: dict[str, object], **process: object) -> Project:
    project = Project(
        root,
        settings={
            "Q_CLUSTER": q_cluster,
            "PRODUCTION_PROCESSES": {"worker": {"BACKEND": "djangoq2", **process}},
        },
    )
    project.migrate()
    return project


@pytest.fixture
def fast_project(tmp_path: Path) -> Project:
    """A migrated ORM project whose unacknowledged tasks are delivered again after 5 s."""
    return make_project(tmp_path / "project", FAST_Q_CLUSTER)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the processes that still run (zombies waiting to be reaped do not)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


def cluster_of(worker: Worker) -> list[psutil.Process]:
    """Return the worker's descendants, but for multiprocessing's resource tracker."""
    return [process for process in worker.descendants() if not is_resource_tracker(process)]


def sentinel_of(worker: Worker) -> psutil.Process:
    [sentinel] = children_but_trackers(worker.pid)
    return sentinel


def wait_until_processing(worker: Worker, task_id: str) -> int:
    """Wait until a worker process runs the task; return that process's PID."""
    name = humanize(task_id)
    worker.wait_for_output(f"processing {name} ")
    match = re.search(rf"(Process-\w+) processing {name} ", worker.output())
    assert match
    pid = re.search(rf"{match.group(1)} ready for work at (\d+)", worker.output())
    assert pid, worker.output()
    return int(pid.group(1))


def stored(project: Project) -> dict[str, dict[str, object]]:
    return {task["id"]: task for task in project.report()["tasks"]}


def drain(project: Project, workers: list[Worker], ids: list[str]) -> dict[str, dict[str, object]]:
    """Run a fresh worker until every task in ``ids`` has a result; stop it; return them."""
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    results = project.wait_for_results(ids, timeout=90, worker=worker)
    worker.wait_for_output("running.")  # the results may predate this worker
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    return results


MODES = [
    pytest.param(signal.SIGTERM, False, id="SIGTERM-main-only"),
    pytest.param(signal.SIGTERM, True, id="SIGTERM-every-process"),
    pytest.param(signal.SIGINT, False, id="SIGINT-main-only"),
    pytest.param(signal.SIGINT, True, id="SIGINT-every-process"),
]


@pytest.mark.parametrize(("signum", "whole_group"), MODES)
def test_stop_under_load_exits_zero_and_loses_no_task(
    fast_project: Project, workers: list[Worker], signum: int, whole_group: bool
) -> None:
    [long_task] = fast_project.enqueue("sleep", 2)
    backlog = fast_project.enqueue("sleep", 0.2, count=8)
    worker = fast_project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, long_task)
    time.sleep(0.3)
    cluster = cluster_of(worker)
    assert worker.stop(signum, timeout=STOP_WAIT, whole_group=whole_group) == 0
    assert not alive(cluster)
    assert "Traceback" not in worker.output()
    if signum == signal.SIGTERM and whole_group:
        # SIGTERM ends every cluster process at once: the task in progress is handed back.
        assert long_task not in stored(fast_project)
        assert "were ended by SIGTERM" in worker.output()
    else:
        # The cluster processes ignore SIGINT; a stop through the main process finishes tasks.
        assert stored(fast_project)[long_task]["success"]
    results = drain(fast_project, workers, [long_task, *backlog])
    assert all(task["success"] for task in results.values())
    assert fast_project.report()["queued"] == 0


def test_stop_signal_reaching_the_cluster_first_still_exits_zero(
    fast_project: Project, workers: list[Worker]
) -> None:
    # A process-group kill may end the sentinel before the main process handles its copy.
    [task] = fast_project.enqueue("sleep", 2)
    worker = fast_project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    cluster = cluster_of(worker)
    for process in cluster:
        process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert not alive(cluster)
    assert "sentinel was killed" not in worker.output()
    assert drain(fast_project, workers, [task])[task]["success"]


def test_sentinel_killed_makes_the_worker_exit_non_zero(
    project: Project, workers: list[Worker]
) -> None:
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    cluster = cluster_of(worker)
    sentinel_of(worker).kill()
    assert worker.process.wait(timeout=STOP_WAIT) == 1
    assert not alive(cluster)
    assert "sentinel was killed by SIGKILL" in worker.output()
    assert "Traceback" not in worker.output()


def test_worker_killed_mid_task_is_replaced_and_the_task_delivered_again(
    fast_project: Project, workers: list[Worker]
) -> None:
    [task] = fast_project.enqueue("sleep", 1.5)
    worker = fast_project.start("prodserver", "worker")
    workers.append(worker)
    os.kill(wait_until_processing(worker, task), signal.SIGKILL)
    result = fast_project.wait_for_results([task], worker=worker)[task]
    assert result["success"] and result["result"] == 1.5
    assert "reincarnated worker" in worker.output()
    assert worker.output().count(f"processing {humanize(task)} ") == 2
    # The process the process manager started is the tasks' grandparent: no wrapper between.
    [pid_task] = fast_project.enqueue("worker_pid")
    task_pid = fast_project.wait_for_results([pid_task], worker=worker)[pid_task]["result"]
    assert isinstance(task_pid, int)
    assert psutil.Process(task_pid).parents()[1].pid == worker.pid
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0


def test_stop_timeout_bounds_the_stop_and_the_task_comes_back(
    tmp_path: Path, workers: list[Worker]
) -> None:
    project = make_project(
        tmp_path / "project", {**ORM_Q_CLUSTER, "timeout": 7, "retry": 8}, STOP_TIMEOUT=1
    )
    [task] = project.enqueue("sleep", 6)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    cluster = cluster_of(worker)
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert "did not stop in time" in worker.output()
    assert not alive(cluster)
    assert task not in stored(project)
    assert drain(project, workers, [task])[task]["success"]


def test_second_signal_stops_waiting_for_tasks(tmp_path: Path, workers: list[Worker]) -> None:
    project = make_project(tmp_path / "project", {**ORM_Q_CLUSTER, "timeout": 20, "retry": 30})
    [task] = project.enqueue("sleep", 15)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    cluster = cluster_of(worker)
    os.kill(worker.pid, signal.SIGTERM)
    worker.wait_for_output("finishing tasks in progress")
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert "did not stop in time" in worker.output()
    assert not alive(cluster)
    assert task not in stored(project)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_stop_while_the_broker_hangs_at_start(
    tmp_path: Path, workers: list[Worker], silent_server: int
) -> None:
    q_cluster = {
        "name": "tests",
        "workers": 1,
        "redis": {"host": "127.0.0.1", "port": silent_server},
    }
    project = make_project(
        tmp_path / "project", q_cluster, STOP_TIMEOUT=1, ARGS={"skip-checks": True}
    )
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("starting.")
    time.sleep(0.5)  # the sentinel is now waiting for the broker's answer to PING
    cluster = cluster_of(worker)
    assert cluster, "the sentinel runs"
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert not alive(cluster)
    assert "Traceback" not in worker.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_during_the_broker_ping_abandons_the_start(
    tmp_path: Path, workers: list[Worker], signum: int
) -> None:
    q_cluster = {"name": "tests", "workers": 1, "redis": {"host": "127.0.0.1"}}
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(60)
        q_cluster["redis"]["port"] = server.getsockname()[1]  # type: ignore[index]
        project = make_project(tmp_path / "project", q_cluster, PING_TIMEOUT=60)
        worker = project.start("prodserver", "worker")
        workers.append(worker)
        connection, _ = server.accept()  # the start's broker ping, which is never answered
        with connection:
            started = time.monotonic()
            assert worker.stop(signum, timeout=STOP_WAIT) == 0
    assert time.monotonic() - started < 5, "the stop did not wait for the ping's 60 s"
    assert "Stop signal received before the cluster started." in worker.output()
    assert "Traceback" not in worker.output()
    assert "starting." not in worker.output()


def test_broker_refusing_at_start_makes_the_worker_exit_non_zero(
    tmp_path: Path, workers: list[Worker]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    q_cluster = {"name": "tests", "workers": 1, "redis": {"host": "127.0.0.1", "port": port}}
    project = make_project(tmp_path / "project", q_cluster, ARGS={"skip-checks": True})
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    assert worker.process.wait(timeout=STOP_WAIT) == 1
    assert "sentinel exited with status 1" in worker.output()
    assert not worker.descendants()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter with the in-process test settings."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_signal_while_the_cluster_is_created_stops_before_it_starts() -> None:
    # Cluster() installs Django-Q2's handlers, which would stop a cluster that has no sentinel
    # yet; the runner keeps the signals blocked until its own handlers replace them.
    result = run_python(
        """
        import os, signal, django
        django.setup()
        from django_q import cluster
        from prodserver_djangoq2.runner import ClusterRunner

        class SignalledWhileCreated(cluster.Cluster):
            def __init__(self):
                super().__init__()
                os.kill(os.getpid(), signal.SIGTERM)

        cluster.Cluster = SignalledWhileCreated
        ClusterRunner(5).run()
        print("returned")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "returned\n"
    assert "Stop signal received before the cluster started." in result.stderr
    assert "Traceback" not in result.stderr


def test_leftover_process_ignoring_sigterm_is_killed() -> None:
    result = run_python(
        """
        import subprocess, sys, time
        import psutil
        from prodserver_djangoq2.runner import Children

        children = Children()
        children.adopt_orphans()
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \\
            "print(flush=True); time.sleep(60)"
        child = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE)
        child.stdout.readline()
        children.end(time.sleep)
        print(psutil.pid_exists(child.pid), psutil.Process().children())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False []\n"


# Started by the project's settings in the worker only, like multiprocessing's resource tracker
# (which Python 3.14's default start method starts while Django-Q2 loads): children of the main
# process that are no part of the cluster. One ignores SIGTERM and notes it; the other exits
# with status 7, which the code that started it reads later.
PROCESSES_BEFORE_THE_CLUSTER = """
import subprocess, sys, threading, time

if "worker" in sys.argv:
    SIDECAR = subprocess.Popen([sys.executable, "-c", {sidecar!r}])
    SHORT_LIVED = subprocess.Popen(["sh", "-c", "sleep 3; exit 7"])

    def _wait_for_short_lived():
        time.sleep(6)
        print(f"short-lived child exited with {{SHORT_LIVED.wait()}}", flush=True)

    threading.Thread(target=_wait_for_short_lived, daemon=True).start()
""".format(
    sidecar="import pathlib, signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: pathlib.Path('sidecar-signalled').touch())\n"
    "time.sleep(120)\n"
)


def test_processes_started_before_the_cluster_are_neither_signalled_nor_reaped(
    tmp_path: Path, workers: list[Worker]
) -> None:
    project = Project(tmp_path / "project", extra_settings_code=PROCESSES_BEFORE_THE_CLUSTER)
    project.migrate()
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    [sidecar] = [
        child
        for child in psutil.Process(worker.pid).children()
        if "sidecar-signalled" in _cmdline(child)
    ]
    worker.wait_for_output("short-lived child exited with", timeout=STOP_WAIT)
    assert "short-lived child exited with 7" in worker.output()
    signalled = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert time.monotonic() - signalled < KILL_GRACE, "the stop waited out its kill grace"
    assert sidecar.is_running()
    assert not (project.root / "sidecar-signalled").exists()
    sidecar.kill()


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # e.g. the short-lived child, a zombie until its parent waits
        return ""


FORKSERVER = 'import multiprocessing\nmultiprocessing.set_start_method("forkserver", force=True)\n'


@pytest.mark.parametrize("whole_group", [False, True], ids=["main-only", "every-process"])
def test_stop_under_the_forkserver_start_method(
    tmp_path: Path, workers: list[Worker], whole_group: bool
) -> None:
    # Python 3.14's default on Linux. Django-Q2's modules then start multiprocessing's resource
    # tracker in the main process, which ignores SIGTERM and exits once the main process has.
    project = Project(tmp_path / "project", extra_settings_code=FORKSERVER)
    project.migrate()
    [task] = project.enqueue("add", 1, 2)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    assert project.wait_for_results([task], worker=worker)[task]["result"] == 3
    [tracker] = filter(is_resource_tracker, psutil.Process(worker.pid).children())
    signalled = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT, whole_group=whole_group) == 0
    assert time.monotonic() - signalled < KILL_GRACE, "the stop waited out its kill grace"
    tracker.wait(timeout=STOP_WAIT)
    for noise in ("Traceback", "Exception ignored", "leaked", "resource_tracker"):
        assert noise not in worker.output()


def test_a_wake_up_after_the_runner_is_done_is_ignored() -> None:
    # The helper thread that waits for the sentinel's start may return once the runner is done.
    wakeup = Wakeup()
    wakeup.open()
    wakeup.wake()
    started = time.monotonic()
    wakeup.wait(STOP_WAIT * 2)
    assert time.monotonic() - started < STOP_WAIT, "wake() did not wake the wait"
    wakeup.close()
    wakeup.wake()
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL


def test_a_process_that_is_gone_does_not_run() -> None:
    child = subprocess.Popen([sys.executable, "-c", ""])
    process = psutil.Process(child.pid)
    child.wait()
    assert not _running(process)
