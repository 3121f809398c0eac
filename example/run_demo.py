"""Enqueue a few tasks, run the worker through django-prodserver, show the results, stop it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent
WORDS = ["django", "prodserver", "django-q2", "worker", "queue"]


def main() -> int:
    os.chdir(PROJECT)
    sys.path.insert(0, str(PROJECT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--verbosity=0"], check=True)
    subprocess.run([*manage, "createcachetable"], check=True)

    import django

    django.setup()
    from django_q.models import OrmQ, Task
    from django_q.tasks import async_task

    Task.objects.all().delete()
    OrmQ.objects.all().delete()
    ids = {word: async_task("demo.tasks.fingerprint", word) for word in WORDS}
    print(f"Enqueued {len(ids)} tasks; starting: python manage.py worker worker", flush=True)

    worker = subprocess.Popen([*manage, "worker", "worker"])
    try:
        deadline = time.monotonic() + 60
        while Task.objects.filter(id__in=ids.values()).count() < len(ids):
            if worker.poll() is not None or time.monotonic() > deadline:
                print("The worker did not process the tasks.", file=sys.stderr)
                return 1
            time.sleep(0.2)
        for word, task_id in ids.items():
            task = Task.objects.get(id=task_id)
            print(f"  fingerprint({word!r}) = {task.result}  [{task.cluster}, ok={task.success}]")
    finally:
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=60)
    print(f"Worker stopped on SIGTERM with exit status {status}.")
    return status


if __name__ == "__main__":
    sys.exit(main())
