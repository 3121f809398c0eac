"""Health probe of a worker: ``python -m prodserver_djangoq2.probe HEALTH_FILE [--ready] [--json]``.

Exit 0 when the worker is healthy; otherwise exit 1 and print one line saying why. It reads
only the heartbeat file and the process table: it imports neither Django nor the project, so
that an orchestrator can run it every few seconds.

- Liveness (the default) fails when the file is missing or unreadable, the worker stopped or
  its process is gone, the heartbeat is older than 3 intervals (the sentinel is stopped or
  stuck), a cluster process is dead, or the cluster is stalled: tasks wait in the broker, a
  worker is idle, and no task has started for ``stall_after`` seconds.
- ``--ready`` also requires the broker to have answered within the last 3 intervals: a broker
  outage makes the worker not ready, and never restarts it.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Not typing.TYPE_CHECKING: importing typing takes a fifth of the probe's own start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A heartbeat older than this many intervals means the cluster is not doing its rounds.
MISSED_BEATS = 3


class Unhealthy(Exception):
    """The worker is not healthy; the message says why, in one line."""


USAGE = "usage: python -m prodserver_djangoq2.probe HEALTH_FILE [--ready] [--json]"


def main(argv: list[str] | None = None) -> int:
    """Run the probe; return its exit status."""
    # No argparse: the probe runs every few seconds and each import costs start-up time.
    arguments = sys.argv[1:] if argv is None else argv
    options = {argument for argument in arguments if argument.startswith("-")}
    paths = [argument for argument in arguments if not argument.startswith("-")]
    if options - {"--ready", "--json"} or len(paths) != 1:
        print(USAGE if {"-h", "--help"} & options else f"{USAGE}\n(got {' '.join(arguments)})")
        return 0 if {"-h", "--help"} & options else 2
    ready = "--ready" in options
    try:
        state = read(paths[0])
    except Unhealthy as problem:
        print(f"unhealthy: {problem}")
        return 1
    verdict = judge(state, time.time(), ready=ready)
    if "--json" in options:
        print(json.dumps({**state, "healthy": verdict is None, "reason": verdict}, indent=2))
    elif verdict is not None:
        print(f"{'not ready' if ready else 'unhealthy'}: {verdict}")
    return 0 if verdict is None else 1


def read(path: str) -> dict[str, Any]:
    """Return the heartbeat file's state; raise ``Unhealthy`` if it cannot be used."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        raise Unhealthy(f"no heartbeat file at {path}: the worker is not running") from None
    except OSError as error:
        raise Unhealthy(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError:
        raise Unhealthy(f"{path} is not a heartbeat file (not JSON)") from None
    if not isinstance(state, dict) or not _is_number(state.get("written_at")):
        raise Unhealthy(f"{path} is not a heartbeat file (no written_at)")
    return state


def judge(state: dict[str, Any], now: float, ready: bool = False) -> str | None:
    """Return why the worker is not healthy (or not ready), or ``None``."""
    try:
        return _judge(state, now, ready)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "the heartbeat file is malformed"


def _judge(state: dict[str, Any], now: float, ready: bool) -> str | None:
    interval = float(state.get("interval") or 5)
    limit = MISSED_BEATS * interval
    if state.get("state") == "stopped":
        return f"the worker '{state.get('process')}' stopped"
    if not _alive(int(state["pid"])):
        return f"the worker's process {state['pid']} is gone"
    written = now - float(state["written_at"])
    if written > limit:
        return f"the heartbeat file was last written {written:.0f} s ago"
    sentinel = state.get("sentinel") or {}
    if state.get("state") == "running":
        if not sentinel.get("alive"):
            return f"the cluster's sentinel (pid {sentinel.get('pid')}) is dead"
        beat = _age(sentinel.get("heartbeat_at"), now)
        if beat is None or beat > limit:
            when = "never" if beat is None else f"{beat:.0f} s ago"
            return f"the cluster's sentinel last did its rounds {when}: it is stopped or stuck"
    for process in state.get("processes") or []:
        if not process.get("alive"):
            return f"the cluster's {process.get('role')} (pid {process.get('pid')}) is dead"
    broker = state.get("broker") or {}
    contact = _age(broker.get("contact_at"), now)
    broker_fresh = contact is not None and contact <= limit
    if broker_fresh and state.get("state") == "running":
        stalled = _stalled(state, broker, now)
        if stalled:
            return stalled
    if ready:
        if state.get("state") != "running":
            return f"the cluster is {state.get('state')}"
        if not broker_fresh:
            when = "never" if contact is None else f"{contact:.0f} s ago"
            return f"the broker last answered {when}"
    return None


def _age(stamp: object, now: float) -> float | None:
    return now - stamp if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None


def _stalled(state: dict[str, Any], broker: dict[str, Any], now: float) -> str | None:
    queued = broker.get("queued") or 0
    idle = (state.get("workers") or {}).get("idle") or 0
    started = state.get("last_task_started") or {}
    since = max(float(started.get("at") or 0), float(state.get("running_since") or 0))
    quiet = now - since
    if queued > 0 and idle > 0 and quiet > float(state["stall_after"]):
        return (
            f"stalled: {queued} tasks wait, {idle} workers are idle and no task has "
            f"started for {quiet:.0f} s"
        )
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


if __name__ == "__main__":
    sys.exit(main())
