"""What the benchmarks measure with: stored results read from SQLite, timings, tables."""

from __future__ import annotations

import os
import random
import resource
import select
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version

import psutil
import pytest

from tests.harness import ORM_Q_CLUSTER, Project, Worker, read_sqlite

# Resamples behind each ratio's interval; a fixed seed prints the same interval for the same
# samples.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 12
# Short enough to add under 1% to a run of a few seconds; a COUNT on SQLite costs microseconds.
POLL_INTERVAL = 0.02
PLUGIN_PROCESS = "worker"
QCLUSTER = ("qcluster",)
QCLUSTER_KIND = "qcluster"
# Runs of each command in the start-up and throughput benchmarks, when set: on a machine whose
# speed moves by a quarter from one second to the next, judging a ratio to within a few
# percent takes far more runs than a run of ``make bench`` spends by default.
RUNS_VARIABLE = "BENCHMARK_RUNS"
# Set to 1 for a control run: ``qcluster`` in both columns of every comparison, so that each
# ratio differs from 1.0 by the machine's noise alone and shows which differences a run of this
# length can tell apart on this machine.
CONTROL_VARIABLE = "BENCHMARK_CONTROL"


def runs(default: int) -> int:
    """Return how many times each command runs: ``BENCHMARK_RUNS`` if set, else ``default``."""
    value = os.environ.get(RUNS_VARIABLE, "").strip()
    if not value:
        return default
    # Even, so that each command goes first in as many rounds.
    if not value.isdigit() or int(value) < 2 or int(value) % 2:
        raise pytest.UsageError(
            f"{RUNS_VARIABLE} must be an even number of runs, at least 2, not {value!r}."
        )
    return int(value)


def control_run() -> bool:
    """Return whether ``BENCHMARK_CONTROL`` asks for ``qcluster`` in both columns."""
    value = os.environ.get(CONTROL_VARIABLE, "").strip()
    if value not in ("", "0", "1"):
        raise pytest.UsageError(
            f"{CONTROL_VARIABLE} must be 1 (qcluster in both columns) or 0, not {value!r}."
        )
    return value == "1"


CONTROL = control_run()


def runs_as(kind: str) -> str:
    """Return the command that runs in ``kind``'s column: ``qcluster`` in a control run."""
    return QCLUSTER_KIND if CONTROL else kind


def plugin_command(process: str = PLUGIN_PROCESS) -> tuple[str, ...]:
    """Return the ``manage.py`` arguments that start ``process`` through django-prodserver."""
    # django-prodserver 2 has no ``worker`` command; ``prodserver`` runs any process.
    if int(version("django-prodserver").split(".")[0]) >= 3:
        return ("worker", process)
    return ("prodserver", process)


# save_limit 0 keeps every result, so that counting them counts the tasks done.
ORM = {**ORM_Q_CLUSTER, "name": "bench", "save_limit": 0}


def command(kind: str, process: str = PLUGIN_PROCESS) -> tuple[str, ...]:
    """Return the ``manage.py`` arguments of ``kind``: ``"plugin"`` or ``"qcluster"``."""
    return plugin_command(process) if kind == "plugin" else QCLUSTER


class Results:
    """The project's Django-Q2 tables, read directly from its SQLite file.

    A fresh connection per query in autocommit mode never holds a lock between polls, so
    polling does not slow down the cluster that writes the results.
    """

    def __init__(self, project: Project) -> None:
        self.path = project.root / "db.sqlite3"

    def _scalar(self, sql: str) -> int:
        ((value,),) = read_sqlite(self.path, sql)
        return int(value or 0)

    def stored(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_task")

    def successes(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_task WHERE success")

    def queued_in_orm(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_ormq")

    def clusters(self) -> list[str]:
        return [row[0] for row in read_sqlite(self.path, "SELECT cluster FROM django_q_task")]

    def first_stopped(self) -> float:
        """Return when the first stored task finished, as a ``time.time()`` value.

        The worker stamps the moment with its own clock, so no polling interval blurs it.
        """
        ((stopped,),) = read_sqlite(self.path, "SELECT MIN(stopped) FROM django_q_task")
        # USE_TZ: SQLite holds UTC datetimes as ISO text without an offset.
        return datetime.fromisoformat(stopped).replace(tzinfo=UTC).timestamp()

    def clear(self) -> None:
        """Delete stored results and tasks left in the ORM queue by an earlier run."""
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("DELETE FROM django_q_task")
            db.execute("DELETE FROM django_q_ormq")

    def wait_for(self, count: int, worker: Worker, timeout: float = 300) -> float:
        """Wait until ``count`` results are stored; return the ``time.monotonic()`` then."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self.stored()
            now = time.monotonic()
            if stored >= count:
                return now
            if worker.process.poll() is not None:
                raise AssertionError(f"exited with {stored}/{count} results:\n{worker.output()}")
            if now > deadline:
                raise AssertionError(f"{stored}/{count} results in {timeout}s:\n{worker.output()}")
            time.sleep(POLL_INTERVAL)


def tree_memory(pid: int) -> tuple[float, float]:
    """Return the RSS and USS, in MiB, summed over process ``pid`` and its descendants."""
    root = psutil.Process(pid)
    rss = uss = 0
    for process in [root, *root.children(recursive=True)]:
        info = process.memory_full_info()
        rss += info.rss
        uss += info.uss
    return rss / 2**20, uss / 2**20


def timed_stop(worker: Worker, signum: int, timeout: float = 60) -> float:
    """Send ``signum`` to the main process; return the seconds until it has exited with 0."""
    # A pidfd becomes readable the moment the process exits: no polling interval in the time.
    pidfd = os.pidfd_open(worker.pid)
    try:
        signalled = time.monotonic()
        os.kill(worker.pid, signum)
        exited = bool(select.select([pidfd], [], [], timeout)[0])
        elapsed = time.monotonic() - signalled
    finally:
        os.close(pidfd)
    if not exited:
        worker.kill()
        raise AssertionError(f"did not exit within {timeout}s of {signum!r}:\n{worker.output()}")
    assert worker.process.wait() == 0, worker.output()
    return elapsed


def children_cpu() -> float:
    """Return the CPU seconds used so far by this process's reaped descendants."""
    # A process's time reaches its parent when the parent reaps it, so a cluster's whole tree
    # is counted here once its main process is waited for.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# metric -> command ("plugin" or "qcluster") -> one value per run
Samples = dict[str, dict[str, list[float]]]
COMMANDS = ("plugin", QCLUSTER_KIND)
# Runs a command ("plugin" or "qcluster") once; returns its value of each metric.
Measure = Callable[[str], dict[str, float]]


def alternate(runs: int, measure: Measure) -> Samples:
    """Call ``measure("plugin")`` and ``measure("qcluster")`` in turn, ``runs`` times each.

    Alternating spreads the load of other processes on the machine over both alike; each
    round swaps which goes first (plugin, qcluster, qcluster, plugin...), so that a load
    that rises or falls during a round does not always favour the same command.
    """
    return interleave(runs, {"": measure})[""]


def interleave(runs: int, measures: dict[str, Measure]) -> dict[str, Samples]:
    """Alternate the commands as ``alternate`` does, for each of ``measures`` in every round.

    A slow spell of the machine then falls on every measure alike, instead of on the one that
    a sequence of rounds of its own happened to be running.
    """
    samples: dict[str, Samples] = {name: {} for name in measures}
    for round_number in range(runs):
        for name, measure in measures.items():
            for kind in COMMANDS if round_number % 2 == 0 else COMMANDS[::-1]:
                for metric, value in measure(runs_as(kind)).items():
                    samples[name].setdefault(metric, {command: [] for command in COMMANDS})
                    samples[name][metric][kind].append(value)
    return samples


@dataclass
class Row:
    """One line of a result table: medians of both commands, their ratio and its goal.

    ``limit`` is the highest ratio the goal allows (times, sizes), ``floor`` the lowest
    (rates); a row with neither is for context.
    """

    metric: str
    samples: dict[str, list[float]]
    limit: float | None = None
    floor: float | None = None
    # Always plugin/qcluster: above 1 is better for a rate, worse for a time or a size.
    plugin: float = field(init=False)
    qcluster: float = field(init=False)
    ratio: float = field(init=False)
    # Median of the ratios of runs made one after the other, which shared the machine's load.
    paired: float = field(init=False)
    # 90% of the ratios of medians of resampled runs fall in this range: how far the machine's
    # noise alone may move the ratio.
    interval: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.plugin = statistics.median(self.samples["plugin"])
        self.qcluster = statistics.median(self.samples["qcluster"])
        self.ratio = self.plugin / self.qcluster
        pairs = zip(self.samples["plugin"], self.samples["qcluster"], strict=True)
        self.paired = statistics.median(plugin / qcluster for plugin, qcluster in pairs)
        self.interval = bootstrap_interval(self.samples["plugin"], self.samples["qcluster"])

    @property
    def goal(self) -> str:
        if self.limit is not None:
            return f"<= {self.limit:.2f}"
        if self.floor is not None:
            return f">= {self.floor:.2f}"
        return ""

    @property
    def met(self) -> bool | None:
        """Whether the ratio of medians meets the goal; ``None`` without a goal."""
        if self.limit is not None:
            return self.ratio <= self.limit
        if self.floor is not None:
            return self.ratio >= self.floor
        return None


def bootstrap_interval(plugin: list[float], qcluster: list[float]) -> tuple[float, float]:
    """Return the 5th and 95th percentiles of the ratio of medians over resampled runs."""
    generator = random.Random(BOOTSTRAP_SEED)
    ratios = sorted(
        statistics.median(generator.choices(plugin, k=len(plugin)))
        / statistics.median(generator.choices(qcluster, k=len(qcluster)))
        for _ in range(BOOTSTRAP_RESAMPLES)
    )
    return ratios[len(ratios) // 20], ratios[-len(ratios) // 20 - 1]


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def print_table(title: str, rows: list[Row]) -> None:
    """Print the medians, ratios and goals, then every sample, below ``title``."""
    width = max(len(row.metric) for row in rows)
    control = "; control run: qcluster in both columns" if CONTROL else ""
    print(f"\n{title} (load average {load_average()}{control})")
    print(
        f"{'metric':<{width}}  {'plugin':>9}  {'qcluster':>9}  {'ratio':>6}  {'paired':>6}  "
        f"{'90% interval':>13}  {'goal':<7}  met"
    )
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row.met]
        low, high = row.interval
        print(
            f"{row.metric:<{width}}  {row.plugin:>9.3f}  {row.qcluster:>9.3f}  "
            f"{row.ratio:>6.3f}  {row.paired:>6.3f}  {low:>6.3f}-{high:<6.3f}  {row.goal:<7}  {met}"
        )
    for row in rows:
        for kind, values in row.samples.items():
            print(f"  {row.metric} {kind}: {', '.join(f'{v:.3f}' for v in values)}")
    print_outcome(rows)


def print_outcome(rows: list[Row]) -> None:
    """Print which goals the ratios of medians meet: the benchmark's outcome, not a test's."""
    judged = [row for row in rows if row.met is not None]
    if not judged:
        return
    missed = [row.metric for row in judged if not row.met]
    print(f"Benchmark outcome: {len(judged) - len(missed)} of {len(judged)} goals met", end="")
    print(f"; not met: {'; '.join(missed)}" if missed else "")
