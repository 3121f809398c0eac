"""End to end: the heartbeat file and the probe against real clusters, brokers and signals."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.harness import REPO, WORKER_COMMAND, Project, Worker, q_cluster_for
from tests.project_base import SECRET_KEY
from tests.services import Postgres, Server, free_port, port_open, require_binary, wait_until

INTERVAL = 1
HEALTH_DOCS = REPO / "docs" / "health.md"


def health_project(project: Project, **entry: Any) -> Path:
    path = project.root / "worker.health"
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {
            "BACKEND": "djangoq2",
            "HEALTH_FILE": str(path),
            "HEALTH_INTERVAL": INTERVAL,
            **entry,
        }
    }
    project.write()
    return path


def probe(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prodserver_djangoq2.probe", str(path), *options],
        capture_output=True,
        text=True,
        timeout=30,
    )


def state(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until ``condition`` holds; return how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


def healthy(path: Path, *options: str) -> bool:
    return probe(path, *options).returncode == 0


def start(project: Project, workers: list[Worker], path: Path) -> Worker:
    worker = project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    wait_for(lambda: healthy(path, "--ready"), 10 * INTERVAL, "a healthy, ready worker")
    # The sentinel's first rounds come before its processes exist.
    wait_for(lambda: role_pids(path, "pusher") != [], 10 * INTERVAL, "the cluster's processes")
    return worker


def role_pids(path: Path, role: str) -> list[int]:
    return [p["pid"] for p in state(path)["processes"] if p["role"] == role]


@pytest.fixture(params=["orm", "redis"])
def broker_project(request: pytest.FixtureRequest, project: Project) -> Project:
    if request.param == "redis":
        server: Server = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_db")
        url = f"redis://{server.host}:{server.port}/0"
        project.settings["Q_CLUSTER"] = q_cluster_for(redis=url)
    return project


def test_the_heartbeat_says_what_the_cluster_does(
    broker_project: Project, workers: list[Worker]
) -> None:
    path = health_project(broker_project)
    worker = start(broker_project, workers, path)
    (task_id,) = broker_project.enqueue("add", 1, 2)
    broker_project.wait_for_results([task_id], worker=worker)
    # The broker is polled on its own thread: its count may predate the task's delivery.
    wait_for(
        lambda: (
            (state(path)["last_task_finished"] or {}).get("id") == task_id
            and state(path)["broker"]["queued"] == 0
        ),
        5 * INTERVAL,
        "the finished task and an empty queue in the heartbeat",
    )
    seen = state(path)
    assert seen["pid"] == worker.pid
    assert (seen["process"], seen["cluster"], seen["state"]) == ("worker", "tests", "running")
    assert seen["last_task_started"]["id"] == task_id
    assert seen["sentinel"]["alive"] is True
    cluster = {child.pid for child in worker.descendants()}
    assert seen["sentinel"]["pid"] in cluster
    roles = sorted(process["role"] for process in seen["processes"])
    assert roles == ["monitor", "pusher", "worker", "worker"]
    assert all(process["alive"] and process["pid"] in cluster for process in seen["processes"])
    assert seen["workers"] == {"busy": 0, "idle": 2}
    assert seen["broker"]["queued"] == 0
    text = path.read_text()
    assert SECRET_KEY not in text
    assert "redis://" not in text
    assert not list(path.parent.glob(".worker.health.*"))  # no temporary file left
    # The file is rewritten every interval.
    written = seen["written_at"]
    wait_for(lambda: state(path)["written_at"] > written, 3 * INTERVAL, "a new heartbeat")
    assert worker.stop(signal.SIGTERM) == 0
    assert state(path)["state"] == "stopped"
    stopped = probe(path)
    assert (stopped.returncode, stopped.stdout) == (1, "unhealthy: the worker 'worker' stopped\n")


def test_a_stopped_sentinel_fails_liveness_until_it_continues(
    broker_project: Project, workers: list[Worker]
) -> None:
    project = broker_project
    path = health_project(project)
    worker = start(project, workers, path)
    sentinel = state(path)["sentinel"]["pid"]
    os.kill(sentinel, signal.SIGSTOP)
    try:
        took = wait_for(lambda: not healthy(path), 3 * INTERVAL + 10, "a failing probe")
        print(f"probe failed {took:.1f} s after SIGSTOP")
        assert "it is stopped or stuck" in probe(path).stdout
    finally:
        os.kill(sentinel, signal.SIGCONT)
    wait_for(lambda: healthy(path), 3 * INTERVAL + 3, "a healthy probe again")
    assert worker.stop(signal.SIGTERM) == 0


def test_a_stalled_cluster_fails_liveness(
    broker_project: Project, workers: list[Worker], request: pytest.FixtureRequest
) -> None:
    project = broker_project
    if "orm" in project.settings["Q_CLUSTER"]:
        # A pusher stopped inside a SQLite transaction would hold the whole file's lock.
        postgres: Postgres = request.getfixturevalue("postgres_server")
        name = f"health_{os.getpid()}_{time.monotonic_ns()}"
        project.settings["DATABASES"] = {"default": postgres.create_database(name)}
        project.write()
        project.migrate()
    stall_after = 3
    path = health_project(project, STALL_AFTER=stall_after)
    worker = start(project, workers, path)
    (pusher,) = role_pids(path, "pusher")
    os.kill(pusher, signal.SIGSTOP)
    try:
        ids = project.enqueue("noop", count=20)
        enqueued = time.monotonic()
        wait_for(lambda: not healthy(path), stall_after + INTERVAL + 15, "a stall")
        print(f"stall reported {time.monotonic() - enqueued:.1f} s after the tasks")
        verdict = probe(path).stdout
        assert re.match(r"unhealthy: stalled: \d+ tasks wait, 2 workers are idle", verdict)
    finally:
        os.kill(pusher, signal.SIGCONT)
    project.wait_for_results(ids, worker=worker)
    wait_for(lambda: healthy(path), 3 * INTERVAL + 3, "a healthy probe again")
    assert worker.stop(signal.SIGTERM) == 0


def never_unhealthy(path: Path, seconds: float, *options: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = probe(path, *options)
        assert result.returncode == 0, result.stdout
        time.sleep(0.5)


def test_long_tasks_with_a_queue_are_no_stall(project: Project, workers: list[Worker]) -> None:
    timeout = 10
    project.settings["Q_CLUSTER"] = {**project.settings["Q_CLUSTER"], "timeout": timeout}
    path = health_project(project, STALL_AFTER=timeout)
    worker = start(project, workers, path)
    ids = project.enqueue("sleep", 0.9 * timeout, count=5)  # 2 run, 3 wait
    wait_for(lambda: state(path)["workers"]["busy"] == 2, 10, "busy workers")
    never_unhealthy(path, 1.5 * timeout)
    project.wait_for_results(ids, worker=worker, timeout=60)
    assert worker.stop(signal.SIGTERM) == 0


def test_an_idle_cluster_is_no_stall(project: Project, workers: list[Worker]) -> None:
    path = health_project(project, STALL_AFTER=1)
    worker = start(project, workers, path)
    never_unhealthy(path, 10, "--ready")
    assert worker.stop(signal.SIGTERM) == 0


@pytest.fixture
def own_redis() -> Iterator[Callable[[bool], None]]:
    """A redis-server this test can stop and start again on the same port."""
    binary = require_binary("redis-server", "apt-get install redis-server")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def switch(on: bool) -> None:
        if on:
            processes.append(
                subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_until(lambda: port_open(port), "redis-server")
        else:
            processes[-1].kill()
            processes[-1].wait()

    switch(True)
    switch.port = port  # type: ignore[attr-defined]
    yield switch
    for process in processes:
        process.kill()
        process.wait()


def test_a_broker_outage_fails_only_readiness(
    project: Project, workers: list[Worker], own_redis: Callable[[bool], None]
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"  # type: ignore[attr-defined]
    project.settings["Q_CLUSTER"] = q_cluster_for(redis=url)
    path = health_project(project, STALL_AFTER=1)
    worker = start(project, workers, path)
    own_redis(False)
    took = wait_for(lambda: not healthy(path, "--ready"), 3 * INTERVAL + 5, "not ready")
    print(f"not ready {took:.1f} s after the broker went away")
    assert probe(path, "--ready").stdout.startswith("not ready: the broker last answered")
    never_unhealthy(path, 5)
    own_redis(True)
    wait_for(lambda: healthy(path, "--ready"), 3 * INTERVAL + 10, "ready again")
    assert worker.stop(signal.SIGTERM) == 0


def test_each_process_has_its_own_file(project: Project, workers: list[Worker]) -> None:
    files = {name: project.root / f"{name}.health" for name in ("worker-a", "worker-b")}
    project.settings["PRODUCTION_PROCESSES"] = {
        name: {"BACKEND": "djangoq2", "HEALTH_FILE": str(path), "HEALTH_INTERVAL": INTERVAL}
        for name, path in files.items()
    }
    project.write()
    started = {name: project.start(WORKER_COMMAND, name) for name in files}
    workers.extend(started.values())
    for name, path in files.items():
        wait_for(lambda path=path: healthy(path), 30, f"{name} healthy")  # type: ignore[misc]
        assert state(path)["process"] == name
    started["worker-a"].kill()
    wait_for(lambda: not healthy(files["worker-a"]), 5, "worker-a unhealthy")
    assert "is gone" in probe(files["worker-a"]).stdout
    never_unhealthy(files["worker-b"], 3)
    assert started["worker-b"].stop(signal.SIGTERM) == 0


def docs_block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", HEALTH_DOCS.read_text(), re.DOTALL)
    assert match, language
    return match.group(1)


def test_the_documented_probes_run_against_a_worker(
    project: Project, workers: list[Worker], tmp_path: Path
) -> None:
    import kubernetes_validate
    import yaml
    from dockerfile_parse import DockerfileParser

    # The page's settings, with its file path moved into this test's folder.
    documented_path = "/tmp/worker.health"
    path = health_project(project)
    probes = yaml.safe_load(docs_block("yaml"))
    container = {"name": "worker", "image": "registry.example.com/mysite:1.0.0", **probes}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker"},
        "spec": {
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [container]},
            },
        },
    }
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.13-slim\n" + docs_block("docker"))
    parsed = DockerfileParser(str(dockerfile))
    [healthcheck] = [i["value"] for i in parsed.structure if i["instruction"] == "HEALTHCHECK"]
    docker_command = json.loads(healthcheck.split("CMD", 1)[1])
    console = docs_block("console").splitlines()
    shown = shlex.split(console[0].removeprefix("$ "))
    assert console[1:] == ["$ echo $?", "0"]  # it prints nothing when healthy
    commands = [probes[kind]["exec"]["command"] for kind in probes] + [docker_command, shown]
    assert all(command[:3] == ["python", "-m", "prodserver_djangoq2.probe"] for command in commands)

    def run(command: list[str]) -> int:
        argv = [sys.executable, *[str(path) if a == documented_path else a for a in command[1:]]]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode

    assert [run(command) for command in commands] == [1] * len(commands)  # nothing runs yet
    worker = start(project, workers, path)
    assert [run(command) for command in commands] == [0] * len(commands)
    assert worker.stop(signal.SIGTERM) == 0
    assert [run(command) for command in commands] == [1] * len(commands)


def test_the_probe_leaves_no_process_behind(project: Project, workers: list[Worker]) -> None:
    path = health_project(project)
    worker = start(project, workers, path)
    before = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
    for _ in range(5):
        assert healthy(path)
    assert {p.pid for p in psutil.Process(worker.pid).children(recursive=True)} == before
    assert worker.stop(signal.SIGTERM) == 0
