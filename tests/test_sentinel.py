"""The sentinel stops its processes as each exits, as Django-Q2's does but without polling.

That the stops lose nothing is what tests/test_stopping.py and the soak check, on this
sentinel; its speed is in the benchmarks (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from django_q.cluster import Sentinel

from prodserver_djangoq2.sentinel import sentinel_class, wait_for_exits
from tests.harness import REPO
from tests.test_compatibility import fake_django_q2

# SHA-256 of the source of Django-Q2's ``Sentinel.stop()`` that ``PromptSentinel.stop()``
# follows, the same in 1.10 and 1.11.
FOLLOWED_STOP = "d858ef90cdaaebf5e2647f543e92eaea29c160007006803e10b42409f6438039"
CONTEXT = multiprocessing.get_context("fork")


def test_the_prompt_stop_follows_the_stop_of_the_installed_release() -> None:
    source = inspect.getsource(Sentinel.stop)
    assert hashlib.sha256(source.encode()).hexdigest() == FOLLOWED_STOP, (
        "Django-Q2's Sentinel.stop() changed: bring PromptSentinel.stop() in line with it, "
        "then update FOLLOWED_STOP"
    )


def test_a_tested_release_runs_the_prompt_sentinel() -> None:
    prompt = sentinel_class()
    assert prompt is not Sentinel
    assert issubclass(prompt, Sentinel)
    assert prompt.stop is not Sentinel.stop


def test_a_release_outside_the_tested_ones_stops_with_its_own_code(tmp_path: Path) -> None:
    probe = (
        "import django_q.cluster\n"
        "from prodserver_djangoq2.sentinel import sentinel_class\n"
        "print(sentinel_class() is django_q.cluster.Sentinel)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(fake_django_q2(tmp_path, "9.0"))},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr


def exit_leaving_a_grandchild(seconds: float) -> None:
    """Exit at once; a forked grandchild keeps this process's end of its sentinel pipe."""
    if os.fork() == 0:
        time.sleep(seconds)
        os._exit(0)


def test_a_process_that_exited_ends_the_wait_though_its_pipe_stays_open() -> None:
    process = CONTEXT.Process(target=exit_leaving_a_grandchild, args=(10,))
    process.start()
    saves: list[float] = []
    started = time.monotonic()
    wait_for_exits([process], lambda: saves.append(time.monotonic()))
    # Found by polling, long before the grandchild closes the pipe.
    assert time.monotonic() - started < 5
    assert not process.is_alive()
    assert saves


def test_the_wait_ends_at_its_deadline_and_saves_meanwhile() -> None:
    process = CONTEXT.Process(target=time.sleep, args=(30,))
    process.start()
    try:
        saves: list[float] = []
        deadline = time.monotonic() + 0.5
        wait_for_exits([process], lambda: saves.append(time.monotonic()), deadline=deadline)
        assert time.monotonic() >= deadline
        assert process.is_alive()
        # The status is saved about every 0.1 s meanwhile, as Django-Q2 saves it.
        assert len(saves) >= 3
    finally:
        process.kill()
        process.join()
