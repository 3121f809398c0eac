"""Every output quoted in docs/troubleshooting.md is what the command prints today.

Each section of the page has a scenario here: the settings (and broker) that produce the
failure. The test runs the quoted commands in a throwaway project and compares their output
with the quoted block (``tests/doc_output.py`` says what is normalised). When a message
changes, the failure shows the block to paste into the page.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import doc_output
from tests.harness import ORM_Q_CLUSTER, PRODSERVER_MAJOR, REPO, Project, Worker
from tests.services import Server, free_port

PAGE = REPO / "docs" / "troubleshooting.md"
Q_CLUSTER = {**ORM_Q_CLUSTER, "name": "mysite"}
# Django-Q2's own log format, as a project without a LOGGING setting shows it.
DEFAULT_LOGGING = "del LOGGING\n"
# Hides a module from the worker's interpreter as if it were not installed.
HIDE_MODULE = """\
import sys

HIDDEN = {hidden!r}


class Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)


sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
"""
Action = Callable[[Project, Worker], None]


def stop(project: Project, worker: Worker) -> None:
    assert worker.stop() == 0, worker.output()


def stop_every_process_while_a_task_runs(project: Project, worker: Worker) -> None:
    project.enqueue("sleep", 30)
    worker.wait_for_output("processing")
    assert worker.stop(whole_group=True) == 0, worker.output()


def signal_twice_while_a_task_runs(project: Project, worker: Worker) -> None:
    project.enqueue("sleep", 30)
    worker.wait_for_output("processing")
    os.kill(worker.pid, signal.SIGINT)
    worker.wait_for_output("finishing tasks in progress")
    os.kill(worker.pid, signal.SIGINT)
    assert worker.process.wait(timeout=30) == 0, worker.output()


@dataclass
class Scenario:
    """The project in which a section's commands print the quoted output."""

    settings: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    migrate: bool = True
    hidden_modules: tuple[str, ...] = ()
    # What happens once a started worker runs: by default one SIGTERM.
    action: Action = stop
    redis: bool = False


def without_app(app: str) -> str:
    return f"INSTALLED_APPS = [a for a in INSTALLED_APPS if a != {app!r}]\n"


HIGH = {"worker-high": {"BACKEND": "djangoq2", "ARGS": {"name": "hihg-priority"}}}
ALT = {**Q_CLUSTER, "ALT_CLUSTERS": {"high-priority": {"workers": 1}}}
SCENARIOS: dict[str, list[Scenario]] = {
    "The app is not in INSTALLED_APPS": [
        Scenario(code=without_app("prodserver_djangoq2")),
        Scenario(code=without_app("django_q"), migrate=False),
    ],
    "A typo in BACKEND": [
        Scenario(settings={"PRODUCTION_PROCESSES": {"worker": {"BACKEND": "djangoq"}}})
    ],
    "Migrations missing": [Scenario(migrate=False)],
    "The broker is down": [Scenario(redis=True)],
    "Wrong cluster name": [Scenario(settings={"PRODUCTION_PROCESSES": HIGH, "Q_CLUSTER": ALT})],
    'SQLite: "database is locked"': [
        Scenario(
            settings={"Q_CLUSTER": {**Q_CLUSTER, "workers": 4}},
            code="DATABASES['default']['OPTIONS'] = {}\n",
        )
    ],
    "Tasks lost when every process gets SIGTERM, with Redis": [
        Scenario(redis=True, action=stop_every_process_while_a_task_runs)
    ],
    "django-q2 is not installed": [Scenario(hidden_modules=("django_q",), migrate=False)],
    "Q_CLUSTER is missing": [Scenario(code="del Q_CLUSTER\n")],
    "retry is not above timeout": [
        Scenario(settings={"Q_CLUSTER": {**Q_CLUSTER, "timeout": 120, "retry": 60}})
    ],
    "An unknown option in ARGS": [
        Scenario(
            settings={
                "PRODUCTION_PROCESSES": {
                    "worker": {"BACKEND": "djangoq2", "ARGS": {"run_once": True}}
                }
            }
        )
    ],
    "`--cluster-name` from django-prodserver's documentation": [
        Scenario(
            settings={
                "PRODUCTION_PROCESSES": {
                    "worker-high": {
                        "BACKEND": "djangoq2",
                        "ARGS": "--cluster-name high-priority",
                    }
                },
                "Q_CLUSTER": ALT,
            }
        )
    ],
    "`prodserver worker` prints a DeprecationWarning": [Scenario(), Scenario()],
    "A second stop signal cuts tasks short": [Scenario(action=signal_twice_while_a_task_runs)],
    "qinfo shows no cluster": [
        Scenario(
            settings={"Q_CLUSTER": {**Q_CLUSTER, "workers": 1}},
            code="del CACHES\n",
        ),
    ],
}
# Sections whose commands exist only on django-prodserver 3.
PRODSERVER_3_ONLY = {"`prodserver worker` prints a DeprecationWarning"}


def sections() -> dict[str, list[doc_output.Block]]:
    found: dict[str, list[doc_output.Block]] = {}
    for block in doc_output.blocks(PAGE):
        if block.language == "console":
            found.setdefault(block.section, []).append(block)
    return found


def test_every_quoted_output_has_a_scenario() -> None:
    quoted = {title: len(blocks) for title, blocks in sections().items()}
    scenarios = {title: len(cases) for title, cases in SCENARIOS.items()}
    assert quoted == scenarios


def as_run_here(command: str) -> str:
    """The command on this django-prodserver (the page shows version 3's)."""
    if PRODSERVER_MAJOR < 3:
        return command.replace("manage.py worker ", "manage.py prodserver ")
    return command


def comparable(text: str) -> str:
    # django-prodserver 2 announces the process in other words; the messages are the same.
    if PRODSERVER_MAJOR < 3:
        return "\n".join(line for line in text.splitlines() if not line.startswith("Starting "))
    return text


class Run:
    """A section's project and the commands it runs."""

    def __init__(self, root: Path, scenario: Scenario, redis_port: int | None) -> None:
        settings = {"Q_CLUSTER": dict(Q_CLUSTER), **scenario.settings}
        if redis_port is not None:
            broker = {key: value for key, value in settings["Q_CLUSTER"].items() if key != "orm"}
            settings["Q_CLUSTER"] = {**broker, "redis": f"redis://127.0.0.1:{redis_port}/0"}
        self.project = Project(root, settings=settings, extra_settings_code=DEFAULT_LOGGING)
        self.scenario = scenario
        self.env: dict[str, str] = {}
        if scenario.hidden_modules:
            hide = root / "hide"
            hide.mkdir()
            (hide / "sitecustomize.py").write_text(
                HIDE_MODULE.format(hidden=scenario.hidden_modules)
            )
            self.env["PYTHONPATH"] = str(hide)
        if scenario.migrate:
            result = self.project.manage("migrate", "--skip-checks", "--verbosity=0")
            assert result.returncode == 0, result.stderr
            assert self.project.manage("createcachetable").returncode == 0
        # The broken settings come after the migration, which a broken project cannot run.
        self.project.extra_settings_code = DEFAULT_LOGGING + scenario.code
        self.project.write()
        self.started: list[tuple[str, str, Worker]] = []

    def run(self, command: str, quoted: str) -> str | None:
        """Run ``command``; return its output, or None for a worker that keeps running."""
        words = shlex.split(command)
        assert words[:2] == ["python", "manage.py"], command
        log = self.project.root / f"command-{time.monotonic_ns()}.log"
        with log.open("w") as handle:
            process = subprocess.Popen(
                [sys.executable, "manage.py", *words[2:]],
                cwd=self.project.root,
                env=self.project.environment(self.env),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        worker = Worker(process, log)
        deadline = time.monotonic() + 60
        while process.poll() is None and "running." not in worker.output():
            if time.monotonic() > deadline:
                worker.kill()
                raise AssertionError(f"`{command}` neither ran nor exited:\n{worker.output()}")
            time.sleep(0.1)
        if process.poll() is None:
            self.started.append((command, quoted, worker))
            return None
        return worker.output()

    def finish(self) -> list[tuple[str, str, str]]:
        """Run the scenario's action on the started workers; return their outputs."""
        outputs = []
        for command, quoted, worker in self.started:
            try:
                self.scenario.action(self.project, worker)
            finally:
                if worker.process.poll() is None:
                    worker.kill()
            outputs.append((command, quoted, worker.output()))
        return outputs


def failure(block: doc_output.Block, command: str, printed: str) -> str:
    return (
        f"{block.where} (section {block.section!r}): `{command}` no longer prints the quoted "
        f"output. Update the block at {block.where} to:\n\n```console\n$ {command}\n"
        f"{printed.rstrip()}\n```\n(keep '...' lines for what the page leaves out; times, "
        "ids, PIDs and ports may stay as they are.)"
    )


CASES = [
    (title, index, block)
    for title, blocks in sections().items()
    for index, block in enumerate(blocks)
]


@pytest.mark.parametrize(
    ("title", "index", "block"), CASES, ids=[f"{b.section}-{i}" for _, i, b in CASES]
)
def test_quoted_output_is_what_the_command_prints(
    tmp_path: Path, request: pytest.FixtureRequest, title: str, index: int, block: doc_output.Block
) -> None:
    scenario = SCENARIOS[title][index]
    redis_port = None
    if scenario.redis:
        # A Redis that answers, or (for "the broker is down") a port nobody listens on.
        if scenario.action is stop:
            redis_port = free_port()
        else:
            server: Server = request.getfixturevalue("redis_server")
            request.getfixturevalue("redis_db")
            redis_port = server.port
    run = Run(tmp_path / "project", scenario, redis_port)
    pairs = doc_output.console(block.code)
    if title in PRODSERVER_3_ONLY and PRODSERVER_MAJOR < 3:
        # django-prodserver 2: the command exists and warns about nothing.
        command = "python manage.py prodserver worker"
        printed = run.run(command, "") or ""
        outputs = run.finish()
        assert "DeprecationWarning" not in printed + "".join(out for *_, out in outputs)
        return
    results = []
    for command, quoted in pairs:
        printed = run.run(as_run_here(command), quoted)
        if printed is not None:
            results.append((command, quoted, printed))
    results += run.finish()
    for command, quoted, printed in results:
        assert doc_output.matches(comparable(quoted), comparable(printed)), failure(
            block, command, printed
        )
