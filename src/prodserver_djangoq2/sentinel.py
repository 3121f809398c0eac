"""The cluster's sentinel: Django-Q2's, stopping its processes as soon as each has exited.

Django-Q2's ``Sentinel.stop()`` asks the pusher, then the workers, then the monitor to end,
and looks every 0.1 s whether they have: an idle cluster takes 0.3 to 0.5 s to stop. Here each
of those waits wakes the moment a process exits, and still saves the cluster's status at
least every 0.1 s, as Django-Q2's does. The steps, their order and their bounds are Django-Q2's
own (1.10 and 1.11 share them); a release outside the tested ones stops with its own code.
"""

from __future__ import annotations

import functools
import multiprocessing.connection
import time
from collections.abc import Callable
from multiprocessing import current_process
from typing import Any

from . import compatibility

# How often Django-Q2's stop saves the cluster's status while it waits.
STATUS_INTERVAL = 0.1
# Django-Q2's bound on the wait for the monitor when the cluster has no timeout.
DEFAULT_MONITOR_WAIT = 30


@functools.cache
def sentinel_class() -> type:
    """Return the sentinel class that the worker's cluster runs."""
    from django_q.cluster import Sentinel

    if not compatibility.is_tested_release(compatibility.installed_release()):
        return Sentinel  # type: ignore[no-any-return]

    from django.utils.translation import gettext_lazy as _
    from django_q.conf import logger
    from django_q.status import Stat

    class PromptSentinel(Sentinel):  # type: ignore[misc]
        def stop(self) -> None:
            def save() -> None:
                Stat(self).save()

            save()
            name = current_process().name
            logger.info(_("%(name)s stopping cluster processes") % {"name": name})
            self.event_out.set()
            wait_for_exits([self.pusher], save)
            for __ in range(len(self.pool)):
                self.task_queue.put("STOP")
            self.task_queue.close()
            self.task_queue.join_thread()
            wait_for_exits(self.pool, save)
            # status() counts the pool's processes: an empty pool is a stopped one.
            self.pool.clear()
            self.result_queue.put("STOP")
            self.result_queue.close()
            self.result_queue.join_thread()
            logger.info(_("%(name)s waiting for the monitor.") % {"name": name})
            # Django-Q2 waits while status() is STOPPING: with the pusher gone and the pool
            # empty, while the monitor runs.
            bound = self.timeout or DEFAULT_MONITOR_WAIT
            wait_for_exits([self.monitor], save, deadline=time.monotonic() + bound)
            save()

    return PromptSentinel


def wait_for_exits(
    processes: list[Any], save: Callable[[], object], deadline: float | None = None
) -> None:
    """Wait until ``processes`` have exited or ``deadline``; call ``save`` on each wake-up.

    A process's ``sentinel`` descriptor becomes readable when it exits, unless a process it
    started still holds it open; waking at least every ``STATUS_INTERVAL`` keeps the wait no
    slower than Django-Q2's polling even then.
    """
    while alive := [process for process in processes if process.is_alive()]:
        timeout = STATUS_INTERVAL
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return
        multiprocessing.connection.wait([process.sentinel for process in alive], timeout)
        save()
