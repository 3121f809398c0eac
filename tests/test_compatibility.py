"""A django-q2 release outside the tested ones: accepted while its internals hold, else named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prodserver_djangoq2.compatibility import INTERNALS, TESTED, django_q2_problem
from tests.distributions import write_distribution
from tests.harness import DJANGO_Q2_VERSION, REPO

SENTINEL = """\
class Cluster:
    pass


class Sentinel:
    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None, start=True):
        pass
"""
CONF = """\
import os

_Q_CLUSTER_NAME = os.getenv("Q_CLUSTER_NAME")


class Conf:
    CLUSTER_NAME = _Q_CLUSTER_NAME or "default"
    TIMEOUT = 60
    ORM = "default"
"""
QCLUSTER = """\
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--run-once", action="store_true")
        parser.add_argument("--name", dest="cluster_name")
"""
# What a release that changed one internal would ship instead.
CHANGED = {
    "django_q/cluster": SENTINEL.replace("cluster_id, broker", "cluster_id, pool, broker"),
    # A renamed environment variable: the worker's cluster selection would be ignored.
    "django_q/conf": CONF.replace("Q_CLUSTER_NAME", "DJANGO_Q_CLUSTER"),
    "django_q/management/commands/qcluster": QCLUSTER.replace(
        '"--name", dest="cluster_name"', '"--queue"'
    ),
}
PROBE = """\
from prodserver_djangoq2.compatibility import django_q2_problem

print(django_q2_problem())
"""


def fake_django_q2(
    root: Path, release: str, changed: str | None = None, states_version: bool = True
) -> Path:
    """Write an installed django-q2 ``release`` whose module ``changed`` is not as tested.

    Like django-q2, its package states its version in ``VERSION``, unless ``states_version``
    is false (the version is then only in the distribution's metadata).
    """
    (root / "django_q" / "management" / "commands").mkdir(parents=True)
    numbers = ", ".join(release.split("."))
    modules = {
        "django_q/__init__": f"VERSION = ({numbers},)\n" if states_version else "",
        "django_q/cluster": SENTINEL,
        "django_q/conf": CONF,
        "django_q/management/__init__": "",
        "django_q/management/commands/__init__": "",
        "django_q/management/commands/qcluster": QCLUSTER,
    }
    if changed is not None:
        modules[changed] = CHANGED[changed]
    write_distribution(root, "django-q2", release, {}, modules)
    return root


def problem_with(path: Path) -> str:
    """Return what ``django_q2_problem()`` says in a process that imports from ``path`` first."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_installed_release_is_tested_and_accepted() -> None:
    assert TESTED[0] <= DJANGO_Q2_VERSION <= TESTED[1]
    assert django_q2_problem() is None


def test_the_installed_release_has_every_internal_the_checks_look_for() -> None:
    # Else a newer release as good as this one would be refused.
    assert {what: check() for what, check in INTERNALS.items()} == dict.fromkeys(INTERNALS, True)


def test_a_newer_release_with_the_same_internals_is_accepted(tmp_path: Path) -> None:
    assert problem_with(fake_django_q2(tmp_path, "9.0")) == "None"


def test_a_package_without_a_version_is_known_by_its_metadata(tmp_path: Path) -> None:
    fake = fake_django_q2(tmp_path, "2.0.1", "django_q/conf", states_version=False)
    assert problem_with(fake).startswith("django-q2 2.0.1 is not a tested release")
    tested = fake_django_q2(tmp_path / "tested", "1.11.7", "django_q/conf", states_version=False)
    assert problem_with(tested) == "None"


def test_the_fake_is_what_the_worker_needs_on_a_tested_release(tmp_path: Path) -> None:
    # A tested release is not looked into: even a changed fake passes as 1.11.
    assert problem_with(fake_django_q2(tmp_path, "1.11.7", "django_q/cluster")) == "None"


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ("django_q/cluster", "sentinel start arguments (django_q.cluster)"),
        ("django_q/conf", "configuration (django_q.conf.Conf)"),
        ("django_q/management/commands/qcluster", "qcluster options (--name, --run-once)"),
    ],
)
def test_a_newer_release_that_changed_an_internal_is_named_in_one_line(
    tmp_path: Path, changed: str, named: str
) -> None:
    problem = problem_with(fake_django_q2(tmp_path, "2.0.1", changed))
    assert problem == (
        f"django-q2 2.0.1 is not a tested release (1.10 to 1.11) and its {named} changed; "
        "install a tested one: pip install 'django-q2>=1.10,<1.12'"
    )
