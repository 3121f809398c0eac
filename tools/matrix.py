"""Run the test suite on every line of tools/matrix.toml, and refresh the lines' pins.

    python tools/matrix.py pins [LINE...]       constraints/LINE.txt for each line (uv)
    python tools/matrix.py prepare [LINE...]    chroots, wheels and tox environments only
    python tools/matrix.py run [LINE...]        the suite on each line but the host's
    python tools/matrix.py stop-time [LINE...]  seconds from SIGTERM to exit, per line

Python 3.11 lines run through tox on the host. The others run in a Debian chroot built with
debootstrap from Debian's own packages (its interpreter, redis-server, PostgreSQL), kept in
.matrix/ with the wheels downloaded for it: pip inside the chroot cannot verify the package
index's certificate, so the host downloads every pinned wheel and the chroot installs them
offline. Each run copies the working tree into the chroot, so it tests what is on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".matrix"
# The chroots' glibc runs every manylinux wheel up to 2.28 (pip expands no platform by itself).
GLIBC_MINORS = range(5, 29)
LEGACY_MANYLINUX = ["manylinux1", "manylinux2010", "manylinux2014"]
# Lines run two at a time: the machines have two cores, and a line waits on its workers much
# of the time.
PARALLEL = 2
# Each line runs its test files side by side, as `make test` does.
SUITE = ["-m", "not soak and not benchmark", "-n", "3", "--dist", "loadfile"]
# The services the tests start, time zones for Django, make for tests/test_sdist.py, systemd
# and tini for the deployment recipes (tests/test_recipes.py).
CHROOT_PACKAGES = ["redis-server", "postgresql", "tzdata", "make", "systemd", "tini"]
# Copied into the chroot: the working tree without what tools and runs leave behind.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".tox", ".matrix", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache",
    ".coverage*", "build", "dist", "*.sqlite3",
)  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One tested combination: interpreter, Django, django-prodserver and django-q2."""

    name: str
    python: str
    django: str
    prodserver: str
    django_q2: str
    debian: str | None = None
    host: bool = False

    @property
    def constraints(self) -> Path:
        return REPO / "constraints" / f"{self.name}.txt"

    @property
    def bounds(self) -> list[str]:
        """The requirements that put the resolver on this line."""
        return [
            f"django>={self.django},<{_next_minor(self.django)}",
            f"django-prodserver>={self.prodserver},<{int(self.prodserver) + 1}",
            f"django-q2>={self.django_q2},<{_next_minor(self.django_q2)}",
        ]

    @property
    def chroot(self) -> Path:
        return CACHE / "chroots" / str(self.debian)

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


def load_lines() -> list[Line]:
    """Return every line of tools/matrix.toml."""
    table = tomllib.loads((REPO / "tools" / "matrix.toml").read_text())["lines"]
    return [Line(name=name, **values) for name, values in table.items()]


def _next_minor(version: str) -> str:
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"


def _selected(names: list[str]) -> list[Line]:
    lines = load_lines()
    unknown = set(names) - {line.name for line in lines}
    if unknown:
        known = ", ".join(line.name for line in lines)
        sys.exit(f"unknown lines {', '.join(sorted(unknown))}; tools/matrix.toml has {known}")
    return [line for line in lines if line.name in names or not names]


def _run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run ``command``, its output appended to ``log``; raise if it fails."""
    returncode, _ = _measured(command, log, cwd)
    if returncode:
        raise subprocess.CalledProcessError(returncode, command)


def _measured(command: list[str], log: Path, cwd: Path | None = None) -> tuple[int, float]:
    """Run ``command``, its output appended to ``log``; return its status and CPU seconds.

    The CPU time counts every process of the command, so that it compares lines whatever else
    the machine was doing.
    """
    with log.open("a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


# Pins -------------------------------------------------------------------------------------


def pins(lines: Iterable[Line]) -> None:
    """Resolve each line's test (and, on the host line, lint) environment into its constraints."""
    for line in lines:
        inputs = ["pyproject.toml", "requirements-test.txt"]
        if line.host:
            inputs.append("requirements-lint.txt")
        line.constraints.parent.mkdir(exist_ok=True)
        command = [
            sys.executable, "-m", "uv", "pip", "compile", "--quiet", *inputs, "-",
            "--python-version", line.python,
            "--python-platform", "x86_64-manylinux_2_28",
            # Only versions with a wheel for the line: its chroot installs offline from wheels.
            "--only-binary", ":all:",
            "--custom-compile-command", "make pins",
            "--output-file", str(line.constraints.relative_to(REPO)),
        ]  # fmt: skip
        print(f"pins: {line.name}", flush=True)
        subprocess.run(command, input="\n".join(line.bounds), text=True, check=True, cwd=REPO)


# Chroots ----------------------------------------------------------------------------------


def _in_chroot(root: Path, script: str, mounts: dict[str, Path] | None = None) -> list[str]:
    """Return a command that runs ``script`` in ``root`` in private mount and PID namespaces.

    Its mounts vanish with it, and so does every process it leaves behind.
    """
    steps = [
        # The chroot's / is a mount point, so that `unshare --mount` works inside it too.
        f"mount --bind {root} {root}",
        f"mount -t proc proc {root}/proc",
        f"mkdir -p {root}/dev/shm && mount -t tmpfs tmpfs {root}/dev/shm",
        f"mount -t tmpfs tmpfs {root}/tmp",
        # The cgroup file system, for the tests that run systemd.
        f"mount --rbind /sys {root}/sys",
        # Only the unified hierarchy where the host also has v1 ones: systemd 258 on refuses v1.
        f"if [ -d /sys/fs/cgroup/unified ]; then "
        f"mount --bind /sys/fs/cgroup/unified {root}/sys/fs/cgroup; fi",
    ]
    for inside, outside in (mounts or {}).items():
        steps.append(f"mkdir -p {root}{inside} && mount --bind {outside} {root}{inside}")
    environment = "HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 CI=true"
    # systemctl ignores its commands in a chroot unless told to (the recipe tests run systemd).
    environment += " SYSTEMD_IGNORE_CHROOT=1"
    # Not exec'd: sh stays the namespace's PID 1 and reaps the orphans that the tests leave to
    # init, as init does on a host (bash would exec its last command, pytest, which never reaps).
    steps.append(
        f"chroot {root} /usr/bin/env -i {environment} DEBIAN_FRONTEND=noninteractive "
        f"/bin/bash -euo pipefail -c {shlex.quote(script)}"
    )
    namespaces = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--"]
    return [*namespaces, "sh", "-ec", " && ".join(steps)]


def build_chroot(debian: str, pythons: set[str], log: Path) -> None:
    """Build the chroot for Debian release ``debian`` once, with the packages the tests use."""
    root = CACHE / "chroots" / debian
    ready = root / ".ready"
    wanted = " ".join(CHROOT_PACKAGES)
    if ready.exists() and ready.read_text() == wanted:
        return
    if not root.exists():
        partial = root.with_suffix(".partial")
        # A finished debootstrap is kept if a later step failed.
        if not (partial / ".debootstrapped").exists():
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            include = ",".join(f"python{v},python{v}-venv" for v in sorted(pythons))
            debootstrap = ["debootstrap", "--variant=minbase", f"--include={include}"]
            _run([*debootstrap, debian, str(partial)], log)
            (partial / ".debootstrapped").touch()
        # Packages must not start their services in the chroot; the tests start their own.
        policy = partial / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        createcluster = partial / "etc/postgresql-common/createcluster.conf"
        createcluster.parent.mkdir(parents=True, exist_ok=True)
        createcluster.write_text("create_main_cluster = false\n")
        partial.rename(root)
    # The mirror may serve an unstable release's index past its Valid-Until date.
    update = "apt-get -o Acquire::Check-Valid-Until=false update"
    install = f"{update} && apt-get install -y --no-install-recommends {wanted}"
    _run(_in_chroot(root, f"{install} && apt-get clean"), log)
    ready.write_text(wanted)


def download_wheels(line: Line, log: Path) -> Path:
    """Download every wheel the line pins, for its interpreter; return their folder."""
    wheels = CACHE / "wheels" / line.abi
    stamp = CACHE / "wheels" / f"{line.name}.sha256"
    digest = _digest(line.constraints)
    if stamp.exists() and stamp.read_text() == digest:
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--python-version", line.python, "--implementation", "cp",
        "--abi", line.abi, *_platform_options(),
        "-d", str(wheels), "-r", str(line.constraints),
    ]  # fmt: skip
    _run(command, log)
    stamp.write_text(digest)
    return wheels


def _platform_options() -> list[str]:
    tags = [f"manylinux_2_{minor}" for minor in GLIBC_MINORS] + LEGACY_MANYLINUX
    return [option for tag in tags for option in ("--platform", f"{tag}_x86_64")]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_tree(line: Line) -> Path:
    """Copy the working tree to the line's source folder; return it."""
    source = CACHE / "src" / line.name
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(REPO, source, ignore=IGNORED, symlinks=True)
    return source


def chroot_command(line: Line, wheels: Path, source: Path, argv: list[str]) -> list[str]:
    """Return the command that installs the line's venv if needed and runs ``argv`` in it."""
    venv = f"/venvs/{line.name}"
    digest = _digest(line.constraints)
    script = f"""
if [ "$(cat {venv}/.constraints 2>/dev/null)" != {digest} ]; then
    rm -rf {venv}
    python{line.python} -m venv {venv}
    {venv}/bin/pip install --quiet --no-index --find-links /wheels --no-deps \
        -r /src/{line.constraints.relative_to(REPO)}
    echo {digest} > {venv}/.constraints
fi
# The working tree, installed editable: a changed entry point is seen too.
{venv}/bin/pip install --quiet --no-index --no-deps --no-build-isolation -e /src
export PATH={venv}/bin:$PATH
cd /src
{venv}/bin/python --version
{venv}/bin/pip list --format=freeze 2>/dev/null | grep -iE '^(django|django-q2|django-prodserver)=='
{shlex.join(argv)}
"""
    return _in_chroot(line.chroot, script, {"/wheels": wheels, "/src": source})


# Running the lines ------------------------------------------------------------------------


@dataclass
class Outcome:
    line: Line
    seconds: float
    cpu_seconds: float
    passed: bool
    log: Path


def run_line(line: Line, pytest_args: list[str]) -> Outcome:
    """Run the suite on ``line``; its output goes to .matrix/logs/LINE.log."""
    log = CACHE / "logs" / f"{line.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    started = time.monotonic()
    if line.debian is None:
        command = [str(_tox()), "run", "-e", line.name, "--", *SUITE, *pytest_args]
        returncode, cpu_seconds = _measured(command, log, cwd=REPO)
    else:
        pytest = ["python", "-m", "pytest", "-p", "no:cacheprovider", *SUITE, *pytest_args]
        try:
            command = chroot_command(line, download_wheels(line, log), copy_tree(line), pytest)
        except subprocess.CalledProcessError:  # the wheels' download: its log says why
            return Outcome(line, time.monotonic() - started, 0.0, False, log)
        returncode, cpu_seconds = _measured(command, log)
    return Outcome(line, time.monotonic() - started, cpu_seconds, returncode == 0, log)


def prepare(lines: list[Line]) -> None:
    """Build the chroots the lines need (in parallel: mostly downloads)."""
    by_release: dict[str, set[str]] = {}
    for line in lines:
        if line.debian is not None:
            by_release.setdefault(line.debian, set()).add(line.python)
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(by_release) or 1) as pool:
        futures = {
            release: pool.submit(build_chroot, release, pythons, logs / f"chroot-{release}.log")
            for release, pythons in by_release.items()
        }
        for release, future in futures.items():
            started = time.monotonic()
            try:
                future.result()
            except subprocess.CalledProcessError:
                _print_tail(logs / f"chroot-{release}.log")
                raise
            print(f"chroot {release}: ready ({time.monotonic() - started:.0f} s)", flush=True)


def prepare_all(lines: list[Line]) -> None:
    """Make every line ready to run: chroots, wheels, tox environments."""
    lines = [line for line in lines if not line.host]
    prepare(lines)
    for line in lines:
        started = time.monotonic()
        log = CACHE / "logs" / f"prepare-{line.name}.log"
        log.write_text("")
        try:
            if line.debian is None:
                _run([str(_tox()), "run", "--notest", "-e", line.name], log, cwd=REPO)
            else:
                download_wheels(line, log)
        except subprocess.CalledProcessError:
            _print_tail(log)
            raise
        print(f"{line.name}: ready ({time.monotonic() - started:.0f} s)", flush=True)


def _tox() -> Path:
    return Path(sys.executable).with_name("tox")


def run(lines: list[Line], pytest_args: list[str]) -> int:
    """Run every selected line but the host's, two at a time; return the exit status."""
    lines = [line for line in lines if not line.host]
    started = time.monotonic()
    prepare(lines)
    # Chroot lines first: they take longest, so the tail of the run stays short.
    ordered = sorted(lines, key=lambda line: line.debian is None)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for outcome in pool.map(lambda line: run_line(line, pytest_args), ordered):
            status = "passed" if outcome.passed else "FAILED"
            print(
                f"{outcome.line.name}: {status} in {outcome.seconds:.0f} s"
                f" ({outcome.cpu_seconds:.0f} CPU s)",
                flush=True,
            )
            if not outcome.passed:
                _print_tail(outcome.log)
            outcomes.append(outcome)
    for outcome in outcomes:
        _print_summary(outcome)
    cpu_seconds = sum(outcome.cpu_seconds for outcome in outcomes)
    elapsed = time.monotonic() - started
    print(f"matrix: {len(outcomes)} lines in {elapsed:.0f} s, {cpu_seconds:.0f} CPU s", flush=True)
    return 0 if all(outcome.passed for outcome in outcomes) else 1


def _print_tail(log: Path, count: int = 60) -> None:
    print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-count:]), flush=True)


def _print_summary(outcome: Outcome) -> None:
    # pytest's closing line, e.g. "212 passed, 1 failed in 250.1s".
    rows = outcome.log.read_text(errors="replace").splitlines()
    closing = [row.strip("= ") for row in rows if re.search(r"\d+ (passed|failed).* in ", row)]
    print(
        f"  {outcome.line.name:28} {outcome.seconds:5.0f} s {outcome.cpu_seconds:5.0f} CPU s"
        f"  {closing[-1] if closing else ''}"
    )


# Stop time --------------------------------------------------------------------------------


def stop_time(lines: list[Line], samples: int) -> None:
    """Print the median seconds from SIGTERM to exit of an idle worker, on each line."""
    arguments = ["python", "tools/stop_time.py", str(samples)]
    for line in lines:
        if line.debian is None:
            # The host's dev venv is this line's environment.
            subprocess.run([sys.executable, *arguments[1:]], check=True, cwd=REPO)
            continue
        log = CACHE / "logs" / f"stop-time-{line.name}.log"
        log.write_text("")
        prepare([line])
        wheels = download_wheels(line, log)
        source = copy_tree(line)
        subprocess.run(chroot_command(line, wheels, source, arguments), check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("pins", "prepare", "run", "stop-time"):
        command = commands.add_parser(name)
        command.add_argument("lines", nargs="*", metavar="LINE")
        if name == "run":
            command.add_argument("--pytest-args", default="", help="extra pytest arguments")
        if name == "stop-time":
            command.add_argument("--samples", type=int, default=7)
    options = parser.parse_args()
    lines = _selected(options.lines)
    if options.command == "pins":
        pins(lines)
        return 0
    if options.command == "prepare":
        prepare_all(lines)
        return 0
    if options.command == "stop-time":
        stop_time(lines, options.samples)
        return 0
    return run(lines, shlex.split(options.pytest_args))


if __name__ == "__main__":
    sys.exit(main())
