"""Whether the installed django-q2 still has the internals that the worker relies on.

The worker starts Django-Q2's sentinel itself (runner), selects a cluster through the
``Q_CLUSTER_NAME`` that ``django_q.conf`` reads, and reads ``qcluster``'s options (arguments).
None of this is Django-Q2's public API. A release outside the tested ones is accepted while
these internals are as the worker expects; otherwise the worker refuses to start with one line
that names the installed release and the tested ones, instead of failing deep inside Django-Q2.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib.metadata import version

# The django-q2 minor releases that the test matrix runs (tools/matrix.toml): oldest, newest.
TESTED = ((1, 10), (1, 11))
TESTED_REQUIREMENT = "django-q2>=1.10,<1.12"
# runner.py starts the sentinel with these arguments, in this order.
SENTINEL_ARGUMENTS = ("stop_event", "start_event", "cluster_id", "broker", "timeout")
CONF_ATTRIBUTES = ("CLUSTER_NAME", "TIMEOUT", "ORM")
# The ``dest`` of the qcluster options that the worker reads from its ARGS.
QCLUSTER_OPTIONS = ("cluster_name", "run_once")


def django_q2_problem() -> str | None:
    """Return why the installed django-q2 cannot run the worker, or ``None`` if it can.

    Needs Django's settings: Django-Q2 reads them when its modules are imported.
    """
    installed = installed_release()
    if is_tested_release(installed):
        return None
    changed = [what for what, intact in INTERNALS.items() if not _holds(intact)]
    if not changed:
        return None
    low, high = (".".join(map(str, release)) for release in TESTED)
    return (
        f"django-q2 {installed} is not a tested release ({low} to {high}) and its "
        f"{', '.join(changed)} changed; install a tested one: pip install '{TESTED_REQUIREMENT}'"
    )


def installed_release() -> str:
    """Return the installed django-q2's version."""
    import django_q

    # The package states it; the distribution's metadata costs milliseconds to find and parse.
    release = getattr(django_q, "VERSION", None)
    if isinstance(release, tuple) and release:
        return ".".join(map(str, release))
    return version("django-q2")


def is_tested_release(installed: str) -> bool:
    release = tuple(int(number) for number in re.findall(r"\d+", installed)[:2])
    return TESTED[0] <= release <= TESTED[1]


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # a missing module or name, or anything else: not what was tested
        return False


def _sentinel_takes_its_start_arguments() -> bool:
    import django_q.cluster

    parameters = list(inspect.signature(django_q.cluster.Sentinel).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    leading = parameters[: len(SENTINEL_ARGUMENTS)]
    return (
        hasattr(django_q.cluster, "Cluster")
        and tuple(parameter.name for parameter in leading) == SENTINEL_ARGUMENTS
        and all(parameter.kind in positional for parameter in leading)
        # Anything after them must be optional: the worker passes nothing else.
        and all(
            parameter.default is not inspect.Parameter.empty
            or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            for parameter in parameters[len(SENTINEL_ARGUMENTS) :]
        )
    )


def _conf_selects_clusters_from_the_environment() -> bool:
    import django_q.conf

    return all(hasattr(django_q.conf.Conf, name) for name in CONF_ATTRIBUTES) and (
        "Q_CLUSTER_NAME" in inspect.getsource(django_q.conf)
    )


def _qcluster_has_the_options() -> bool:
    from prodserver_djangoq2.arguments import qcluster_parser

    destinations = {action.dest for action in qcluster_parser()._actions}
    return set(QCLUSTER_OPTIONS) <= destinations


# What changed, as the message names it: whether it is as the worker expects.
INTERNALS: dict[str, Callable[[], bool]] = {
    "sentinel start arguments (django_q.cluster)": _sentinel_takes_its_start_arguments,
    "configuration (django_q.conf.Conf)": _conf_selects_clusters_from_the_environment,
    "qcluster options (--name, --run-once)": _qcluster_has_the_options,
}
