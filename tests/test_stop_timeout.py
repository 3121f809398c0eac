"""A stop waits as long as the selected cluster lets its tasks run, not a fixed 30 seconds."""

from __future__ import annotations

import signal
import time

from tests.harness import WORKER_COMMAND, Project, Worker


def test_a_stop_lets_a_task_finish_within_the_clusters_timeout(
    project: Project, workers: list[Worker]
) -> None:
    project.settings["Q_CLUSTER"] = {**project.settings["Q_CLUSTER"], "timeout": 60, "retry": 90}
    project.write()
    (task_id,) = project.enqueue("sleep", 40)
    worker = project.start(WORKER_COMMAND, "worker")
    workers.append(worker)
    worker.wait_for_output("running.")
    time.sleep(2)
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=90) == 0, worker.output()
    waited = time.monotonic() - started
    [task] = project.wait_for_results([task_id], timeout=5).values()
    assert task["success"], task
    assert task["result"] == 40
    assert task["attempt_count"] == 1
    assert 30 < waited < 65, waited  # beyond the old fixed 30 s, within timeout + margin
