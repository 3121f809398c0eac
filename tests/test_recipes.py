"""The deployment recipes in docs/deployment/files/, each run for real where this machine allows.

- systemd: ``systemd-analyze verify``, then the unit run by a real systemd (a user manager in a
  mount namespace and a cgroup of its own): start, a task done, stop, reload, restart after a
  crash, no restart after a configuration error.
- Procfile: ``honcho start``, a task done, SIGTERM to honcho.
- Dockerfile and Kubernetes manifest: parsed and validated; the commands they run are run as
  PID 1 of a new PID namespace, as a container runtime runs them (no Docker engine here).
- Migration guides: the files they start from, run to show what they do.
"""

from __future__ import annotations

import configparser
import contextlib
import difflib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
import pytest
from django_q.humanhash import humanize

from tests.harness import PRODSERVER_MAJOR, REPO, WORKER_COMMAND, Project, Worker
from tests.services import Server, require_binary, require_module, unavailable

RECIPES = REPO / "docs" / "deployment" / "files"
VENV_BIN = Path(sys.executable).parent
BUILT_IN = "django_prodserver.backends.workers.django_q2.DjangoQ2Worker"
# django-prodserver 2 has the same backend under another path (3 keeps it there, deprecated).
BUILT_IN_2 = "django_prodserver.backends.django_q2.DjangoQ2Worker"
SYSTEMD_DIRS = [Path("/lib/systemd"), Path("/usr/lib/systemd")]
# How long the tests wait for something that takes a few seconds when the machine is idle.
PATIENCE = 60


# Settings, processes, waiting


def on_this_prodserver(text: str) -> str:
    """A recipe's text for the installed django-prodserver (2 has no ``worker`` command)."""
    if PRODSERVER_MAJOR >= 3:
        return text
    return (
        text.replace("manage.py worker worker", "manage.py prodserver worker")
        .replace('"manage.py", "worker", "worker"', '"manage.py", "prodserver", "worker"')
        .replace(BUILT_IN, BUILT_IN_2)
    )


def recipe_settings(name: str = "settings.py") -> dict[str, Any]:
    """Return the settings that a recipe's settings file defines."""
    namespace: dict[str, Any] = {}
    exec(on_this_prodserver((RECIPES / name).read_text()), namespace)
    return {key: value for key, value in namespace.items() if key.isupper()}


def recipe_project(
    root: Path, broker: dict[str, Any] | None = None, settings: str = "settings.py"
) -> Project:
    """A project with a recipe's settings, on the ORM broker or on ``broker``."""
    values = recipe_settings(settings)
    for entry in values.get("PRODUCTION_PROCESSES", {}).values():
        if "HEALTH_FILE" in entry:  # each test project's heartbeat in its own folder
            entry["HEALTH_FILE"] = str(root / Path(entry["HEALTH_FILE"]).name)
    if broker:
        cluster = {key: value for key, value in values["Q_CLUSTER"].items() if key != "orm"}
        values["Q_CLUSTER"] = {**cluster, **broker}
    return Project(root, settings=values)


def with_venv(project: Project) -> dict[str, str]:
    """The environment of a deployment: the virtualenv's ``bin`` first on PATH."""
    return project.environment({"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})


def stop_timeout() -> float:
    """The recipes' worker's STOP_TIMEOUT, by the package's own rule."""
    from prodserver_djangoq2 import process

    values = recipe_settings()
    entry = process.read("worker", values["PRODUCTION_PROCESSES"]["worker"])
    return entry.stop_timeout_for(values["Q_CLUSTER"]["timeout"])


def stop_bound() -> float:
    """The longest a stop of the recipes' worker can take."""
    from prodserver_djangoq2.runner import KILL_GRACE

    # After STOP_TIMEOUT the worker ends what is left: SIGTERM, SIGKILL 5 s later, 5 s more.
    return stop_timeout() + 2 * KILL_GRACE


def wait_until(
    ready: Callable[[], object],
    what: str,
    timeout: float = PATIENCE,
    details: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s\n{details()}")
        time.sleep(0.2)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes that still run (a zombie waiting to be reaped does not)."""
    running = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
    return running


def read(log: Path) -> str:
    """A log's text so far (empty before its process has written to it)."""
    return log.read_text(errors="replace") if log.exists() else ""


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def processing(task_id: str) -> str:
    """The log line's text that says a task worker started ``task_id``."""
    return f"processing {humanize(task_id)} "


def task(project: Project, task_id: str) -> dict[str, Any]:
    (found,) = [t for t in project.report()["tasks"] if t["id"] == task_id]
    return found


@pytest.fixture(params=["orm", "redis"])
def broker(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """No broker setting (the recipes' ORM broker), or a Redis server's."""
    if request.param == "orm":
        return None
    server: Server = request.getfixturevalue("redis_server")
    db: int = request.getfixturevalue("redis_db")
    return {"redis": {"host": server.host, "port": server.port, "db": db}}


# systemd


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((RECIPES / name).read_text())
    return parser


def seconds(value: str) -> float:
    """A systemd time span without units or in seconds (``50``, ``50s``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s?", value.strip())
    assert match, f"not a number of seconds: {value!r}"
    return float(match.group(1))


def install_app(root: Path, unit_name: str, settings: str = "settings.py") -> tuple[str, Project]:
    """Lay out /srv/mysite of a unit under ``root``; return the unit's text for it and the app.

    The unit's paths are rewritten to point there, so that ExecStart's binary exists.
    """
    app = root / "srv" / "mysite"
    project = recipe_project(app, settings=settings)
    # venv/bin/python must find the virtualenv of this test session: the whole prefix.
    (app / "venv").symlink_to(sys.prefix, target_is_directory=True)
    text = on_this_prodserver((RECIPES / unit_name).read_text())
    return text.replace("/srv/mysite", str(app)), project


def test_recipe_settings_pass_the_checks(tmp_path: Path) -> None:
    for name in ("settings.py", "builtin-after.py"):
        result = recipe_project(tmp_path / name, settings=name).manage("check")
        assert result.returncode == 0, result.stderr
        assert "System check identified no issues" in result.stdout, result.stderr


def test_systemd_unit_stops_within_stop_timeout_and_restarts_only_what_can_recover() -> None:
    service = unit("prodserver-worker.service")["Service"]
    assert service["ExecStart"].endswith(" manage.py worker worker")
    assert service["KillMode"] == "mixed"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"].split() == ["2"]
    assert seconds(service["TimeoutStopSec"]) > stop_bound()
    # The comment says where the number comes from: keep it true.
    assert (
        f"STOP_TIMEOUT ({stop_timeout():g} s)"
        in (RECIPES / "prodserver-worker.service").read_text()
    )


@pytest.mark.parametrize("name", ["prodserver-worker.service", "qcluster.service"])
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    analyze = require_binary("systemd-analyze", "apt-get install systemd")
    text, _ = install_app(tmp_path, name)
    (tmp_path / name).write_text(text)
    verify = [analyze, "verify", "--man=no", str(tmp_path / name)]
    result = subprocess.run(verify, capture_output=True, text=True, timeout=PATIENCE)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # verify only warns about a bad value: the empty output above is what proves the unit.
    (tmp_path / name).write_text(text.replace("WorkingDirectory=", "WorkingDirectry="))
    result = subprocess.run(verify, capture_output=True, text=True, timeout=PATIENCE)
    assert "Unknown key 'WorkingDirectry'" in result.stderr


def own_cgroups() -> list[Path]:
    """The directories of this process's cgroups in the hierarchies systemd manages."""
    unified = Path("/sys/fs/cgroup/unified")
    directories = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if controllers == "name=systemd" and Path("/sys/fs/cgroup/systemd").is_dir():
            directories.append(Path("/sys/fs/cgroup/systemd") / path.lstrip("/"))
        elif hierarchy == "0":
            base = unified if (unified / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
            directories.append(base / path.lstrip("/"))
    return directories


# Run as root in a new mount namespace: a manager of its own, in cgroups of its own, that
# believes systemd booted the machine (/run/systemd/system exists in this namespace only).
START_MANAGER = """
set -e
for directory in $CGROUPS; do mkdir "$directory"; echo $$ > "$directory/cgroup.procs"; done
mkdir -p /run/systemd
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/system
exec "$SYSTEMD" --user
"""


class UserManager:
    """A systemd user manager that runs the units in ``root/config/systemd/user``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.units = root / "config" / "systemd" / "user"
        self.units.mkdir(parents=True)
        self.runtime = root / "run"
        self.runtime.mkdir(mode=0o700)
        self.process: subprocess.Popen[bytes] | None = None
        # One name in every hierarchy: systemd finds its cgroup by the unified one's path.
        name = f"prodserver-recipes-{time.monotonic_ns()}"
        self.cgroups = [directory / name for directory in own_cgroups()]
        # The units inherit the manager's environment: give it only what a system has.
        self.environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(root),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(root / "config"),
        }
        # systemctl does nothing in a chroot (tools/matrix.py's lines) unless told to.
        if "SYSTEMD_IGNORE_CHROOT" in os.environ:
            self.environment["SYSTEMD_IGNORE_CHROOT"] = os.environ["SYSTEMD_IGNORE_CHROOT"]

    def start(self) -> None:
        systemd = require_binary("systemd", "apt-get install systemd", SYSTEMD_DIRS)
        unshare = require_binary("unshare", "apt-get install util-linux")
        if os.geteuid() != 0:
            unavailable("running systemd for a test needs root (a mount namespace, cgroups)")
        missing = [str(c.parent) for c in self.cgroups if not c.parent.is_dir()]
        if missing or not self.cgroups:
            unavailable(f"systemd needs the cgroup file system; missing: {missing or 'all'}")
        environment = {
            **self.environment,
            "SYSTEMD": systemd,
            "CGROUPS": " ".join(map(str, self.cgroups)),
        }
        with (self.root / "manager.log").open("w") as log:
            self.process = subprocess.Popen(
                [unshare, "--mount", "--propagation", "private", "sh", "-c", START_MANAGER],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(
            lambda: self.process.poll() is not None or self.systemctl("show").returncode == 0,
            "the systemd user manager's start",
        )
        assert self.process.poll() is None, (self.root / "manager.log").read_text()

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()  # the manager stops its units, then exits
            try:
                self.process.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for cgroup in filter(Path.is_dir, self.cgroups):
            for directory in sorted(cgroup.rglob("*"), reverse=True):
                if directory.is_dir():
                    directory.rmdir()
            cgroup.rmdir()

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["systemctl", "--user", *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def show(self, name: str) -> dict[str, str]:
        result = self.systemctl("show", name)
        assert result.returncode == 0, result.stderr
        return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)

    def install(self, name: str, text: str, project: Project, log: Path, extra: str = "") -> None:
        """Install unit ``name`` with what only this test needs in a drop-in."""
        (self.units / name).write_text(text)
        drop_in = self.units / f"{name}.d"
        drop_in.mkdir()
        python_path = os.pathsep.join([str(project.root), str(REPO)])
        (drop_in / "test.conf").write_text(
            "[Service]\n"
            # The recipe's account does not exist here: the worker runs as the manager's user.
            "User=\nGroup=\n"
            f"Environment=PYTHONPATH={python_path}\n"
            f"StandardOutput=append:{log}\nStandardError=inherit\n{extra}"
        )
        result = self.systemctl("daemon-reload")
        assert result.returncode == 0, result.stderr


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    require_binary("systemctl", "apt-get install systemd")
    started = UserManager(tmp_path / "systemd")
    try:
        started.start()
        yield started
    finally:
        started.close()


def sentinel_of(main_pid: int) -> psutil.Process:
    """The cluster's sentinel: the worker's child that has children of its own."""
    (sentinel,) = [c for c in psutil.Process(main_pid).children() if c.children()]
    return sentinel


def test_systemd_unit_runs_under_systemd(tmp_path: Path, manager: UserManager) -> None:
    name = "prodserver-worker.service"
    text, project = install_app(tmp_path, name)
    log = tmp_path / "worker.log"
    manager.install(name, text, project, log)

    def output() -> str:
        return read(log)

    def status() -> str:
        return manager.systemctl("status", name).stdout + output()

    def wait_for_clusters(count: int) -> None:
        ready = lambda: output().count("running.") >= count  # noqa: E731
        wait_until(ready, f"cluster start {count}", details=status)

    # Started before the migrations: status 4, started again every 5 s until they are applied.
    assert manager.systemctl("start", name).returncode == 0
    waiting = lambda: manager.show(name)["SubState"] == "auto-restart"  # noqa: E731
    wait_until(waiting, "the wait to start again", details=status)
    assert manager.show(name)["ExecMainStatus"] == "4"
    assert "Django-Q2's migrations" in output()
    wait_until(lambda: int(manager.show(name)["NRestarts"]) >= 1, "a restart", details=status)
    project.migrate()
    wait_for_clusters(1)

    # A task is done.
    (added,) = project.enqueue("add", 2, 3)
    assert project.wait_for_results([added])[added]["result"] == 5

    # Stop during a task: KillMode=mixed lets the worker finish it, then it exits 0.
    (slow,) = project.enqueue("sleep", 3)
    wait_until(lambda: processing(slow) in output(), "the slow task's start")
    main_pid = int(manager.show(name)["MainPID"])
    processes = [psutil.Process(main_pid), *descendants(main_pid)]
    started = time.monotonic()
    assert manager.systemctl("stop", name).returncode == 0
    assert time.monotonic() - started < seconds(unit(name)["Service"]["TimeoutStopSec"])
    state = manager.show(name)
    assert (state["Result"], state["ExecMainStatus"]) == ("success", "0"), output()
    assert task(project, slow)["success"] is True
    assert alive(processes) == []

    # Reload during a task: the task finishes, a new cluster runs in the same PID.
    assert manager.systemctl("start", name).returncode == 0
    wait_for_clusters(2)
    main_pid = int(manager.show(name)["MainPID"])
    old_cluster = descendants(main_pid)
    (slow,) = project.enqueue("sleep", 3)
    wait_until(lambda: processing(slow) in output(), "the slow task's start")
    assert manager.systemctl("reload", name).returncode == 0
    wait_for_clusters(3)
    assert task(project, slow)["success"] is True
    state = manager.show(name)
    assert (state["ActiveState"], state["MainPID"]) == ("active", str(main_pid))
    assert alive(old_cluster) == []
    (added,) = project.enqueue("add", 1, 1)
    assert project.wait_for_results([added])[added]["result"] == 2

    # The cluster dies: the worker exits 1 and systemd starts it again (RestartSec=5).
    restarts = int(manager.show(name)["NRestarts"])
    sentinel_of(main_pid).kill()
    wait_until(lambda: int(manager.show(name)["NRestarts"]) == restarts + 1, "the restart")
    wait_for_clusters(4)
    assert manager.show(name)["MainPID"] != str(main_pid)
    (added,) = project.enqueue("add", 2, 2)
    assert project.wait_for_results([added])[added]["result"] == 4

    # A configuration error: status 2, and systemd does not start it again.
    assert manager.systemctl("stop", name).returncode == 0
    restarts = manager.show(name)["NRestarts"]
    project.settings["PRODUCTION_PROCESSES"] = {
        "worker": {"BACKEND": "djangoq2", "ARGS": {"workerz": 2}}
    }
    project.write()
    assert manager.systemctl("start", name).returncode == 0
    wait_until(lambda: manager.show(name)["ActiveState"] == "failed", "the failure")
    time.sleep(seconds(unit(name)["Service"]["RestartSec"]) + 2)
    state = manager.show(name)
    assert (state["ActiveState"], state["ExecMainStatus"]) == ("failed", "2"), output()
    assert state["NRestarts"] == restarts
    assert "unknown qcluster option 'workerz'" in output()


STOP_LIMIT = 20


def test_qcluster_unit_is_killed_at_timeout_where_the_worker_stops(
    tmp_path: Path, manager: UserManager
) -> None:
    """The migration guide's systemd claim, with the stop timeout cut to 20 s for the test."""
    defaults = manager.systemctl("show", "--property=DefaultTimeoutStopUSec").stdout
    assert defaults.strip() == "DefaultTimeoutStopUSec=1min 30s"  # what the guide says
    for name in ("qcluster.service", "prodserver-worker.service"):
        text, project = install_app(tmp_path / name, name)
        project.migrate()
        # The default KillMode (control-group): SIGTERM to every process, as many units do.
        text = text.replace("KillMode=mixed\n", "")
        log = tmp_path / f"{name}.log"
        # Long enough for the worker's stop on a loaded machine; qcluster never stops.
        manager.install(name, text, project, log, extra=f"TimeoutStopSec={STOP_LIMIT}\n")
        assert manager.systemctl("start", name).returncode == 0
        wait_until(lambda log=log: "running." in read(log), f"{name}'s cluster")
        started = time.monotonic()
        assert manager.systemctl("stop", name).returncode == 0
        took = time.monotonic() - started
        state = manager.show(name)
        if name == "qcluster.service":
            # qcluster hangs on this stop in most runs, until systemd's SIGKILL; whether it
            # does depends on which process the signal reaches first, so it is only reported.
            print(f"qcluster.service: {state['Result']} after {took:.1f} s")
        else:
            assert (state["Result"], state["ExecMainStatus"]) == ("success", "0")
            assert took < STOP_LIMIT


# Procfile


@contextlib.contextmanager
def honcho_started(
    project: Project, procfile: str, edit: Callable[[str], str] = lambda text: text
) -> Iterator[Worker]:
    """``honcho start`` with a recipe's Procfile; every process it started ends with the test."""
    require_module("honcho", "pip install honcho")
    text = on_this_prodserver((RECIPES / procfile).read_text())
    (project.root / "Procfile").write_text(edit(text))
    log = project.root / "honcho.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start"],
            cwd=project.root,
            env=with_venv(project),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = Worker(process, log)
    seen: list[psutil.Process] = []
    try:
        started.wait_for_output("running.")
        # honcho starts each process in a session of its own: remember them to clean up.
        seen += started.descendants()
        yield started
    finally:
        for leftover in alive([*started.descendants(), *seen]):
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        if process.poll() is None:
            started.kill()


def test_procfile_runs_under_honcho(tmp_path: Path, broker: dict[str, Any] | None) -> None:
    project = recipe_project(tmp_path / "app", broker)
    project.migrate()
    with honcho_started(project, "Procfile") as honcho:
        check_honcho_run(project, honcho)


def check_honcho_run(project: Project, honcho: Worker) -> None:
    (added,) = project.enqueue("add", 2, 3)
    assert project.wait_for_results([added], worker=honcho)[added]["result"] == 5
    processes = honcho.descendants()
    # `exec` replaced the shell that honcho runs the line with: honcho signals the worker.
    command = shlex.split(on_this_prodserver("python manage.py worker worker"))
    mains = [p for p in processes if p.cmdline() == command and p.parent().cmdline() != command]
    assert len(mains) == 1
    assert not [p for p in processes if is_shell(p)]
    # honcho passes SIGTERM on to the worker's process group, then exits 143 (128 + 15).
    assert honcho.stop(signal.SIGTERM, timeout=stop_bound()) == 128 + signal.SIGTERM
    assert "worker.1 stopped (rc=0)" in honcho.output()
    # On Python 3.14 honcho's forkserver and resource tracker end just after honcho.
    psutil.wait_procs(processes, timeout=10)
    assert alive(processes) == []


def is_shell(process: psutil.Process) -> bool:
    return process.cmdline()[:2] == ["/bin/sh", "-c"]


def test_procfile_without_exec_leaves_a_shell_between_honcho_and_the_worker(
    tmp_path: Path,
) -> None:
    """What the page says `exec` is for."""
    project = recipe_project(tmp_path / "app")
    project.migrate()
    with honcho_started(project, "Procfile", lambda text: text.replace("exec ", "")) as honcho:
        # honcho's runner for the line (forked, or on Python 3.14 started by the forkserver).
        (shell,) = [p for p in honcho.descendants() if is_shell(p)]
        command = shlex.split(on_this_prodserver("python manage.py worker worker"))
        assert [child.cmdline() for child in shell.children()] == [command]
        assert honcho.stop(signal.SIGTERM, timeout=stop_bound()) == 128 + signal.SIGTERM
        assert "worker.1 stopped (rc=-15)" in honcho.output()


# Dockerfile and Kubernetes


def dockerfile() -> Any:
    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        unavailable(
            "dockerfile-parse is not installed; install it with: pip install dockerfile-parse"
        )
    return DockerfileParser(str(RECIPES / "Dockerfile"))


def instructions(name: str) -> list[str]:
    return [i["value"] for i in dockerfile().structure if i["instruction"] == name]


def exec_form(name: str) -> list[str]:
    (value,) = instructions(name)
    assert value.lstrip().startswith("["), f"{name} is in shell form: {value}"
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv)
    return argv


def manifests() -> list[dict[str, Any]]:
    import yaml

    return list(yaml.safe_load_all((RECIPES / "kubernetes.yaml").read_text()))


def container_argv(container: dict[str, Any]) -> list[str]:
    """What a container runs: Kubernetes' rules for command, args, ENTRYPOINT and CMD."""
    if "command" in container:
        argv = [*container["command"], *container.get("args", [])]
    else:
        argv = [*exec_form("ENTRYPOINT"), *container.get("args", exec_form("CMD"))]
    return shlex.split(on_this_prodserver(shlex.join(argv)))


def test_dockerfile_runs_the_worker_in_exec_form_under_tini() -> None:
    assert exec_form("ENTRYPOINT") == ["tini", "--"]
    assert exec_form("CMD") == ["python", "manage.py", "worker", "worker"]
    health_file = recipe_settings()["PRODUCTION_PROCESSES"]["worker"]["HEALTH_FILE"]
    assert healthcheck_argv() == ["python", "-m", "prodserver_djangoq2.probe", health_file]
    (install,) = [run for run in instructions("RUN") if "apt-get install" in run]
    assert "tini" in shlex.split(install)
    # What `pip install -r requirements.txt` installs in the image is installed here.
    for line in (RECIPES / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            distribution = re.split(r"[\[<>=~ ]", line.strip())[0]
            try:
                version(distribution)
            except PackageNotFoundError:
                pytest.fail(f"{distribution} from requirements.txt is not installed")


def test_kubernetes_manifests_validate_and_outlast_the_stop() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        unavailable("kubernetes-validate is not installed; pip install kubernetes-validate")
    documents = manifests()
    assert [d["kind"] for d in documents] == ["Job", "Deployment"]
    for document in documents:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    # A strict validation rejects what the schema does not know.
    wrong = json.loads(json.dumps(documents[1]))
    wrong["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 50
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, kubernetes_validate.latest_version(), strict=True)
    pod = documents[1]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > stop_bound()
    (container,) = pod["containers"]
    # The probes are those of the Health checks page, with the recipe's HEALTH_FILE.
    health_file = recipe_settings()["PRODUCTION_PROCESSES"]["worker"]["HEALTH_FILE"]
    probe = ["python", "-m", "prodserver_djangoq2.probe", health_file]
    assert {kind: container[kind]["exec"]["command"] for kind in PROBES} == {
        "startupProbe": probe,
        "livenessProbe": probe,
        "readinessProbe": [*probe, "--ready"],
    }
    assert container["livenessProbe"]["periodSeconds"] >= 3 * 5  # 3 heartbeats of 5 s


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def healthcheck_argv() -> list[str]:
    (healthcheck,) = instructions("HEALTHCHECK")
    argv: list[str] = json.loads(healthcheck.split("CMD", 1)[1])
    return argv


def run_in_container(project: Project, argv: list[str]) -> Worker:
    """Start ``argv`` as PID 1 of a new PID namespace, with the image's ENV."""
    unshare = require_binary("unshare", "apt-get install util-linux")
    require_binary(argv[0], f"apt-get install {argv[0]}")
    if os.geteuid() != 0:
        unavailable("a PID namespace of its own needs root")
    environment = with_venv(project)
    for line in instructions("ENV"):
        key, _, value = line.partition("=")
        environment[key] = value
    log = project.root / f"container-{time.monotonic_ns()}.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", *argv],
            cwd=project.root,
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Worker(process, log)


def test_container_commands_run_as_pid_1(
    tmp_path: Path, workers: list[Worker], broker: dict[str, Any] | None
) -> None:
    job, deployment = manifests()
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    (worker,) = deployment["spec"]["template"]["spec"]["containers"]
    project = recipe_project(tmp_path / "app", broker)

    # Before the migration job: the worker refuses to start, status 4.
    early = run_in_container(project, container_argv(worker))
    workers.append(early)
    assert early.process.wait(timeout=PATIENCE) == 4, early.output()
    assert "migrat" in early.output()

    job_run = run_in_container(project, container_argv(migrate))
    workers.append(job_run)
    assert job_run.process.wait(timeout=PATIENCE) == 0, job_run.output()
    # The test projects keep Django's cache in the database (not part of the recipe).
    assert project.manage("createcachetable").returncode == 0

    container = run_in_container(project, container_argv(worker))
    workers.append(container)
    container.wait_for_output("running.")
    (init,) = psutil.Process(container.pid).children()
    assert init.name() == "tini"
    # The probes, run inside the container (its PID namespace), as the kubelet runs them.
    health_file = project.settings["PRODUCTION_PROCESSES"]["worker"]["HEALTH_FILE"]
    probes = [worker[kind]["exec"]["command"] for kind in PROBES] + [healthcheck_argv()]
    nsenter = require_binary("nsenter", "apt-get install util-linux")
    in_container = [nsenter, "--target", str(init.pid), "--pid", "--"]
    deadline = time.monotonic() + PATIENCE
    while True:
        statuses = [
            subprocess.run(
                [*in_container, *[health_file if a.endswith(".health") else a for a in argv]],
                cwd=project.root,
                env=with_venv(project),
                capture_output=True,
                timeout=PATIENCE,
            ).returncode
            for argv in probes
        ]
        if statuses == [0] * len(probes) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert statuses == [0] * len(probes)
    (slow,) = project.enqueue("sleep", 3)
    container.wait_for_output(processing(slow))
    # The kubelet (and docker stop) send SIGTERM to the container's PID 1.
    started = time.monotonic()
    init.send_signal(signal.SIGTERM)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert container.process.wait(timeout=grace) == 0, container.output()
    assert time.monotonic() - started < grace
    assert task(project, slow)["success"] is True


# Migration from django-prodserver's built-in backend


def built_in_project(root: Path) -> Project:
    project = recipe_project(root, settings="builtin-before.py")
    project.extra_settings_code = (
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'prodserver_djangoq2']\n"
    )
    project.write()
    project.migrate()
    return project


def test_built_in_backend_refuses_cluster_name_and_this_one_serves_it(
    tmp_path: Path, workers: list[Worker]
) -> None:
    command = WORKER_COMMAND  # django-prodserver 2 runs workers with `prodserver`
    before = built_in_project(tmp_path / "before")
    result = before.manage(command, "worker-high")
    assert result.returncode != 0
    assert "unrecognized arguments: --cluster-name=high" in result.stderr

    after = recipe_project(tmp_path / "after", settings="builtin-after.py")
    after.migrate()
    worker = after.start(command, "worker-high")
    workers.append(worker)
    worker.wait_for_output("running.")
    (added,) = after.enqueue("add", 2, 3, cluster="high")
    done = after.wait_for_results([added], worker=worker)[added]
    assert (done["result"], done["cluster"]) == (5, "high")
    assert worker.stop() == 0


# The migration guides show these diffs: (before, after, diff) in docs/deployment/files/.
DIFFS = [
    ("qcluster.Procfile", "Procfile", "from-qcluster.Procfile.diff"),
    ("qcluster.service", "prodserver-worker.service", "from-qcluster.service.diff"),
    ("builtin-before.py", "builtin-after.py", "from-built-in-backend.py.diff"),
]


def unified_diff(before: str, after: str) -> str:
    old = (RECIPES / before).read_text().splitlines(keepends=True)
    new = (RECIPES / after).read_text().splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, before, after))


@pytest.mark.parametrize(("before", "after", "diff"), DIFFS, ids=[d for _, _, d in DIFFS])
def test_migration_guides_show_the_diffs_of_the_recipe_files(
    before: str, after: str, diff: str
) -> None:
    assert (RECIPES / diff).read_text() == unified_diff(before, after), (
        f"regenerate {diff}: python -c 'from tests.test_recipes import write_diffs; write_diffs()'"
    )


def write_diffs() -> None:
    """Write the migration guides' diffs from the recipe files."""
    for before, after, diff in DIFFS:
        (RECIPES / diff).write_text(unified_diff(before, after))


def test_migration_files_differ_only_in_what_the_guides_say() -> None:
    before = recipe_settings("builtin-before.py")
    after = recipe_settings("builtin-after.py")
    assert before["Q_CLUSTER"] == after["Q_CLUSTER"]
    for name, entry in before["PRODUCTION_PROCESSES"].items():
        assert entry["BACKEND"] == (BUILT_IN if PRODSERVER_MAJOR >= 3 else BUILT_IN_2)
        assert after["PRODUCTION_PROCESSES"][name] == {**entry, "BACKEND": "djangoq2"}
