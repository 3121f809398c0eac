"""The probe on its own: its verdicts on heartbeat files, as an orchestrator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from prodserver_djangoq2 import probe
from tests.harness import REPO

NOW = 1_000_000.0


def healthy(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "version": 1,
        "pid": os.getpid(),
        "process": "worker",
        "cluster": "site",
        "state": "running",
        "written_at": NOW - 1,
        "interval": 5,
        "stall_after": 60,
        "running_since": NOW - 600,
        "sentinel": {"pid": os.getpid(), "alive": True, "heartbeat_at": NOW - 1},
        "processes": [{"role": "worker", "pid": 7, "alive": True}],
        "workers": {"busy": 0, "idle": 2},
        "last_task_started": {"id": "a" * 32, "at": NOW - 30},
        "last_task_finished": {"id": "a" * 32, "at": NOW - 29},
        "broker": {"queued": 0, "contact_at": NOW - 2},
    }
    return {**state, **changes}


def run_probe(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prodserver_djangoq2.probe", str(path), *options],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"state": "stopped"}, "the worker 'worker' stopped"),
        ({"pid": 2**22 + 12345}, "process 4206649 is gone"),
        ({"written_at": NOW - 16}, "last written 16 s ago"),
        ({"sentinel": {"pid": 9, "alive": False, "heartbeat_at": NOW}}, "sentinel (pid 9) is dead"),
        ({"sentinel": {"pid": 9, "alive": True, "heartbeat_at": NOW - 20}}, "stopped or stuck"),
        ({"sentinel": {"pid": 9, "alive": True, "heartbeat_at": None}}, "rounds never"),
        ({"processes": [{"role": "pusher", "pid": 8, "alive": False}]}, "pusher (pid 8) is dead"),
        (
            {"broker": {"queued": 20, "contact_at": NOW}, "last_task_started": {"at": NOW - 90}},
            "stalled: 20 tasks wait, 2 workers are idle and no task has started for 90 s",
        ),
        ({"interval": "x"}, "malformed"),
    ],
)
def test_unhealthy_states(changes: dict[str, Any], reason: str) -> None:
    verdict = probe.judge(healthy(**changes), NOW)
    assert verdict is not None
    assert reason in verdict


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"state": "starting", "sentinel": {"pid": None, "alive": False, "heartbeat_at": None}},
        # Busy: tasks wait because every worker runs one.
        {"broker": {"queued": 20, "contact_at": NOW}, "workers": {"busy": 2, "idle": 0}},
        # A task started recently.
        {
            "broker": {"queued": 20, "contact_at": NOW},
            "last_task_started": {"id": "b", "at": NOW - 5},
        },
        # Idle for long with nothing queued.
        {"last_task_started": None, "running_since": NOW - 100_000},
        # The broker is down: only readiness fails, and stale numbers do not make a stall.
        {"broker": {"queued": 20, "contact_at": NOW - 600}},
        {"broker": {"queued": None, "contact_at": None}},
    ],
)
def test_healthy_states(changes: dict[str, Any]) -> None:
    assert probe.judge(healthy(**changes), NOW) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"broker": {"queued": 0, "contact_at": NOW - 600}}, "the broker last answered 600 s ago"),
        ({"broker": {"queued": None, "contact_at": None}}, "the broker last answered never"),
        ({"state": "starting"}, "the cluster is starting"),
    ],
)
def test_not_ready(changes: dict[str, Any], reason: str) -> None:
    assert probe.judge(healthy(**changes), NOW) is None
    assert probe.judge(healthy(**changes), NOW, ready=True) == reason


def test_the_probe_exits_0_when_healthy(tmp_path: Path) -> None:
    path = tmp_path / "worker.health"
    path.write_text(json.dumps(healthy(written_at=time.time())))
    now = time.time()
    path.write_text(
        json.dumps(
            healthy(
                written_at=now,
                sentinel={"pid": 1, "alive": True, "heartbeat_at": now},
                broker={"queued": 0, "contact_at": now},
            )
        )
    )
    result = run_probe(path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert run_probe(path, "--ready").returncode == 0
    printed = json.loads(run_probe(path, "--json").stdout)
    assert printed["healthy"] is True
    assert printed["process"] == "worker"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no heartbeat file at"),
        ("{garbled", "is not a heartbeat file (not JSON)"),
        ("[1, 2]", "is not a heartbeat file (no written_at)"),
        ("", "is not a heartbeat file (not JSON)"),
    ],
)
def test_a_missing_or_garbled_file_is_one_line(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "worker.health"
    if content is not None:
        path.write_text(content)
    result = run_probe(path)
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: ")
    assert reason in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    result = run_probe(tmp_path)  # a directory
    assert result.returncode == 1
    assert result.stdout.startswith(f"unhealthy: cannot read {tmp_path}")


def test_a_stale_file_fails_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "worker.health"
    path.write_text(json.dumps(healthy(written_at=time.time() - 60)))
    result = run_probe(path)
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: the heartbeat file was last written 6")


def test_the_probe_imports_neither_django_nor_the_project(tmp_path: Path) -> None:
    path = tmp_path / "worker.health"
    path.write_text(json.dumps(healthy(written_at=time.time())))
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['probe', {str(path)!r}]\n"
        "try:\n"
        "    runpy.run_module('prodserver_djangoq2.probe', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('django', 'tests'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "DJANGO_SETTINGS_MODULE": "x"},
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


@pytest.mark.parametrize(
    ("arguments", "status"), [([], 2), (["a", "b"], 2), (["f", "--live"], 2), (["--help"], 0)]
)
def test_usage(tmp_path: Path, arguments: list[str], status: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prodserver_djangoq2.probe", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == status
    assert result.stdout.startswith(probe.USAGE)
