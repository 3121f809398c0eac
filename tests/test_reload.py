"""End to end: SIGHUP reloads the worker.

The tasks in progress finish (within STOP_TIMEOUT, as for a stop), the worker's command runs
again in the same PID, with the code and settings now on disk, and a new cluster starts;
nothing of the old cluster is left.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django_q.humanhash import humanize

from tests.harness import (
    ORM_Q_CLUSTER,
    REPO,
    Project,
    Worker,
    is_resource_tracker,
    q_cluster_for,
)
from tests.test_reaping import zombie_children
from tests.test_stopping import (
    FORKSERVER,
    STOP_WAIT,
    alive,
    cluster_of,
    make_project,
    sentinel_of,
    stored,
    wait_until_processing,
)

# From the SIGHUP to the new cluster running, with a task of 5 s to finish first.
# Typically under 10 s; the bound leaves room for a loaded CI machine.
RELOAD_WAIT = 30.0
RELOADS = 3
SOAK_RELOADS = 20
RELOADED = "Reloading: running the worker's command again"


def since_last_reload(worker: Worker) -> str:
    """Return what the command has logged since it last ran again."""
    return worker.output().rsplit(RELOADED, 1)[-1]


def wait_for_reloads(worker: Worker, count: int, timeout: float = RELOAD_WAIT) -> None:
    """Wait until the worker has reloaded ``count`` times and its new cluster is running."""
    deadline = time.monotonic() + timeout
    while worker.output().count(RELOADED) < count or "running." not in since_last_reload(worker):
        if worker.process.poll() is not None:
            raise AssertionError(f"exited with {worker.process.returncode}:\n{worker.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"reload {count} not running in {timeout}s:\n{worker.output()}")
        time.sleep(0.05)


def one_cluster(worker: Worker, task_workers: int) -> list[psutil.Process]:
    """Return the worker's descendants, checking that they are one running cluster."""
    sentinel = sentinel_of(worker)
    processes = cluster_of(worker)
    # The sentinel, its task workers, the monitor and the pusher; nothing else, no zombie.
    assert len(processes) == 1 + task_workers + 2, processes
    assert all(process.status() != psutil.STATUS_ZOMBIE for process in processes)
    assert all(sentinel in process.parents() for process in processes if process != sentinel)
    return processes


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_sighup_finishes_the_task_and_runs_the_command_again_in_the_same_pid(
    tmp_path: Path, workers: list[Worker], broker: str, request: pytest.FixtureRequest
) -> None:
    q_cluster: dict[str, object] = dict(ORM_Q_CLUSTER)
    if broker == "redis":
        server = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_db")
        q_cluster = q_cluster_for(redis=f"redis://{server.host}:{server.port}/0")
    project = make_project(tmp_path / "project", q_cluster)
    [task] = project.enqueue("sleep", 5)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    old_cluster = cluster_of(worker)
    command = psutil.Process(worker.pid).cmdline()
    # The settings on disk change; the new cluster runs with them.
    project.settings["Q_CLUSTER"] = {**q_cluster, "workers": 3}
    project.write()
    os.kill(worker.pid, signal.SIGHUP)
    wait_for_reloads(worker, 1)
    assert stored(project)[task]["success"]
    assert not alive(old_cluster)
    assert psutil.Process(worker.pid).cmdline() == command
    one_cluster(worker, task_workers=3)
    [check] = project.enqueue("cluster_settings")
    assert project.wait_for_results([check], worker=worker)[check]["result"]["workers"] == 3
    assert worker.output().count(f"processing {humanize(task)} ") == 1
    assert "to reload: finishing tasks in progress" in worker.output()
    assert "Traceback" not in worker.output()
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0


def test_repeated_sighups_leave_one_cluster_and_no_process_behind(
    project: Project, workers: list[Worker]
) -> None:
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    seen = one_cluster(worker, ORM_Q_CLUSTER["workers"])
    for count in range(1, RELOADS + 1):
        os.kill(worker.pid, signal.SIGHUP)
        wait_for_reloads(worker, count)
        current = one_cluster(worker, ORM_Q_CLUSTER["workers"])
        assert not alive([process for process in seen if process not in current])
        seen += current
    [task] = project.enqueue("add", 2, 3)
    assert project.wait_for_results([task], worker=worker)[task]["result"] == 5
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert not alive(seen)


def test_reload_is_bounded_by_stop_timeout_and_the_task_comes_back(
    tmp_path: Path, workers: list[Worker]
) -> None:
    q_cluster = {**ORM_Q_CLUSTER, "timeout": 7, "retry": 8}
    project = make_project(tmp_path / "project", q_cluster, STOP_TIMEOUT=1)
    [task] = project.enqueue("sleep", 6)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    os.kill(worker.pid, signal.SIGHUP)
    wait_for_reloads(worker, 1)
    assert "did not stop in time" in worker.output()
    assert task not in stored(project)
    # The ORM broker delivers it again to the new cluster, `retry` seconds after it was fetched.
    assert project.wait_for_results([task], worker=worker)[task]["success"]
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGHUP, signal.SIGTERM), (signal.SIGTERM, signal.SIGHUP)],
    ids=["stop-during-reload", "reload-during-stop"],
)
def test_a_stop_signal_wins_over_a_reload(
    project: Project, workers: list[Worker], signals: tuple[int, int]
) -> None:
    [task] = project.enqueue("sleep", 3)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    wait_until_processing(worker, task)
    first, second = signals
    os.kill(worker.pid, first)
    worker.wait_for_output("finishing tasks in progress")
    assert worker.stop(second, timeout=STOP_WAIT) == 0
    assert stored(project)[task]["success"]
    assert RELOADED not in worker.output()
    assert worker.output().count("running.") == 1


def test_sighup_while_the_start_waits_for_the_broker_runs_the_command_again(
    tmp_path: Path, workers: list[Worker]
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
        first_ping, _ = server.accept()  # never answered
        with first_ping:
            os.kill(worker.pid, signal.SIGHUP)
            second_ping, _ = server.accept()  # from the command, run again
            with second_ping:
                assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert "Reload signal received before the cluster started." in worker.output()
    assert worker.output().count("Stop signal received before the cluster started.") == 1
    assert "starting." not in worker.output()
    assert "Traceback" not in worker.output()


def test_sighup_to_every_process_is_a_hangup_and_stops_the_worker(
    project: Project, workers: list[Worker]
) -> None:
    # A terminal that hangs up sends SIGHUP to its whole foreground process group.
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    cluster = cluster_of(worker)
    assert worker.stop(signal.SIGHUP, timeout=STOP_WAIT, whole_group=True) == 0
    assert not alive(cluster)
    assert "was ended by a hangup; the worker stops." in worker.output()
    assert RELOADED not in worker.output()


def start_ignoring_sighup(project: Project) -> Worker:
    """Start the worker as ``nohup`` would: with SIGHUP ignored."""
    log = project.root / "nohup.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["nohup", sys.executable, "manage.py", "prodserver", "worker"],
            cwd=project.root,
            env=project.environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Worker(process, log)


def test_a_suite_run_under_nohup_starts_workers_that_reload() -> None:
    # The workers of a suite run under nohup must reload like those of any other run.
    script = (
        "import subprocess, sys\n"
        "from tests.harness import start_children_with_default_hangup\n"
        "start_children_with_default_hangup()\n"
        "status = subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True)\n"
        "sys.stdout.write(status.stdout)\n"
    )
    result = subprocess.run(
        ["nohup", sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    (ignored,) = [
        line.split()[1] for line in result.stdout.splitlines() if line.startswith("SigIgn:")
    ]
    assert not int(ignored, 16) & 1 << (signal.SIGHUP - 1)


def test_sighup_stays_ignored_under_nohup(project: Project, workers: list[Worker]) -> None:
    worker = start_ignoring_sighup(project)
    workers.append(worker)
    worker.wait_for_output("running.")
    cluster = cluster_of(worker)
    for process in [psutil.Process(worker.pid), *cluster]:
        process.send_signal(signal.SIGHUP)
    [task] = project.enqueue("add", 1, 1)
    assert project.wait_for_results([task], worker=worker)[task]["result"] == 2
    assert alive(cluster) == cluster
    assert RELOADED not in worker.output()
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0


def test_reload_under_the_forkserver_start_method_leaves_no_zombie(
    tmp_path: Path, workers: list[Worker]
) -> None:
    # Each command's resource tracker exits once the command has run again; the new one reaps it.
    project = Project(tmp_path / "project", extra_settings_code=FORKSERVER)
    project.migrate()
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    trackers: list[int] = []
    for count in range(1, RELOADS + 1):
        trackers += [
            child.pid
            for child in psutil.Process(worker.pid).children()
            if is_resource_tracker(child)
        ]
        os.kill(worker.pid, signal.SIGHUP)
        wait_for_reloads(worker, count)
    deadline = time.monotonic() + STOP_WAIT
    while (zombies := zombie_children(worker.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not zombies
    assert len(trackers) == RELOADS
    assert not [pid for pid in trackers if psutil.pid_exists(pid)]
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert "Traceback" not in worker.output()


SOAK_Q_CLUSTER = {**ORM_Q_CLUSTER, "timeout": 3, "retry": 4}
PHASES = ("loading", "starting.", "running.")


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_reloads_at_random_moments_leave_one_cluster_and_lose_no_task(
    tmp_path: Path, workers: list[Worker]
) -> None:
    seed = int(os.environ.get("SOAK_SEED", str(time.time_ns() % 2**32)))
    rng = random.Random(seed)
    project = make_project(tmp_path / "project", SOAK_Q_CLUSTER)
    ids = project.enqueue("sleep", 0.1, count=200) + project.enqueue("noop", count=100)
    worker = project.start("prodserver", "worker")
    workers.append(worker)
    seen: list[psutil.Process] = []
    for count in range(1, SOAK_RELOADS + 1):
        # While the command loads again (the signal waits for its handlers), while the
        # cluster starts, or while it runs tasks.
        # The first command has no handler for SIGHUP before Django has loaded.
        phase = rng.choice(PHASES if count > 1 else PHASES[1:])
        if phase != "loading":
            deadline = time.monotonic() + STOP_WAIT
            while phase not in since_last_reload(worker) and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(rng.uniform(0, 1))
        seen += cluster_of(worker)
        os.kill(worker.pid, signal.SIGHUP)
        deadline = time.monotonic() + STOP_WAIT
        while worker.output().count(RELOADED) < count:
            assert worker.process.poll() is None, worker.output()
            assert time.monotonic() < deadline, f"seed {seed}: no reload {count}"
            time.sleep(0.02)
    wait_for_reloads(worker, SOAK_RELOADS, timeout=STOP_WAIT)
    current = one_cluster(worker, SOAK_Q_CLUSTER["workers"])
    assert not alive([process for process in seen if process not in current]), f"seed {seed}"
    results = project.wait_for_results(ids, timeout=600, worker=worker)
    assert all(task["success"] for task in results.values())
    assert project.report()["queued"] == 0
    assert worker.stop(signal.SIGTERM, timeout=STOP_WAIT) == 0
    assert not alive(seen + current)
    assert "Traceback" not in worker.output()
