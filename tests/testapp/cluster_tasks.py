"""Tasks that report, from inside a worker, which cluster settings are in effect."""

from __future__ import annotations

import inspect
from typing import Any

# Django-Q2's settings as Conf attributes, and the Q_CLUSTER key each comes from.
CONF_KEYS = {
    "compress": "COMPRESSED",
    "cached": "CACHED",
    "ack_failures": "ACK_FAILURES",
    "bulk": "BULK",
    "label": "LABEL",
    "catch_up": "CATCH_UP",
    "max_attempts": "MAX_ATTEMPTS",
    "save_limit": "SAVE_LIMIT",
    "poll": "POLL",
    "guard_cycle": "GUARD_CYCLE",
    "recycle": "RECYCLE",
    "timeout": "TIMEOUT",
    "retry": "RETRY",
    "workers": "WORKERS",
    "queue_limit": "QUEUE_LIMIT",
    "log_level": "LOG_LEVEL",
    "scheduler": "SCHEDULER",
}


PARKED_CLUSTER = "parked"


def settings_in_effect() -> dict[str, Any]:
    """Return the settings this task's worker runs with, as each Django-Q2 module sees them."""
    from django_q import signing, tasks
    from django_q.conf import Conf
    from django_q.models import OrmQ

    # A child task for a cluster that nobody serves stays in the ORM broker's table as signed.
    tasks.async_task("math.floor", 1.5, cluster=PARKED_CLUSTER)
    payload = OrmQ.objects.filter(key=PARKED_CLUSTER).latest("id").payload
    return {
        "conf": {key: getattr(Conf, attribute) for key, attribute in CONF_KEYS.items()},
        # Django-Q2 copies these into default arguments when it imports its modules.
        "defaults": {
            "signing.dumps.compressed": _default(signing.SignedPackage.dumps, "compressed"),
            "tasks.result.cached": _default(tasks.result, "cached"),
            "tasks.fetch.cached": _default(tasks.fetch, "cached"),
            "tasks.async_chain.cached": _default(tasks.async_chain, "cached"),
            "tasks.async_chain.sync": _default(tasks.async_chain, "sync"),
            "tasks.Chain.sync": _default(tasks.Chain.__init__, "sync"),
        },
        # Django's signing marks a compressed payload with a leading dot.
        "child_payload_compressed": payload.startswith("."),
    }


def _default(function: Any, parameter: str) -> Any:
    return inspect.signature(function).parameters[parameter].default
