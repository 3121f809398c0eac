"""What every process pays for the plugin: resolving ``"djangoq2"``, importing the app.

Both are measured in fresh interpreters, since a first call and an import happen once per
process. Name resolution runs among 300 extra installed distributions; the import cost is
that of a web process, which has the app installed but never starts a worker.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import memory_directory
from benchmarks.measure import load_average
from tests.harness import REPO

pytestmark = pytest.mark.benchmark

DISTRIBUTIONS = 300
# One in this many has console scripts; one in BACKEND_EVERY registers a backend too.
SCRIPTS_EVERY = 3
BACKEND_EVERY = 30
RESOLUTION_RUNS = 11
# importlib.metadata reads every distribution again on each call: a few calls show that.
CACHED_CALLS = {"plugin": 100_000, "importlib.metadata": 5}
IMPORT_RUNS = 11
APP = "prodserver_djangoq2"

RESOLVE = """\
import json, sys, time
import django

django.setup()
import prodserver_djangoq2.backend  # the dotted path imports it too: not a cost of the name

if sys.argv[1] == "plugin":
    from prodserver_djangoq2.discovery import resolve_backend
else:
    from importlib.metadata import entry_points

    def resolve_backend(name):
        (point,) = entry_points(group="django_prodserver.backends", name=name)
        return point.load()

wall, cpu = time.perf_counter(), time.process_time()
resolve_backend("djangoq2")
first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
wall = time.perf_counter()
for _ in range(int(sys.argv[2])):
    resolve_backend("djangoq2")
cached = (time.perf_counter() - wall) / int(sys.argv[2])
print(json.dumps({"first": first, "first CPU": first_cpu, "cached": cached}))
"""

# Times, in elapsed and CPU seconds, what each app costs django.setup(): importing it (which
# AppConfig.create does) and its ready(); lists the modules imported meanwhile.
SETUP = """\
import json, sys, time
from django.apps import config

create = config.AppConfig.create.__func__
costs = {}


def timed(name, call):
    before, wall, cpu = set(sys.modules), time.perf_counter(), time.process_time()
    result = call()
    cost = costs.setdefault(name, {"wall": 0.0, "cpu": 0.0, "imported": []})
    cost["wall"] += time.perf_counter() - wall
    cost["cpu"] += time.process_time() - cpu
    cost["imported"] += sorted(set(sys.modules) - before)
    return result


def timed_create(cls, entry):
    app_config = timed(entry, lambda: create(cls, entry))
    ready = app_config.ready
    app_config.ready = lambda: timed(entry, ready)
    return app_config


config.AppConfig.create = classmethod(timed_create)
import django

django.setup()
print(json.dumps({"costs": costs, "modules": sorted(sys.modules)}))
"""

WEB_SETTINGS = """\
from tests.project_base import *  # noqa: F403

DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}}}
Q_CLUSTER = {{"name": "web", "orm": "default", "timeout": 30, "retry": 60}}
PRODUCTION_PROCESSES = {{"worker": {{"BACKEND": "djangoq2"}}}}
INSTALLED_APPS = [app for app in INSTALLED_APPS if {keep}]
"""


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    root = memory_directory("prodserver-djangoq2-names-") or tmp_path
    yield root
    if root != tmp_path:
        shutil.rmtree(root, ignore_errors=True)


def write_distributions(root: Path) -> None:
    """Write ``DISTRIBUTIONS`` installed distributions, some with entry points, under ``root``."""
    for index in range(DISTRIBUTIONS):
        name = f"package_{index:03d}"
        info = root / f"{name}-1.{index}.dist-info"
        info.mkdir(parents=True)
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.{index}\n"
        (info / "METADATA").write_text(metadata)
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
        if index % SCRIPTS_EVERY:
            continue
        lines = ["[console_scripts]", f"{name}-cli = {name}.cli:main"]
        if index % BACKEND_EVERY == 0:
            lines += ["", "[django_prodserver.backends]", f"backend{index} = {name}:Backend"]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def run_python(*args: str, path: list[Path], env: dict[str, str] | None = None) -> Any:
    """Run ``python *args`` in a fresh interpreter; return its JSON output and its stderr."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [*map(str, [*path, REPO]), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        timeout=120,
    )
    return json.loads(result.stdout), result.stderr


def test_name_resolution_among_300_distributions(scratch: Path) -> None:
    write_distributions(scratch)
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(RESOLUTION_RUNS):
        for kind in ("plugin", "importlib.metadata"):
            measured, _ = run_python("-c", RESOLVE, kind, str(CACHED_CALLS[kind]), path=[scratch])
            for metric, value in measured.items():
                samples.setdefault(metric, {}).setdefault(kind, []).append(value)

    medians = {
        metric: {kind: statistics.median(values) for kind, values in by_kind.items()}
        for metric, by_kind in samples.items()
    }
    print(
        f"\nResolving 'djangoq2' with {DISTRIBUTIONS} extra distributions installed, "
        f"fresh interpreters, medians of {RESOLUTION_RUNS} (load average {load_average()})"
    )
    print(f"{'call':<16}  {'plugin':>10}  {'entry_points()':>14}  {'ratio':>6}  goal      met")
    goals = {"first": 0.010, "first CPU": 0.010, "cached": 10e-6}
    for metric, goal in goals.items():
        plugin, stdlib = medians[metric]["plugin"], medians[metric]["importlib.metadata"]
        unit, scale = ("µs", 1e6) if metric == "cached" else ("ms", 1e3)
        met = "yes" if plugin < goal else "NO"
        print(
            f"{metric:<16}  {plugin * scale:>7.3f} {unit}  {stdlib * scale:>11.3f} {unit}  "
            f"{plugin / stdlib:>6.3f}  < {goal * scale:g} {unit}  {met}"
        )
    for metric, by_kind in samples.items():
        for kind, values in by_kind.items():
            print(f"  {metric} {kind}: {', '.join(f'{v * 1e3:.3f}' for v in values)} ms")


def parse_importtime(stderr: str) -> dict[str, float]:
    """Return each module's own import time in seconds from ``-X importtime`` output."""
    own: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        own[fields[2].strip()] = int(fields[0]) / 1e6
    return own


def test_import_cost_in_a_web_process(scratch: Path) -> None:
    for variant, keep in (("with_app", "True"), ("without_app", f"app != {APP!r}")):
        (scratch / f"{variant}.py").write_text(WEB_SETTINGS.format(keep=keep))
    costs: dict[str, list[float]] = {"wall": [], "cpu": []}
    own_times: dict[str, list[float]] = {}
    for _ in range(IMPORT_RUNS):
        without, _ = run_python(
            "-c", SETUP, path=[scratch], env={"DJANGO_SETTINGS_MODULE": "without_app"}
        )
        with_app, _ = run_python(
            "-c", SETUP, path=[scratch], env={"DJANGO_SETTINGS_MODULE": "with_app"}
        )
        cost = with_app["costs"][APP]
        # Everything the app adds is imported by its own import and ready(), and nothing
        # imported there would have been imported without it: so their time is the app's.
        baseline = set(without["modules"])
        added = set(with_app["modules"]) - baseline - {"with_app"}
        assert added == set(cost["imported"]), added ^ set(cost["imported"])
        costs["wall"].append(cost["wall"])
        costs["cpu"].append(cost["cpu"])
        # The same again under -X importtime, for what each module costs.
        _, stderr = run_python(
            "-X",
            "importtime",
            "-c",
            SETUP,
            path=[scratch],
            env={"DJANGO_SETTINGS_MODULE": "with_app"},
        )
        own = parse_importtime(stderr)
        for module in added:
            own_times.setdefault(module, []).append(own.get(module, 0))

    wall, cpu = statistics.median(costs["wall"]), statistics.median(costs["cpu"])
    print(
        f"\nWhat the installed app adds to django.setup() in a web process (its import and "
        f"ready()), fresh interpreters, medians of {IMPORT_RUNS} (load average {load_average()})"
    )
    for label, value in (("elapsed", wall), ("CPU", cpu)):
        met = "yes" if value < 0.002 else "NO"
        print(f"{label:<8} {value * 1e3:6.2f} ms  goal < 2 ms  met: {met}")
    # -X importtime times the import statement only, not importlib.import_module().
    timed = {module: times for module, times in own_times.items() if any(times)}
    untimed = sorted(set(own_times) - set(timed))
    print(f"  {len(own_times)} modules added; own import time (-X importtime) of those it times:")
    for module, times in sorted(timed.items(), key=lambda item: -statistics.median(item[1])):
        print(f"    {module}: {statistics.median(times) * 1e3:.2f} ms")
    print(f"    not timed (imported with importlib.import_module): {', '.join(untimed)}")
    for label, values in costs.items():
        print(f"  {label}: {', '.join(f'{value * 1e3:.2f}' for value in values)} ms")
