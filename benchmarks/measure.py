"""What the benchmarks measure with: stored results read from SQLite, timings, tables."""

from __future__ import annotations

import os
import resource
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from importlib.metadata import version

import psutil

from tests.harness import Project, Worker

# Short enough to add under 1% to a run of a few seconds; a COUNT on SQLite costs microseconds.
POLL_INTERVAL = 0.02
PLUGIN_PROCESS = "worker"


def plugin_command(process: str = PLUGIN_PROCESS) -> tuple[str, ...]:
    """Return the ``manage.py`` arguments that start ``process`` through django-prodserver."""
    # django-prodserver 2 has no ``worker`` command; ``prodserver`` runs any process.
    if int(version("django-prodserver").split(".")[0]) >= 3:
        return ("worker", process)
    return ("prodserver", process)


QCLUSTER = ("qcluster",)


class Results:
    """The project's Django-Q2 tables, read directly from its SQLite file.

    A fresh connection per query in autocommit mode never holds a lock between polls, so
    polling does not slow down the cluster that writes the results.
    """

    def __init__(self, project: Project) -> None:
        self.path = project.root / "db.sqlite3"

    def _scalar(self, sql: str) -> int:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            return int(db.execute(sql).fetchone()[0] or 0)

    def stored(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_task")

    def successes(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_task WHERE success")

    def queued_in_orm(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM django_q_ormq")

    def clusters(self) -> list[str]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            return [row[0] for row in db.execute("SELECT cluster FROM django_q_task")]

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


def children_cpu() -> float:
    """Return the CPU seconds used so far by this process's reaped descendants."""
    # A process's time reaches its parent when the parent reaps it, so a cluster's whole tree
    # is counted here once its main process is waited for.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# metric -> command ("plugin" or "qcluster") -> one value per run
Samples = dict[str, dict[str, list[float]]]
COMMANDS = ("plugin", "qcluster")


def alternate(runs: int, measure: Callable[[str], dict[str, float]]) -> Samples:
    """Call ``measure("plugin")`` and ``measure("qcluster")`` in turn, ``runs`` times each.

    Alternating spreads the load of other processes on the machine over both alike.
    """
    samples: Samples = {}
    for _ in range(runs):
        for kind in COMMANDS:
            for metric, value in measure(kind).items():
                samples.setdefault(metric, {command: [] for command in COMMANDS})
                samples[metric][kind].append(value)
    return samples


@dataclass
class Row:
    """One line of a result table: medians of both commands and their ratio."""

    metric: str
    samples: dict[str, list[float]]
    goal: str = ""
    # Always plugin/qcluster: above 1 is better for a rate, worse for a time or a size.
    plugin: float = field(init=False)
    qcluster: float = field(init=False)
    ratio: float = field(init=False)
    # Median of the ratios of runs made one after the other, which shared the machine's load.
    paired: float = field(init=False)

    def __post_init__(self) -> None:
        self.plugin = statistics.median(self.samples["plugin"])
        self.qcluster = statistics.median(self.samples["qcluster"])
        self.ratio = self.plugin / self.qcluster
        pairs = zip(self.samples["plugin"], self.samples["qcluster"], strict=True)
        self.paired = statistics.median(plugin / qcluster for plugin, qcluster in pairs)


def print_table(title: str, rows: list[Row]) -> None:
    """Print the medians, ratios and goals, then every sample, below ``title``."""
    width = max(len(row.metric) for row in rows)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{title} (load average {load})")
    print(f"{'metric':<{width}}  {'plugin':>9}  {'qcluster':>9}  {'ratio':>6}  {'paired':>6}  goal")
    for row in rows:
        print(
            f"{row.metric:<{width}}  {row.plugin:>9.3f}  {row.qcluster:>9.3f}  "
            f"{row.ratio:>6.3f}  {row.paired:>6.3f}  {row.goal}"
        )
    for row in rows:
        for kind, values in row.samples.items():
            print(f"  {row.metric} {kind}: {', '.join(f'{v:.3f}' for v in values)}")
